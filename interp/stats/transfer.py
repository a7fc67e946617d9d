"""Does head overlap track length-generalization transfer? Tables and correlations.

The paper's mechanistic claim (its Appendix B) is correlational: across training checkpoints, the
more the main and auxiliary tasks use the same attention heads, the smaller the generalization
gap. This module turns that into numbers with uncertainty. It is pure data in, data out, so it
runs on synthetic frames in tests and on real runs through a thin glue layer.

Inputs (tidy DataFrames):

* ``overlap``: one row per ``(run, step, task_a, task_b, statistic)`` with a ``value``: the
  frame of :func:`interp.scoring.overlap.overlap_table` with ``run`` and ``step`` columns added. A
  statistic is whatever that module defines: a *distance* (``map_diff``, ``attn_diff``, the
  paper's; large = heads differ) or a *similarity* (``cosine``, ``spearman``, ``jaccard@k``;
  large = heads shared). Read the sign of a correlation accordingly: transfer through shared
  heads predicts gap ~ +distance and gap ~ -similarity (transfer strength the opposite).
* ``acc``: exact-match accuracy per ``(run, step, task, length)`` (column ``accuracy``).
* ``meta``: one row per run with ``run, group, seed, main, aux, main_max, aux_max, kind,
  baseline``. ``aux`` is a list/tuple or a comma-separated string; ``kind`` is ``transfer`` or
  ``control`` (rows with kind ``baseline`` or no auxiliary are main-only baseline runs, used only
  as the reference for transfer strength); ``baseline`` is the run id of the matching main-only
  run (empty if none). Further columns (``positional``, ``preset``, ...) are carried along.
  :func:`interp.runs.sweep_spec.sweep_metadata` produces exactly this frame.

Per checkpoint, :func:`transfer_table` joins the overlap between the main task and its
auxiliaries (mean over auxiliaries when there are several, matching the generalization gap,
which compares the main curve with the *mean* auxiliary curve) with

* ``gap``: :func:`interp.scoring.evaluate.generalization_gap` (0 = main as good as aux on the
  transfer
  range, 1 = no transfer);
* ``transfer_strength``: :func:`interp.scoring.evaluate.transfer_strength` against the baseline run
  at the
  same step (or, if the baseline has no checkpoint there, its latest checkpoint before it);
* the main task's mean accuracy in its training range and in the transfer range.

:func:`transfer_correlations` then correlates each overlap statistic with each metric (Pearson and
Spearman, bootstrap CI, permutation p-value; :mod:`interp.stats.intervals`) in three views:

* ``checkpoints``: within each run, across its checkpoints (the paper's view). **Descriptive
  only**: the coefficient ``r`` is reported but no interval and no p-value (NaN, with the reason
  ``CHECKPOINT_REASON``). Checkpoints of one run are autocorrelated and both series track
  training progress: two independent random walks of 8 points give a permutation p <= 0.05 in
  about 17% of datasets, not 5%. The honest within-run test is :mod:`interp.stats.within`; the
  primary test is between runs (:mod:`interp.stats.between`).
* ``seeds``: within each group and configuration, across runs (seeds), one point per run at its
  last checkpoint (``at="last"``) or averaged over checkpoints (``at="mean"``). The same
  not-testable rule as every other test (:func:`interp.stats.intervals.not_testable`): with fewer
  than
  ``MIN_SEEDS`` (5) runs there are fewer than 40 distinct permutations and no p-value below
  0.05 is reachable, so the interval and p-value are NaN with ``not testable (n=...)`` (n = 3
  gave p = 0.34 beside a "95%" bootstrap interval [0.9996, 1.0]). The interval is the classical
  Fisher-z interval (Bonett-Wright's standard error for Spearman), not a percentile bootstrap
  over a handful of runs.
* ``groups``: across task groups, controls included, one point per group (mean over seeds).
  **Descriptive only, across conditions (confounded)**: groups differ in task, lengths and
  recipe as well as in overlap, so ``r`` is reported with no interval and no p-value
  (``GROUPS_REASON``); the controls should sit at low overlap and large gap if the story holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from interp.core.errors import InterpError
from interp.scoring.evaluate import generalization_gap, transfer_strength
from interp.stats.intervals import correlate
from interp.tasks.base import transfer_range

META_COLS = ("run", "group", "seed", "main", "aux", "main_max", "aux_max", "kind", "baseline")
OVERLAP_COLS = ("run", "step", "task_a", "task_b", "statistic", "value")
ACC_COLS = ("run", "step", "task", "length", "accuracy")
# Columns that, besides the seed and the group, define a configuration; used when present.
CONFIG_COLS = ("main_max", "aux_max", "positional", "preset", "score_method", "score_metric")
CHECKPOINT_REASON = "descriptive only: checkpoints of one run are not independent units"
GROUPS_REASON = (
    "descriptive only: across conditions (confounded: groups differ in task, lengths and recipe)"
)
MIN_SEEDS = 5
"""Fewer runs give fewer than 40 distinct permutations (4! = 24): no two-sided p below 0.05."""
METRICS = ("gap", "transfer_strength")
VIEWS = ("checkpoints", "seeds", "groups")
CM_COLS = [
    "run",
    "step",
    "gap",
    "transfer_strength",
    "main_train_acc",
    "main_transfer_acc",
    "aux_transfer_acc",
    "baseline_transfer_acc",
]


def _require(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InterpError(f"{what} table is missing columns {missing}; have {list(df.columns)}")


def parse_aux(value: Any) -> tuple[str, ...]:
    """Auxiliary task names from a list/tuple/array or a comma-separated string."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    return tuple(str(s) for s in value)


