"""Per-seed accuracy tables of a sweep, read from its analysis tables (no model run).

A sweep of transfer groups, controls and baselines (``interp sweep SPEC --analyze``) writes
``analysis/accuracy.parquet`` (exact match per run, task and length at the analysed checkpoint)
and ``analysis/meta.parquet`` (group, kind, seed, lengths of every run). This module turns them
into what a reader checks first, the same shape as the zoo's family tables
(:mod:`interp.zoo.family`):

* :func:`seed_rows`: tidy rows ``run, group, positional, seed, task, length, correct, n,
  accuracy, ci_lo, ci_hi, main_max`` for every run's main task, with the exact
  (Clopper-Pearson) interval of one run's accuracy on its ``n`` test items;
* :func:`aux_gate`: did each auxiliary learn its own training range (>= 0.9 at every length)?
* :func:`seed_markdown`: per main task, one row per (group, seed): accuracy at every length with
  its interval, the transfer-range mean, and whether the seed transfers (accuracy at the first
  length past the main task's training range above
  :data:`interp.zoo.family.TRANSFER_THRESHOLD`, declared before looking).

``interp results SWEEP_DIR --out DIR`` writes ``results.md`` and ``results.parquet``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from interp.core.errors import InterpError
from interp.core.io import read_parquet
from interp.stats.intervals import clopper_pearson
from interp.zoo.family import AUX_GATE, TRANSFER_THRESHOLD

ROW_COLUMNS = [
    "run", "group", "kind", "positional", "seed", "task", "length", "correct", "n", "accuracy",
    "ci_lo", "ci_hi", "main_max", "aux_max",
]  # fmt: skip


def read_tables(sweep_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(accuracy, meta)`` of an analysed sweep.

    Raises:
        InterpError: the sweep has not been analysed (``interp analyze SWEEP_DIR``).
    """
    d = Path(sweep_dir) / "analysis"
    for f in ("accuracy.parquet", "meta.parquet"):
        if not (d / f).is_file():
            raise InterpError(f"no {d / f}: analyse the sweep first (interp analyze {sweep_dir})")
    return read_parquet(d / "accuracy.parquet"), read_parquet(d / "meta.parquet")


def _last_step(acc: pd.DataFrame) -> pd.DataFrame:
    last = acc.groupby("run")["step"].transform("max")
    return acc[acc["step"] == last]


