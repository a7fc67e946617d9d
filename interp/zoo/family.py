"""A family of runs: one experiment repeated over conditions and seeds, read as a table.

Transfer varies from seed to seed (the auxiliary has to learn its own long lengths first, and
does not always), so a single run says little. The zoo therefore holds *families*: the same
recipe trained under several conditions (both auxiliaries, the main task alone, an unrelated
control, each auxiliary alone), each with several pre-declared seeds. This module evaluates every
run of a family at its final checkpoint and reduces it to what a reader needs:

* ``family_accuracy``: tidy rows ``name, condition, seed, task, length, correct, n, accuracy,
  ci_lo, ci_hi``; the interval is the exact (Clopper-Pearson) binomial interval of one run's
  accuracy on its ``n`` test items, i.e. uncertainty from the finite test set, not from seeds;
* ``condition_table``: per condition, one line per seed with the main task's accuracy at every
  length, and the fraction of seeds that transfer (accuracy at the first length past the main
  task's training range above a threshold declared before looking, 0.1 by default).

Seeds are listed individually on purpose: with 2-5 seeds per condition a mean +- std hides the
fact that transfer is often all-or-nothing per seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from interp.scoring.evaluate import accuracy_table
from interp.stats.intervals import clopper_pearson
from interp.zoo import registry as zoo

TRANSFER_THRESHOLD = 0.1
"""A seed "transfers" when the main task's accuracy at the first transfer length exceeds this."""


COLUMNS = ["name", "condition", "seed", "step", "task", "length", "correct", "n", "accuracy"]
COLUMNS += ["ci_lo", "ci_hi", "transfer_lo", "transfer_hi"]
"""The columns of :func:`family_accuracy` and :func:`condition_accuracy`, in order."""


def family_accuracy(
    names: Sequence[str],
    n_examples: int = 1024,
    main_only: bool = True,
    root: str | Path | None = None,
    progress: bool = True,
    device: str | None = None,
) -> pd.DataFrame:
    """Evaluate each zoo entry's final checkpoint at every evaluation length.

    Args:
        names: zoo entries (e.g. every ``a4_*`` entry).
        n_examples: test items per (task, length); the paper uses 1024.
        main_only: evaluate only the main task (else the auxiliaries too).
        root: zoo root (default ``models/zoo``).
        progress: show a bar over entries.
        device: where to load the models (default: the CPU, :func:`interp.zoo.registry.load`'s).

    Returns:
        Tidy rows ``name, condition, seed, step, task, length, correct, n, accuracy, ci_lo,
        ci_hi, transfer_lo, transfer_hi`` (the last two: the entry's transfer range).
    """
    frames = []
    for name in tqdm(list(names), desc="family", disable=not progress):
        spec = zoo.spec(name, root)
        model, _ = zoo.load(name, root=root, **({"device": device} if device else {}))
        tasks = [spec.main] if main_only else spec.task_names
        step = zoo.checkpoints(name, root)[-1]
        acc = accuracy_table(
            model,
            tasks,
            {t: spec.eval_lengths(t) for t in tasks},
            n_examples=n_examples,
            seed=spec.eval.seed,
            step=step,
        )
        lo, hi = spec.transfer_range()
        acc.insert(0, "seed", spec.seed)
        acc.insert(0, "condition", spec.condition())
        acc.insert(0, "name", name)
        acc["transfer_lo"], acc["transfer_hi"] = lo, hi
        frames.append(acc)
    df = pd.concat(frames, ignore_index=True)
    df["correct"] = (df["accuracy"] * df["n"]).round().astype("int64")
    df["ci_lo"], df["ci_hi"] = clopper_pearson(df["correct"].to_numpy(), df["n"].to_numpy())
    return df[COLUMNS]


AUX_GATE = 0.9
"""An auxiliary counts as learned when its accuracy is at least this at every training length."""


def aux_gate(
    df: pd.DataFrame, gate: float = AUX_GATE, root: str | Path | None = None
) -> pd.DataFrame:
    """Did every auxiliary learn its own training range? (the gate a recipe must pass).

    Args:
        df: :func:`family_accuracy` rows evaluated with ``main_only=False``.
        gate: the minimum accuracy required at each of an auxiliary's training lengths.
        root: zoo root the entries came from.

    Returns:
        One row per (entry, auxiliary): ``name, condition, seed, aux, min_acc, worst_length,
        passes``; entries without auxiliaries are absent.
    """
    rows = []
    for name, g in df.groupby("name", sort=False):
        spec = zoo.spec(name, root)
        for aux in spec.aux:
            lo, hi = spec.train_range(aux)
            a = g[(g["task"] == aux) & g["length"].between(lo, hi)]
            if a.empty:
                raise ValueError(f"{name}: no rows for auxiliary {aux}; use main_only=False")
            worst = a.loc[a["accuracy"].idxmin()]
            rows.append(
                {
                    "name": name,
                    "condition": g["condition"].iloc[0],
                    "seed": int(g["seed"].iloc[0]),
                    "aux": aux,
                    "min_acc": float(worst["accuracy"]),
                    "worst_length": int(worst["length"]),
                    "passes": bool(worst["accuracy"] >= gate),
                }
            )
    return pd.DataFrame(
        rows, columns=["name", "condition", "seed", "aux", "min_acc", "worst_length", "passes"]
    )


