"""Figures of the run-level statistics and the causal tests, drawn from their tables.

``between_figure`` (one dot per run, plus a partial-residual panel), ``head_sets_figure`` (d_T
against d_ID for every ablated head set, shared sets highlighted), ``dose_figure`` (transfer loss
at a matched in-distribution dose, per set type) and ``interchange_figure`` (cross-task
interchange patching per head). Like :mod:`interp.report.plots`, nothing here runs a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

COLORS = qualitative.Plotly
DIVERGING = "RdBu_r"


def heatmap(m: np.ndarray, zmid: float | None = 0.0, **kw: object) -> go.Heatmap:
    n_layers, n_heads = m.shape
    return go.Heatmap(
        z=m,
        x=list(range(n_heads)),
        y=list(range(n_layers)),
        zmid=zmid,
        colorscale=DIVERGING,
        hovertemplate="layer %{y}, head %{x}: %{z:.4f}<extra></extra>",
        **kw,
    )


def between_figure(runs: pd.DataFrame, partial: pd.DataFrame, title: str = "") -> go.Figure:
    """The primary test's two panels: transfer (logit) against overlap, one dot per run coloured
    by condition; and overlap's partial residuals (component + residual), whose least-squares
    slope is the fitted overlap coefficient.

    Args:
        runs: a :func:`interp.stats.between.prepare`d run table (``run, condition, overlap, y``).
        partial: :func:`interp.stats.between.partial_residuals` output.
        title: figure title.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "logit transfer-range accuracy vs overlap",
            "partial residual (adjusted for competence, aux accuracy, condition)",
        ),
    )
    palette = qualitative.Plotly
    conds = sorted(set(runs["condition"].astype(str)) | set(partial["condition"].astype(str)))
    for i, c in enumerate(conds):
        color = palette[i % len(palette)]
        r = runs[runs["condition"].astype(str) == c]
        fig.add_trace(
            go.Scatter(
                x=r["overlap"],
                y=r["y"],
                mode="markers",
                name=c,
                marker={"color": color, "size": 10},
                text=r["run"],
                legendgroup=c,
            ),
            row=1,
            col=1,
        )
        q = partial[partial["condition"].astype(str) == c]
        fig.add_trace(
            go.Scatter(
                x=q["overlap"],
                y=q["partial_residual"],
                mode="markers",
                name=c,
                marker={"color": color, "size": 10},
                text=q["run"],
                legendgroup=c,
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    if len(partial) >= 2 and np.ptp(partial["overlap"]) > 0:
        x = partial["overlap"].to_numpy(float)
        slope, icpt = np.polyfit(x, partial["partial_residual"].to_numpy(float), 1)
        xs = np.array([x.min(), x.max()])
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=icpt + slope * xs,
                mode="lines",
                name="fitted slope",
                line={"color": "black", "dash": "dash"},
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="overlap (main vs auxiliary)")
    fig.update_yaxes(title_text="logit transfer accuracy", row=1, col=1)
    fig.update_yaxes(title_text="partial residual", row=1, col=2)
    fig.update_layout(title=title or "primary test: one dot per run")
    return fig


def head_sets_figure(sets: pd.DataFrame, top_fraction: float = 0.1, title: str = "") -> go.Figure:
    """Damage to transfer against damage to competence for every ablated head set.

    Each dot is a head set (:func:`interp.causal.head_sets.causal_sets`): x = fraction of
    clean-correct
    examples lost in the main training range, y = the same in the transfer range. The most
    shared ``top_fraction`` of sets are highlighted; the dashed curve is the fit of ``d_t`` on
    ``d_id`` whose residuals are the transfer-specific effects.
    """
    from interp.causal.head_sets import transfer_specific

    df = sets.dropna(subset=["d_id", "d_t"])
    cut = df["shared"].quantile(1 - top_fraction) if len(df) else 0.0
    top = df["shared"] >= cut
    fig = go.Figure()
    for mask, name, color in (
        (~top, "other sets", "#bbbbbb"),
        (top, f"most shared {top_fraction:.0%}", "#d62728"),
    ):
        d = df[mask]
        fig.add_trace(
            go.Scatter(
                x=d["d_id"],
                y=d["d_t"],
                mode="markers",
                name=name,
                text=d["heads"],
                marker={"color": color, "size": 6},
            )
        )
    if len(df) > 4:
        xs = np.sort(df["d_id"].to_numpy(float))
        fitted = df["d_t"].to_numpy(float) - transfer_specific(df["d_id"], df["d_t"])
        order = np.argsort(df["d_id"].to_numpy(float))
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=fitted[order],
                mode="lines",
                name="d_t given d_id",
                line={"color": "black", "dash": "dash"},
            )
        )
    fig.update_layout(
        title=title or "every head set of size 1-3: damage to transfer vs competence",
        xaxis_title="d_ID (fraction of clean-correct lost, training range)",
        yaxis_title="d_T (fraction of clean-correct lost, transfer range)",
    )
    return fig


DOSE_COLORS = {"shared": "#d62728", "main_only": "#1f77b4", "aux_only": "#2ca02c"}


def dose_figure(sets: pd.DataFrame, title: str = "") -> go.Figure:
    """Dose-matched graded ablation (:func:`interp.causal.dose.dose_matched`): each dot a head set
    at
    its matched strength, x = delivered ``d_ID``, y = ``d_T``, coloured by set type; hollow
    dots did not reach the target even at full strength."""
    fig = go.Figure()
    for t, color in DOSE_COLORS.items():
        d = sets[sets["type"] == t]
        for reached, symbol in ((True, "circle"), (False, "circle-open")):
            e = d[d["reached"] == reached]
            if not len(e):
                continue
            fig.add_trace(
                go.Scatter(
                    x=e["d_id"], y=e["d_t"], mode="markers", text=e["heads"],
                    name=t if reached else f"{t} (target not reached)",
                    marker={"color": color, "size": 9, "symbol": symbol},
                )
            )  # fmt: skip
    fig.update_layout(
        title=title or "dose-matched graded ablation: d_T at matched d_ID, by set type",
        xaxis_title="d_ID delivered (target 0.2)",
        yaxis_title="d_T (fraction of clean-correct lost, transfer range)",
    )
    return fig


def interchange_figure(df: pd.DataFrame, metric: str = "exact_match", title: str = "") -> go.Figure:
    """Cross-task interchange patching (:func:`interp.causal.interchange.interchange_scores`): one
    layer x head heatmap of the effect on the main task per auxiliary, for one metric."""
    d = df[df["metric"] == metric]
    aux = list(dict.fromkeys(d["aux"]))
    fig = make_subplots(rows=1, cols=max(1, len(aux)), subplot_titles=aux)
    for i, a in enumerate(aux):
        e = d[d["aux"] == a]
        grid = np.full((int(e["layer"].max()) + 1, int(e["head"].max()) + 1), np.nan)
        grid[e["layer"].to_numpy(), e["head"].to_numpy()] = e["effect"].to_numpy()
        fig.add_trace(heatmap(grid, None, coloraxis="coloraxis"), row=1, col=i + 1)
    lim = float(np.nanmax(np.abs(d["effect"]))) if len(d) else 1.0
    fig.update_layout(
        title=title or f"interchange patching: effect on the main task ({metric})",
        coloraxis={"colorscale": "RdBu", "cmid": 0, "cmin": -lim, "cmax": lim},
    )
    fig.update_xaxes(title_text="head")
    fig.update_yaxes(title_text="layer", autorange="reversed")
    return fig