def seed_rows(acc: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Every run's main task at every evaluated length, at its last analysed step.

    Args:
        acc: ``analysis/accuracy.parquet`` (``run, step, task, length, accuracy, n``).
        meta: ``analysis/meta.parquet`` (``run, group, kind, main, seed, main_max, ...``).

    Returns:
        :data:`ROW_COLUMNS`, ordered by main task, group, positional scheme, seed and length.
    """
    m = meta.set_index("run")
    a = _last_step(acc)
    a = a[a["task"].to_numpy() == m.loc[a["run"], "main"].to_numpy()]
    df = a.merge(meta.drop(columns=["main"]), on="run", how="inner")
    df["correct"] = (df["accuracy"] * df["n"]).round().astype("int64")
    df["ci_lo"], df["ci_hi"] = clopper_pearson(df["correct"].to_numpy(), df["n"].to_numpy())
    if "positional" not in df.columns:
        df["positional"] = ""
    # Transfer groups first, then controls, then the main task alone.
    df["_k"] = df["kind"].map({"transfer": 0, "control": 1, "baseline": 2}).fillna(3)
    # A length grid (Fig. 10) has one main task at several (main, aux) lengths: keep them apart.
    keys = ["task", "main_max", "_k", "group", "aux_max", "positional", "seed", "length"]
    df = df.sort_values(keys, kind="stable")
    return df[ROW_COLUMNS].reset_index(drop=True)


def aux_gate(acc: pd.DataFrame, meta: pd.DataFrame, gate: float = AUX_GATE) -> pd.DataFrame:
    """Per (run, auxiliary): the worst accuracy over the auxiliary's training lengths
    ``1..aux_max`` at the last analysed step, and whether it reaches ``gate``."""
    a = _last_step(acc)
    rows = []
    for r in meta.itertuples(index=False):
        for t in (x for x in str(r.aux).split(",") if x):
            g = a[(a["run"] == r.run) & (a["task"] == t) & (a["length"] <= int(r.aux_max))]
            if g.empty:
                continue
            worst = g.loc[g["accuracy"].idxmin()]
            rows.append(
                {
                    "run": r.run, "group": r.group, "seed": int(r.seed), "aux": t,
                    "min_acc": float(worst["accuracy"]), "worst_length": int(worst["length"]),
                    "passes": bool(worst["accuracy"] >= gate),
                }
            )  # fmt: skip
    cols = ["run", "group", "seed", "aux", "min_acc", "worst_length", "passes"]
    return pd.DataFrame(rows, columns=cols)


def seed_markdown(rows: pd.DataFrame, threshold: float = TRANSFER_THRESHOLD) -> str:
    """Per main task and training length, a Markdown table with one row per (group, positional,
    seed); in a length grid, rows also name their auxiliary training lengths.

    Each cell is the accuracy and its 95% Clopper-Pearson interval; then the mean over the
    transfer range (past ``main_max``) and whether the seed transfers; each group ends with the
    fraction of its seeds that transfer.
    """
    out = []
    for (task, main_max), d in rows.groupby(["task", "main_max"], sort=False):
        lengths = sorted(d["length"].unique())
        main_max = int(main_max)
        # Several auxiliary lengths under one main task (a length grid): label each row's.
        grid = d.loc[d["kind"] != "baseline", "aux_max"].nunique() > 1
        t_lo = main_max + 1
        out.append(f"**{task}** (trained on 1..{main_max}; transfer from {t_lo})\n")
        head = "| group | positional | seed | " + " | ".join(map(str, lengths))
        head += f" | mean {t_lo}-{lengths[-1]} | transfers |"
        out += [head, "|---|---|---|" + "---|" * (len(lengths) + 2)]
        for (group, aux_max, pos), g in d.groupby(
            ["group", "aux_max", "positional"], sort=False, dropna=False
        ):
            if grid and pd.notna(aux_max):
                group = f"{group} (aux 1..{int(aux_max)})"
            yes = n_testable = 0
            for seed, r in g.groupby("seed", sort=True):
                r = r.set_index("length")
                cells = [
                    f"{r.loc[n, 'accuracy']:.3f} [{r.loc[n, 'ci_lo']:.2f}, {r.loc[n, 'ci_hi']:.2f}]"
                    if n in r.index
                    else ""
                    for n in lengths
                ]
                past = r[r.index > main_max]
                mean = f"{past['accuracy'].mean():.3f}" if len(past) else ""
                # No length past the main task's range evaluated (an auxiliary no longer than
                # the main task): transfer is not measurable, which is not "no".
                testable = t_lo in r.index
                ok = testable and bool(r.loc[t_lo, "accuracy"] > threshold)
                yes += ok
                n_testable += testable
                verdict = ("yes" if ok else "no") if testable else "n/a"
                out.append(
                    f"| {group} | {pos} | {seed} | {' | '.join(cells)} | {mean} | {verdict} |"
                )
            n = g["seed"].nunique()
            summary = f"{yes}/{n} transfer" if n_testable == n else (
                f"{yes}/{n_testable} transfer, {n - n_testable} n/a" if n_testable
                else f"n/a: nothing past {main_max} evaluated"
            )  # fmt: skip
            out.append(f"| **{group}** | {pos} | **{summary}** |" + " |" * (len(lengths) + 2))
        out.append("")
    return "\n".join(out)


def gate_markdown(gate: pd.DataFrame) -> str:
    """The auxiliary gate as a Markdown table (one row per run and auxiliary)."""
    if gate.empty:
        return "(no auxiliaries)\n"
    lines = ["| run | auxiliary | worst accuracy on its training lengths | at length | learned |"]
    lines.append("|---|---|---|---|---|")
    for r in gate.itertuples(index=False):
        ok = "yes" if r.passes else "no"
        lines.append(f"| {r.run} | {r.aux} | {r.min_acc:.3f} | {r.worst_length} | {ok} |")
    return "\n".join(lines) + "\n"