def transfers(
    df: pd.DataFrame, threshold: float = TRANSFER_THRESHOLD, key: str = "name"
) -> pd.Series:
    """Per entry (``key`` column): does the main task beat ``threshold`` at the first transfer
    length? Rows of several tasks are cut to each entry's first (its main task)."""
    main = df[df["length"] == df["transfer_lo"]]
    if "task" in main.columns:
        main = main[main["task"] == main.groupby(key)["task"].transform("first")]
    return main.set_index(key)["accuracy"] > threshold


def condition_table(
    df: pd.DataFrame, task: str, threshold: float = TRANSFER_THRESHOLD, ci: bool = True
) -> str:
    """Markdown: per condition, one row per seed with ``task``'s accuracy at every length.

    Each cell is the accuracy and, with ``ci``, its 95% Clopper-Pearson interval. The last
    columns give the transfer-range mean and whether the seed transfers; each condition ends with
    the fraction of its seeds that transfer.

    Args:
        df: :func:`family_accuracy` rows.
        task: the main task.
        threshold: see :func:`transfers`.
        ci: add the intervals.

    Returns:
        Markdown text.
    """
    d = df[df["task"] == task]
    lengths = sorted(d["length"].unique())
    lo, hi = int(d["transfer_lo"].min()), int(d["transfer_hi"].max())
    head = "| condition | seed | " + " | ".join(map(str, lengths))
    head += f" | mean {lo}-{hi} | transfers |"
    lines = [head, "|---|---|" + "---|" * (len(lengths) + 2)]
    for cond, g in d.groupby("condition", sort=False):
        yes = 0
        for (_name, seed), r in g.groupby(["name", "seed"], sort=False):
            r = r.set_index("length")
            cells = []
            for length in lengths:
                a = r.loc[length]
                cell = f"{a['accuracy']:.3f}"
                if ci:
                    cell += f" [{a['ci_lo']:.2f}, {a['ci_hi']:.2f}]"
                cells.append(cell)
            mean = r.loc[lo:hi, "accuracy"].mean()
            ok = bool(r.loc[lo, "accuracy"] > threshold)
            yes += ok
            verdict = "yes" if ok else "no"
            lines.append(f"| {cond} | {seed} | {' | '.join(cells)} | {mean:.3f} | {verdict} |")
        n = g["name"].nunique()
        lines.append(f"| **{cond}** | **{yes}/{n} transfer** |" + " |" * (len(lengths) + 2))
    return "\n".join(lines)


def markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A plain markdown table of ``df`` (floats rounded)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def condition_accuracy(
    acc: pd.DataFrame, meta: pd.DataFrame, root: str | Path | None = None
) -> pd.DataFrame:
    """The main task's accuracy at every length at each observational run's final checkpoint,
    in the rows of :func:`interp.zoo.family.family_accuracy` (so
    :func:`interp.zoo.family.condition_table` and :func:`interp.zoo.family.transfers` read it):
    the family's per-condition transfer table from the shipped tables (256 items per length).

    Args:
        acc: the entries' ``accuracy_by_step`` rows.
        meta: :func:`interp.zoo.family_tables.family_meta` rows of the runs to list (the masked
            arms excluded), with ``condition`` from the entry name (``both``, ``main``, ...).
        root: zoo root (default: ``models/zoo``).

    Returns:
        Rows ``name, condition, seed, step, task, length, correct, n, accuracy, ci_lo, ci_hi,
        transfer_lo, transfer_hi``; ``condition`` names the auxiliaries, as in
        ``analyses/zoo/results.parquet`` (``none``: the main task alone).
    """
    frames = []
    for info in meta.itertuples(index=False):
        spec = zoo.spec(info.run, root)
        r = acc[(acc["run"] == info.run) & (acc["task"] == spec.main)]
        if not len(r):
            continue
        r = r[r["step"] == r["step"].max()].sort_values("length")
        lo, hi = spec.transfer_range()
        frames.append(
            r[["step", "length", "correct", "n", "accuracy", "ci_lo", "ci_hi"]]
            .assign(name=info.run, condition=spec.condition(), seed=int(spec.seed))
            .assign(task=spec.main, transfer_lo=lo, transfer_hi=hi)[COLUMNS]
        )
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    order = {c: i for i, c in enumerate(("both", "main", "control1", "nocarry", "carry"))}
    by_name = dict(zip(meta["run"], meta["condition"], strict=True))
    rank = df["name"].map(lambda n: order.get(by_name[n], len(order)))
    return (
        df.assign(_rank=rank)
        .sort_values(["_rank", "seed", "length"], kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )
