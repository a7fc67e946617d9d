"""Transfer metrics that count: per-auxiliary gaps, a two-sided curve distance, unseen lengths.

Three repairs of the first metrics (:func:`interp.scoring.evaluate.generalization_gap`):

* **One gap per auxiliary.** Pooling the auxiliaries' curves before judging whether they are
  "solved" lets a half-solved pair blame transfer for the auxiliary's own failure.
  :func:`gap_per_aux` computes the gap against each auxiliary separately, and the minimum.
* **"Solved" from counts, with an interval.** An auxiliary counts as solved at a length when the
  Clopper-Pearson lower bound of its accuracy (``k`` correct of ``n``) is at least
  ``SOLVED_LOWER`` (0.5): 64 of 128 is not enough (lower bound 0.41), 76 of 128 is (0.51).
  The old rule, accuracy >= 0.05, called 7 of 128 "solved" and then divided by it.
* **A two-sided curve distance** so that every cell of the paper's Figure 10 has a value,
  including the diagonal and the cells with the auxiliary *shorter* than the main task (where
  the one-sided gap, defined only beyond ``main_max``, is undefined)::

      D = sum_L |m(L) - a(L)| / sum_L max(m(L), a(L)),   L = 1 .. max(main_max, aux_max)

  ``m`` and ``a`` are the main and (mean) auxiliary accuracy curves. ``D`` is one minus the
  weighted Jaccard (Ruzicka) similarity of the two curves: 0 when they are identical (the
  diagonal), 1 when one task is solved exactly where the other fails; it is symmetric in the
  two tasks and needs no "solved" threshold. NaN only when both curves are 0 everywhere.
* **In-distribution means unseen.** At lengths 1-2 of arithmetic there are 100 and 8,100
  operand pairs; a training run draws them thousands of times, so the fixed test items were
  seen in training and in-distribution accuracy there measures memory. :func:`seen_lengths`
  flags a length when the expected number of training draws at it is at least the number of
  distinct problems, and :func:`unseen_lengths` gives the rest of the training range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from interp.stats.intervals import clopper_pearson
from interp.tasks.base import transfer_range

SOLVED_LOWER = 0.5
"""An auxiliary is solved at a length when the 95% Clopper-Pearson lower bound reaches this."""
DEFAULT_N = 1024


def with_intervals(acc: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """``acc`` plus ``correct``, ``ci_low`` and ``ci_high`` (Clopper-Pearson) for every row.

    Uses the ``n`` column (examples behind each accuracy); without it, ``DEFAULT_N``.
    """
    out = acc.copy()
    n = out["n"].astype(float) if "n" in out.columns else pd.Series(DEFAULT_N, index=out.index)
    out["correct"] = np.rint(out["accuracy"] * n).astype(int)
    lo, hi = clopper_pearson(out["correct"], n, alpha)
    out["ci_low"], out["ci_high"] = lo, hi
    return out


def _counts(acc: pd.DataFrame, task: str) -> pd.DataFrame:
    sub = with_intervals(acc[acc["task"] == task])
    n = sub["n"] if "n" in sub.columns else pd.Series(DEFAULT_N, index=sub.index)
    return (
        sub.assign(n_=n)
        .groupby("length")
        .agg(correct=("correct", "sum"), n=("n_", "sum"))
        .assign(accuracy=lambda d: d["correct"] / d["n"])
    )


def solved(acc: pd.DataFrame, task: str, lower: float = SOLVED_LOWER) -> pd.Series:
    """Per length, whether ``task`` is solved (Clopper-Pearson lower bound >= ``lower``)."""
    c = _counts(acc, task)
    lo, _ = clopper_pearson(c["correct"], c["n"])
    return pd.Series(lo >= lower, index=c.index, name="solved")


def gap_per_aux(
    acc: pd.DataFrame,
    main: str,
    aux: Sequence[str],
    main_max: int,
    aux_max: int,
    lower: float = SOLVED_LOWER,
) -> pd.DataFrame:
    """The one-sided generalization gap against each auxiliary separately, and the minimum.

    For auxiliary ``a``: the mean over transfer lengths ``main_max < L <= aux_max`` at which
    ``a`` is solved (:func:`solved`) of ``max(0, acc_a(L) - acc_main(L)) / acc_a(L)``.

    Args:
        acc: accuracy at one checkpoint (``task, length, accuracy`` and ``n``).
        main: main task.
        aux: auxiliary tasks.
        main_max: main task's longest training length.
        aux_max: auxiliaries' longest training length.
        lower: the "solved" threshold on the lower confidence bound.

    Returns:
        One row per auxiliary plus a row ``aux = "min"``: ``aux, gap, n_solved`` (transfer
        lengths at which that auxiliary is solved; the gap is NaN when there are none) and
        ``lengths`` (those lengths, comma-joined).
    """
    m = _counts(acc, main)["accuracy"]
    rows = []
    for a in aux:
        c = _counts(acc, a)
        ok = solved(acc, a, lower)
        lo, hi = transfer_range(main_max, aux_max)
        Ls = [L for L in range(lo, hi + 1) if L in ok.index and ok[L]]
        Ls = [L for L in Ls if L in m.index and np.isfinite(m[L])]
        vals = [max(0.0, c["accuracy"][L] - m[L]) / c["accuracy"][L] for L in Ls]
        rows.append({"aux": a, "gap": float(np.mean(vals)) if vals else float("nan"),
                     "n_solved": len(Ls), "lengths": ",".join(map(str, Ls))})  # fmt: skip
    gaps = [r["gap"] for r in rows if np.isfinite(r["gap"])]
    rows.append({"aux": "min", "gap": float(min(gaps)) if gaps else float("nan"),
                 "n_solved": sum(r["n_solved"] for r in rows), "lengths": ""})  # fmt: skip
    return pd.DataFrame(rows, columns=["aux", "gap", "n_solved", "lengths"])


def curve_distance(
    acc: pd.DataFrame, main: str, aux: Sequence[str], main_max: int, aux_max: int
) -> float:
    """The two-sided curve distance ``D`` (module docstring) over ``1..max(main_max, aux_max)``.

    The auxiliary curve is the mean of the auxiliaries' curves. Lengths missing from either
    curve are skipped.
    """
    m = acc[acc["task"] == main].groupby("length")["accuracy"].mean()
    a = acc[acc["task"].isin(list(aux))].groupby("length")["accuracy"].mean()
    Ls = [L for L in range(1, max(main_max, aux_max) + 1) if L in m.index and L in a.index]
    if not Ls:
        return float("nan")
    mv, av = m[Ls].to_numpy(float), a[Ls].to_numpy(float)
    den = np.maximum(mv, av).sum()
    return float(np.abs(mv - av).sum() / den) if den > 0 else float("nan")


def n_distinct(task: str, length: int) -> float:
    """Distinct problems of ``task`` at ``length`` (inf when unknown, so never "seen").

    Two-operand arithmetic: two ``L``-digit operands (leading digit nonzero for ``L > 1``),
    the second 3-digit for the CoT multiply; strings: ``52^L``. Orderings that a task folds
    together (subtraction swaps operands) make this an over-count, so "seen" errs toward
    "unseen".
    """
    from interp.tasks import get_task
    from interp.tasks.arithmetic import Mul3CoT, TwoOperandTask

    t = get_task(task)

    def ops(L: int) -> float:
        return 10.0 if L == 1 else 9.0 * 10.0 ** (L - 1)

    if isinstance(t, Mul3CoT):
        return ops(length) * 900.0
    if isinstance(t, TwoOperandTask):
        return ops(length) ** 2
    if type(t).__module__.endswith("strings") and "mqar" not in task:
        return 52.0**length
    return float("inf")


def expected_draws(
    steps: int, batch_size: int, n_tasks: int, lengths: Sequence[int], length: int
) -> float:
    """Training examples of one task at ``length``: tasks and lengths are drawn uniformly."""
    if length not in lengths:
        return 0.0
    return steps * batch_size / n_tasks / len(lengths)


def seen_lengths(spec: object, task: str | None = None, coverage: float = 1.0) -> list[int]:
    """Training lengths of ``task`` (default: the main task) whose test items were likely seen.

    A length is flagged when the expected training draws at it reach ``coverage`` times the
    number of distinct problems (:func:`n_distinct`): then most of any fixed test set was in the
    training data (``1 - exp(-coverage)`` of it, 63% at 1.0).

    Args:
        spec: a :class:`interp.runs.spec.TrainSpec` (``steps``, ``batch_size``, ``train_range``).
        task: the task (default ``spec.main``).
        coverage: draws per distinct problem that count as "seen".
    """
    task = task or spec.main  # type: ignore[attr-defined]
    lo, hi = spec.train_range(task)  # type: ignore[attr-defined]
    Ls = list(range(lo, hi + 1))
    n_tasks = len(spec.task_names)  # type: ignore[attr-defined]
    train = spec.train  # type: ignore[attr-defined]
    return [
        L
        for L in Ls
        if expected_draws(train.steps, train.batch_size, n_tasks, Ls, L)
        >= coverage * n_distinct(task, L)
    ]


def unseen_lengths(spec: object, task: str | None = None) -> list[int]:
    """The training range of ``task`` without :func:`seen_lengths` (all of it if every length
    is flagged, which would leave nothing to measure; the caller reports that)."""
    task = task or spec.main  # type: ignore[attr-defined]
    lo, hi = spec.train_range(task)  # type: ignore[attr-defined]
    seen = set(seen_lengths(spec, task))
    rest = [L for L in range(lo, hi + 1) if L not in seen]
    return rest or list(range(lo, hi + 1))


def run_metrics(acc: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Per run at its last checkpoint: range accuracies with Clopper-Pearson intervals, the gap
    against each auxiliary and the minimum, and the two-sided curve distance.

    Returns:
        One row per run with auxiliaries: ``run, step``; for ``train`` (main, ``1..main_max``) and
        ``transfer`` (main, ``main_max < L <= aux_max``): ``<range>_acc, <range>_correct,
        <range>_n, <range>_ci_low, <range>_ci_high``; ``gap_<aux>`` per auxiliary, ``gap_min``,
        ``curve_distance``.
    """
    from interp.stats.transfer import normalize_meta

    m = normalize_meta(meta)
    rows = []
    for info in m.itertuples(index=False):
        aux = list(info.aux)
        a = acc[acc["run"] == info.run]
        if not aux or info.kind == "baseline" or not len(a):
            continue
        step = int(a["step"].max())
        a = with_intervals(a[a["step"] == step])
        row: dict[str, object] = {"run": info.run, "step": step}
        main = a[a["task"] == info.main]
        ranges = (("train", (1, info.main_max)),
                  ("transfer", transfer_range(info.main_max, info.aux_max)))  # fmt: skip
        for name, (lo, hi) in ranges:
            sub = main[main["length"].between(lo, hi)]
            n = float(sub["n"].sum()) if "n" in sub.columns else DEFAULT_N * len(sub)
            k = float(sub["correct"].sum())
            c_lo, c_hi = clopper_pearson(k, n) if n else (np.nan, np.nan)
            row.update({f"{name}_acc": k / n if n else np.nan, f"{name}_correct": int(k),
                        f"{name}_n": int(n), f"{name}_ci_low": float(c_lo),
                        f"{name}_ci_high": float(c_hi)})  # fmt: skip
        g = gap_per_aux(a, info.main, aux, info.main_max, info.aux_max).set_index("aux")["gap"]
        row.update({f"gap_{x}": float(v) for x, v in g.items() if x != "min"})
        row["gap_min"] = float(g["min"])
        row["curve_distance"] = curve_distance(a, info.main, aux, info.main_max, info.aux_max)
        rows.append(row)
    return pd.DataFrame(rows)