def normalize_meta(meta: pd.DataFrame) -> pd.DataFrame:
    """Validate run metadata and normalise ``aux`` to tuples and ``baseline`` to strings.

    Raises:
        InterpError: for missing columns or a run listed twice.
    """
    _require(meta, META_COLS, "run metadata")
    if meta["run"].duplicated().any():
        dup = sorted(meta.loc[meta["run"].duplicated(), "run"].astype(str).unique())
        raise InterpError(f"run metadata lists runs more than once: {dup}")
    m = meta.copy()
    m["aux"] = [parse_aux(a) for a in m["aux"]]
    m["baseline"] = [
        "" if b is None or (isinstance(b, float) and np.isnan(b)) else str(b) for b in m["baseline"]
    ]
    m["main_max"] = m["main_max"].astype(int)
    m["aux_max"] = m["aux_max"].astype(int)
    return m


def _is_baseline(row: pd.Series) -> bool:
    return row["kind"] == "baseline" or len(row["aux"]) == 0


def _baseline_acc(acc_by_run: dict[Any, pd.DataFrame], run: Any, step: int) -> pd.DataFrame | None:
    """The baseline run's accuracy at ``step``, else at its latest step before it."""
    b = acc_by_run.get(run)
    if b is None:
        return None
    steps = b["step"].unique()
    ok = steps[steps <= step]
    if len(ok) == 0:
        return None
    return b[b["step"] == ok.max()]


