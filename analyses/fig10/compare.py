"""Figure 10 at CPU scale: the curve distance over a (main, auxiliary) length grid, and the paper.

Reads only shipped tables: the sweep ``analyses/fig10_length_grid.toml`` (main and auxiliary
lengths in {2, 4, 8}, 2 seeds per cell), whose analysis tables ``interp results
RUNS/fig10_length_grid --out analyses/fig10`` copies into ``analyses/fig10/analysis/``.

The distance is the package's two-sided curve distance ``D`` (:func:`interp.stats.metrics.
curve_distance`): ``sum |main - aux| / sum max(main, aux)`` over lengths ``1..max(main, aux)``,
with the auxiliary curve the mean of no carry and carry only; 0 = identical curves, defined for
every cell, including auxiliaries shorter than the main task. The paper does not give its
normalization, so the comparison is of patterns, not values. Our grid is the paper's corner
scaled by one half (our (m, a) sits where the paper's (2m, 2a) sits: rows 4, 8, 16 and columns
4, 8, 16 of its Figure 10), so the length ratios match cell for cell.

The paper's pattern, as predictions for this grid: cells with ratio aux/main in 0.5..2 have a
small gap, the far off-diagonal cells (ratio 0.25 and 4) a large one.

    .venv/bin/python analyses/fig10/compare.py    # writes analyses/fig10/compare.{md,parquet}
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from interp.core.io import write_parquet, write_text  # noqa: E402
from interp.stats.metrics import run_metrics  # noqa: E402

HERE = Path(__file__).resolve().parent

#: The paper's Figure 10 values at the cells ours mirror: ours (main, aux) -> paper (2 main, 2 aux).
PAPER = {
    (2, 2): 0.00, (2, 4): 0.41, (2, 8): 0.65,
    (4, 2): 0.28, (4, 4): 0.00, (4, 8): 0.27,
    (8, 2): 0.60, (8, 4): 0.03, (8, 8): 0.00,
}  # fmt: skip


def table(analysis: Path = HERE / "analysis") -> pd.DataFrame:
    """One row per run: ``main_max, aux_max, ratio, seed, curve_distance, train_acc,
    transfer_acc`` and the paper's value for its cell."""
    acc = pd.read_parquet(analysis / "accuracy.parquet")
    meta = pd.read_parquet(analysis / "meta.parquet")
    m = run_metrics(acc, meta)
    df = m.merge(meta[["run", "main_max", "aux_max", "seed"]], on="run")
    df["ratio"] = df["aux_max"] / df["main_max"]
    pairs = zip(df.main_max, df.aux_max, strict=True)
    df["paper"] = [PAPER.get((int(a), int(b)), np.nan) for a, b in pairs]
    cols = ["main_max", "aux_max", "ratio", "seed", "curve_distance", "train_acc",
            "transfer_acc", "paper", "run"]  # fmt: skip
    return df[cols].sort_values(["main_max", "aux_max", "seed"]).reset_index(drop=True)


def _fmt(x: float) -> str:
    return "" if not np.isfinite(x) else f"{x:.2f}"


