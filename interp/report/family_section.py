"""The report section that leads the demo: transfer across a zoo family, seed by seed.

Reads the ``family`` table written by :func:`interp.zoo.family_sweep.analyze_family` (the main
task's accuracy per entry and length at the final checkpoint, with Clopper-Pearson intervals)
and shows it two ways: a table with one row per (condition, seed), so that all-or-nothing
transfer is visible seed by seed instead of being averaged away, and a figure of accuracy
against length, one line per entry, coloured by condition, with the main task's training range
shaded.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from interp.report.doc import Doc
from interp.zoo.family import TRANSFER_THRESHOLD, transfers

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#7f7f7f")


def family_pivot(fam: pd.DataFrame) -> pd.DataFrame:
    """One row per (condition, seed): accuracy ``[lo, hi]`` at every length, the transfer-range
    mean and whether the seed transfers (accuracy at the first transfer length above
    :data:`interp.zoo.family.TRANSFER_THRESHOLD`)."""
    rows = []
    verdict = transfers(fam, key="run")
    for (cond, run, seed), g in fam.groupby(["condition", "run", "seed"], sort=False):
        g = g.set_index("length")
        lo, hi = int(g["transfer_lo"].iloc[0]), int(g["transfer_hi"].iloc[0])
        row: dict[str, object] = {"condition": cond, "seed": int(seed), "run": run}
        for L, r in g.iterrows():
            row[str(L)] = f"{r['accuracy']:.2f} [{r['ci_lo']:.2f}, {r['ci_hi']:.2f}]"
        row[f"mean {lo}-{hi}"] = round(float(g.loc[lo:hi, "accuracy"].mean()), 3)
        row["transfers"] = "yes" if verdict.get(run, False) else "no"
        rows.append(row)
    return pd.DataFrame(rows)


def family_figure(fam: pd.DataFrame) -> go.Figure:
    """Main-task accuracy against length, one line per entry, coloured by condition."""
    fig = go.Figure()
    colors = {c: _COLORS[i % len(_COLORS)] for i, c in enumerate(fam["condition"].unique())}
    shown: set[str] = set()
    for (cond, run), g in fam.groupby(["condition", "run"], sort=False):
        g = g.sort_values("length")
        fig.add_trace(
            go.Scatter(
                x=g["length"], y=g["accuracy"], mode="lines+markers", name=cond,
                legendgroup=cond, showlegend=cond not in shown, hovertext=run,
                line={"color": colors[cond]},
                error_y={"type": "data", "symmetric": False,
                         "array": g["ci_hi"] - g["accuracy"],
                         "arrayminus": g["accuracy"] - g["ci_lo"]},
            )
        )  # fmt: skip
        shown.add(cond)
    lo = int(fam["transfer_lo"].min())
    fig.add_vrect(x0=0.5, x1=lo - 0.5, fillcolor="#bbb", opacity=0.2, line_width=0)
    fig.update_layout(
        title="main task accuracy by length, every seed (shaded: its training range)",
        xaxis_title="length (digits)", yaxis_title="exact match", yaxis_range=[-0.02, 1.02],
        height=420,
    )  # fmt: skip
    return fig


def family_section(doc: Doc, tables: dict[str, pd.DataFrame]) -> None:
    """Append the per-condition transfer table and its figure (nothing if no ``family``)."""
    fam = tables.get("family")
    if fam is None or not len(fam):
        return
    n = int(fam["n"].max())
    lo = int(fam["transfer_lo"].min())
    doc.h("Transfer across the zoo family, seed by seed")
    doc.p(
        f"Each row is one trained model (final checkpoint), evaluated here on {n} test items "
        "per length; brackets are 95% Clopper-Pearson intervals from that count (test-set "
        f"uncertainty, not seed-to-seed spread). A seed 'transfers' when its accuracy at length "
        f"{lo}, the first length past the main task's training range, exceeds "
        f"{TRANSFER_THRESHOLD} (declared before looking)."
    )
    piv = family_pivot(fam)
    summary = piv.groupby("condition", sort=False)["transfers"].agg(
        lambda s: f"{(s == 'yes').sum()}/{len(s)}"
    )
    doc.p("Seeds that transfer: " + "; ".join(f"{c}: {v}" for c, v in summary.items()) + ".")
    doc.table(piv)
    doc.fig(family_figure(fam))