def checkpoint_metrics(acc: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Transfer metrics of every (non-baseline) run at every checkpoint of ``acc``.

    Args:
        acc: accuracy table with columns ``run, step, task, length, accuracy``.
        meta: run metadata (see the module docstring).

    Returns:
        One row per ``(run, step)`` with ``gap, transfer_strength, main_train_acc,
        main_transfer_acc, aux_transfer_acc, baseline_transfer_acc``; NaN where undefined (no
        baseline, no auxiliary solved in the transfer range, ...). ``aux_transfer_acc`` is the
        mean over auxiliaries of each one's mean over the transfer range.
    """
    _require(acc, ACC_COLS, "accuracy")
    m = normalize_meta(meta)
    m = m[[not _is_baseline(r) for _, r in m.iterrows()]]
    acc_by_run = {r: g for r, g in acc.groupby("run", sort=False)}
    rows = []
    for _, info in m.iterrows():
        if info["run"] not in acc_by_run:
            continue
        main, aux = info["main"], list(info["aux"])
        for step, a in acc_by_run[info["run"]].groupby("step", sort=True):
            base = _baseline_acc(acc_by_run, info["baseline"], step) if info["baseline"] else None
            rows.append(
                {
                    "run": info["run"],
                    "step": int(step),
                    "gap": generalization_gap(a, main, aux, info["main_max"], info["aux_max"]),
                    "transfer_strength": (
                        transfer_strength(a, base, main, info["main_max"], info["aux_max"])
                        if base is not None
                        else float("nan")
                    ),
                }
            )
    cm = pd.DataFrame(rows, columns=["run", "step", "gap", "transfer_strength"])
    # The range accuracies are plain means, computed for all checkpoints at once.
    a = acc.merge(m[["run", "main", "aux", "main_max", "aux_max"]], on="run", how="inner")
    is_main = a["task"] == a["main"]
    is_aux = pd.Series([t in x for t, x in zip(a["task"], a["aux"], strict=True)], index=a.index)
    in_train = a["length"] <= a["main_max"]
    t_lo, t_hi = transfer_range(a["main_max"], a["aux_max"])  # elementwise on the columns
    in_transfer = (a["length"] >= t_lo) & (a["length"] <= t_hi)
    keys = ["run", "step"]
    parts = {
        "main_train_acc": a[is_main & in_train].groupby(keys)["accuracy"].mean(),
        "main_transfer_acc": a[is_main & in_transfer].groupby(keys)["accuracy"].mean(),
        "aux_transfer_acc": a[is_aux & in_transfer]
        .groupby([*keys, "task"])["accuracy"]
        .mean()
        .groupby(keys)
        .mean(),
    }
    for name, s in parts.items():
        cm = cm.merge(s.rename(name).reset_index(), on=keys, how="left")
    # transfer_strength = main - baseline over the same range, so the baseline's accuracy is
    # recovered without a second lookup.
    cm["baseline_transfer_acc"] = cm["main_transfer_acc"] - cm["transfer_strength"]
    for c in CM_COLS[2:]:
        cm[c] = cm[c].astype("float64")
    return cm[CM_COLS]


def pair_overlap(overlap: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Overlap between each run's main task and its auxiliaries, per checkpoint and statistic.

    A pair matches in either order (``task_a, task_b`` = ``main, aux`` or ``aux, main``); with
    several auxiliaries the values are averaged.

    Returns:
        Columns ``run, step, statistic, overlap, n_pairs``.
    """
    _require(overlap, OVERLAP_COLS, "overlap")
    m = normalize_meta(meta)
    by_run = {r: g for r, g in overlap.groupby("run", sort=False)}
    parts = []
    for _, info in m.iterrows():
        if _is_baseline(info) or info["run"] not in by_run:
            continue
        o = by_run[info["run"]]
        a, b = o["task_a"], o["task_b"]
        aux = list(info["aux"])
        hit = ((a == info["main"]) & b.isin(aux)) | ((b == info["main"]) & a.isin(aux))
        parts.append(o[hit])
    cols = ["run", "step", "statistic", "overlap", "n_pairs"]
    if not parts or all(len(p) == 0 for p in parts):
        return pd.DataFrame(columns=cols)
    sel = pd.concat(parts, ignore_index=True)
    out = (
        sel.groupby(["run", "step", "statistic"], sort=True)["value"]
        .agg(overlap="mean", n_pairs="count")
        .reset_index()
    )
    out["step"] = out["step"].astype(int)
    return out[cols]


def transfer_table(overlap: pd.DataFrame, acc: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Join main-aux head overlap with the transfer metrics at every checkpoint.

    Args:
        overlap: ``run, step, task_a, task_b, statistic, value``.
        acc: ``run, step, task, length, accuracy`` (baseline runs included).
        meta: run metadata (see the module docstring).

    Returns:
        One row per ``(run, step, statistic)`` for every checkpoint that has both an overlap
        value and accuracies: the metadata columns (``aux`` as a comma-joined string), then
        ``step, statistic, overlap, n_pairs, gap, transfer_strength, main_train_acc,
        main_transfer_acc, aux_transfer_acc, baseline_transfer_acc``.
    """
    m = normalize_meta(meta)
    ov = pair_overlap(overlap, m)
    cm = checkpoint_metrics(acc, m)
    joined = ov.merge(cm, on=["run", "step"], how="inner")
    info = m[[not _is_baseline(r) for _, r in m.iterrows()]].copy()
    info["aux"] = [",".join(a) for a in info["aux"]]
    out = info.merge(joined, on="run", how="inner")
    return out.sort_values(["run", "statistic", "step"], kind="stable").reset_index(drop=True)


def _summarise_runs(
    table: pd.DataFrame, keys: list[str], metrics: list[str], at: str
) -> pd.DataFrame:
    """One row per (run, statistic): the last checkpoint's values, or their mean."""
    if at == "last":
        last = table.groupby(["run", "statistic"])["step"].transform("max")
        return table[table["step"] == last]
    if at == "mean":
        vals = ["overlap", *metrics]
        return table.groupby([*keys, "run", "statistic"], dropna=False)[vals].mean().reset_index()
    raise InterpError(f"unknown 'at' {at!r}; valid choices: last, mean")


def _seed_rules(res: pd.DataFrame) -> pd.DataFrame:
    """The seeds view's not-testable rule and Fisher-z interval (module docstring)."""
    from scipy.stats import norm

    from interp.stats.intervals import not_testable

    res = res.copy()
    n = res["n"].to_numpy(float)
    r = res["r"].to_numpy(float)
    few = np.isfinite(r) & (n < MIN_SEEDS)
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.where(res["method"] == "spearman", 1 + r**2 / 2, 1.0) / (n - 3))
    q = norm.ppf(0.975)
    ok = np.isfinite(r) & ~few
    res["ci_low"] = np.where(ok, np.tanh(z - q * se), np.nan)
    res["ci_high"] = np.where(ok, np.tanh(z + q * se), np.nan)
    res.loc[few, "p_value"] = np.nan
    res.loc[few, "reason"] = [
        not_testable(int(k), f"fewer than {MIN_SEEDS} runs: fewer than 40 permutations")
        for k in n[few]
    ]
    return res


def transfer_correlations(
    table: pd.DataFrame,
    views: Sequence[str] = VIEWS,
    metrics: Sequence[str] = METRICS,
    at: str = "last",
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlate head overlap with transfer metrics in the requested views.

    Args:
        table: output of :func:`transfer_table`.
        views: any of ``"checkpoints"``, ``"seeds"``, ``"groups"`` (module docstring).
        metrics: metric columns to correlate with ``overlap``.
        at: how the seeds and groups views summarise a run over its checkpoints: ``"last"``
            checkpoint or ``"mean"`` over checkpoints.
        n_boot: bootstrap resamples per correlation.
        n_perm: permutations per correlation.
        seed: seed shared by every correlation (results do not depend on which others run).

    Returns:
        One row per (view, unit, statistic, metric, method) with columns ``view, run, group,
        kind, <config columns present>, statistic, metric, method, r, ci_low, ci_high, p_value,
        n, reason``; ``run`` is set in the checkpoints view, ``group``/``kind`` where the view
        is within one group, and empty strings elsewhere.

    Raises:
        InterpError: for an unknown view or metric, or a table lacking the needed columns.
    """
    for v in views:
        if v not in VIEWS:
            raise InterpError(f"unknown view {v!r}; valid choices: {', '.join(VIEWS)}")
    metrics = list(metrics)
    _require(table, ["run", "group", "kind", "step", "statistic", "overlap", *metrics], "transfer")
    config = [c for c in CONFIG_COLS if c in table.columns]
    stats_kw = {"n_boot": n_boot, "n_perm": n_perm, "seed": seed}
    frames = []
    for view in views:
        if view == "checkpoints":
            data, by = table, ["run", "group", "kind", *config, "statistic"]
        elif view == "seeds":
            data = _summarise_runs(table, ["group", "kind", *config], metrics, at)
            by = ["group", "kind", *config, "statistic"]
        else:
            runs = _summarise_runs(table, ["group", "kind", *config], metrics, at)
            data = (
                runs.groupby(["group", "kind", *config, "statistic"], dropna=False)[
                    ["overlap", *metrics]
                ]
                .mean()
                .reset_index()
            )
            by = [*config, "statistic"]
        for metric in metrics:
            if len(data) == 0:
                continue
            res = correlate(data, "overlap", metric, by=by, **stats_kw)
            res = res.rename(columns={"y": "metric"}).drop(columns="x")
            if view == "checkpoints":
                res[["ci_low", "ci_high", "p_value"]] = float("nan")
                res["reason"] = np.where(res["r"].notna(), CHECKPOINT_REASON, res["reason"])
            elif view == "groups":
                res[["ci_low", "ci_high", "p_value"]] = float("nan")
                res["reason"] = np.where(res["r"].notna(), GROUPS_REASON, res["reason"])
            else:
                res = _seed_rules(res)
            res.insert(0, "view", view)
            frames.append(res)
    cols = [
        "view",
        "run",
        "group",
        "kind",
        *config,
        "statistic",
        "metric",
        "method",
        "r",
        "ci_low",
        "ci_high",
        "p_value",
        "n",
        "reason",
    ]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    for c in ("run", "group", "kind"):
        out[c] = out[c].fillna("").astype(str) if c in out else ""
    return out[cols]