def markdown(df: pd.DataFrame) -> str:
    cells = df.groupby(["main_max", "aux_max"]).agg(
        D=("curve_distance", "mean"), paper=("paper", "first"), ratio=("ratio", "first"),
        seeds=("curve_distance", lambda s: " ".join(_fmt(v) for v in s)),
    ).reset_index()  # fmt: skip
    auxes = sorted(df["aux_max"].unique())
    lines = [
        "Curve distance D (mean over seeds; the paper's value for the mirrored cell in brackets), "
        "main length in rows, auxiliary length in columns:",
        "",
        "| main \\ aux | " + " | ".join(str(a) for a in auxes) + " |",
        "|---|" + "---|" * len(auxes),
    ]
    for main in sorted(df["main_max"].unique(), reverse=True):
        row = []
        for a in auxes:
            c = cells[(cells.main_max == main) & (cells.aux_max == a)]
            row.append(f"{c.D.iloc[0]:.2f} ({c.paper.iloc[0]:.2f})" if len(c) else "")
        lines.append(f"| {main} | " + " | ".join(row) + " |")
    lines += [
        "",
        "| main | aux | ratio | D per seed | mean D | paper | main accuracy 1..main (per seed) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells.itertuples(index=False):
        sub = df[(df.main_max == c.main_max) & (df.aux_max == c.aux_max)]
        train = " ".join(_fmt(v) for v in sub["train_acc"])
        lines.append(
            f"| {c.main_max} | {c.aux_max} | {c.ratio:g} | {c.seeds} | {c.D:.2f} | "
            f"{c.paper:.2f} | {train} |"
        )
    near = cells[cells.ratio.between(0.5, 2) & (cells.ratio != 1)]
    far = cells[(cells.ratio < 0.5) | (cells.ratio > 2)]
    diag = cells[cells.ratio == 1]
    lines += [""]
    lines.append(
        f"- mean D by ratio class: equal lengths {diag.D.mean():.2f} "
        f"(paper {diag.paper.mean():.2f}), "
        f"ratio 0.5 or 2 {near.D.mean():.2f} (paper {near.paper.mean():.2f}), ratio 0.25 or 4 "
        f"{far.D.mean():.2f} (paper {far.paper.mean():.2f})"
    )
    ok = cells.dropna(subset=["D"])
    if len(ok) >= 3:
        rho = ok[["D", "paper"]].corr(method="spearman").iloc[0, 1]
        off = ok[ok.ratio != 1]
        rho_off = off[["D", "paper"]].corr(method="spearman").iloc[0, 1]
        lines.append(
            f"- rank agreement with the paper over the {len(ok)} cells: Spearman {rho:+.2f}; "
            f"over the {len(off)} off-diagonal cells (the diagonal is 0 in both by construction "
            f"once both tasks learn their ranges): {rho_off:+.2f} "
            "(descriptive: cell means of 2 seeds each, no test)"
        )
    lines.append(_pairs("every far cell (ratio 0.25 or 4) above every near cell (ratio 0.5 or 2)",
                        far, near))  # fmt: skip
    # A cell whose main task did not learn its own training range has a low main curve
    # everywhere, so its distance measures that failure, not the auxiliary's reach.
    weak = df.groupby(["main_max", "aux_max"])["train_acc"].min()
    weak = weak[weak < LEARNED]
    if len(weak):
        names = ", ".join(f"({m}, {a}) {v:.2f}" for (m, a), v in weak.items())
        lines.append(
            f"- cells whose main task did not learn its own range in some seed (mean accuracy "
            f"on 1..main below {LEARNED}; worst seed): {names}; without them, "
            + _pairs("far above near", far[_keep(far, weak)], near[_keep(near, weak)])[2:]
        )  # fmt: skip
    return "\n".join(lines) + "\n"


#: A main task counts as learned when its mean accuracy on its own training lengths reaches this.
LEARNED = 0.9


def _keep(cells: pd.DataFrame, weak: pd.Series) -> list[bool]:
    return [(m, a) not in weak.index for m, a in zip(cells.main_max, cells.aux_max, strict=True)]


def _pairs(what: str, far: pd.DataFrame, near: pd.DataFrame) -> str:
    """How many (far, near) cell pairs have the far cell's mean D above the near cell's."""
    pred = [
        (f"({a.main_max}, {a.aux_max})", f"({b.main_max}, {b.aux_max})", a.D > b.D)
        for a in far.itertuples() for b in near.itertuples()
    ]  # fmt: skip
    held = sum(p[2] for p in pred)
    return (
        f"- the paper's prediction, {what}: {held} of {len(pred)} pairs hold"
        + ("" if held == len(pred) else "; failing: " + ", ".join(
            f"{a} <= {b}" for a, b, ok_ in pred if not ok_))
    )  # fmt: skip


def main() -> None:
    df = table()
    write_parquet(HERE / "compare.parquet", df)
    text = markdown(df)
    write_text(HERE / "compare.md", text)
    print(text, end="")


if __name__ == "__main__":
    main()
