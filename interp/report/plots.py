"""Plotly figures for head maps, task overlap, attention patterns and length generalization.

Every function turns tables into a ``plotly.graph_objects.Figure`` (only the convenience
:func:`attention_figure` asks :mod:`interp.scoring.attention` for its table first), so the
same figure can be shown in a notebook (``fig.show()``) or saved with :func:`write_html`.
:func:`write_html` embeds plotly.js in the file (``include_plotlyjs=True``), so a report opens
offline; pointing at a CDN would leave a blank page on a machine without internet.

Figures:

* :func:`importance_heatmap`: one task's ``layer x head`` importance map.
* :func:`compare_maps`: two tasks' maps side by side with their difference.
* :func:`overlap_matrix`: one overlap statistic as a ``task x task`` matrix.
* :func:`pattern_figure`: one head's attention pattern on one example, tokens on the axes, from
  :func:`interp.scoring.attention.head_pattern`'s table (:func:`attention_figure` takes the pattern
  and draws it in one call).
* :func:`overlap_figures`: the heatmaps ``interp overlap`` writes, from a run's tables
  (:func:`write_overlap_figures` reads the tables and writes the files).
* :func:`accuracy_figure`: exact-match accuracy against length per task, with each task's
  training range shaded, which is how the paper shows length generalization and transfer.

**Figures in notebooks that render everywhere.** By default a notebook stores a plotly figure as
plotly's own mimetype only, which JupyterLab draws and everything else (``jupyter nbconvert
--to html``, a documentation site, GitHub) shows as nothing. :func:`notebook_figures` switches
``fig.show()`` to a renderer that stores both the mimetype and an HTML version of the figure, with
plotly.js embedded in the first figure of the notebook only and no script loaded from a CDN, so
the figures are also drawn offline. The notebooks call it once at the top.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
from plotly.io.base_renderers import MimetypeRenderer
from plotly.subplots import make_subplots
from transformer_lens import HookedTransformer

from interp.core.errors import InterpError
from interp.core.io import atomic_write
from interp.report.stat_plots import (
    DIVERGING,
    heatmap,
)
from interp.runs.dirs import RunDir
from interp.scoring.attention import PATTERN_COLUMNS, head_pattern
from interp.scoring.overlap import OVERLAP_COLUMNS, score_maps
from interp.tasks.batches import Batch

COLORS = qualitative.Plotly
LABEL_ROW = 0.07
"""Vertical distance, as a fraction of the plot's height, between the training-range labels of
:func:`accuracy_figure` (one row per band; 0.07 of a 450-pixel plot is about twice an 11-pixel
label's height)."""
# Value of each statistic for a task compared with itself (the matrix diagonal).
SELF_VALUE = {"map_diff": 0.0, "cosine": 1.0, "spearman": 1.0, "attn_diff": 0.0,
              "attn_diff_per_query": 0.0}  # fmt: skip


def _map(scores: pd.DataFrame, task: str, method: str | None, metric: str | None) -> np.ndarray:
    maps = score_maps(scores, method, metric)
    if task not in maps:
        raise InterpError(f"no head scores for task {task!r}; tasks present: {', '.join(maps)}")
    return maps[task]


def _label(scores: pd.DataFrame) -> str:
    parts = [str(scores[c].iloc[0]) for c in ("method", "metric") if c in scores.columns]
    return ", ".join(parts)


def importance_heatmap(
    scores: pd.DataFrame,
    task: str,
    *,
    method: str | None = None,
    metric: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """One task's head-importance map (layers on y, heads on x; 0 is white)."""
    m = _map(scores, task, method, metric)
    fig = go.Figure(heatmap(m, colorbar={"title": "score"}))
    fig.update_layout(
        title=title or f"{task}: head importance ({_label(scores)})",
        xaxis_title="head",
        yaxis_title="layer",
        xaxis={"dtick": 1},
        yaxis={"dtick": 1, "autorange": "reversed"},
    )
    return fig


def compare_maps(
    scores: pd.DataFrame,
    task_a: str,
    task_b: str,
    *,
    method: str | None = None,
    metric: str | None = None,
) -> go.Figure:
    """Two tasks' maps on one colour scale, and their difference ``a - b`` on its own."""
    a, b = _map(scores, task_a, method, metric), _map(scores, task_b, method, metric)
    lim = float(max(np.abs(a).max(), np.abs(b).max(), 1e-12))
    dlim = float(max(np.abs(a - b).max(), 1e-12))
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(task_a, task_b, f"{task_a} - {task_b}"),
        horizontal_spacing=0.08,
    )
    shared = {"zmin": -lim, "zmax": lim}
    fig.add_trace(heatmap(a, **shared, coloraxis="coloraxis"), 1, 1)
    fig.add_trace(heatmap(b, **shared, coloraxis="coloraxis"), 1, 2)
    fig.add_trace(heatmap(a - b, coloraxis="coloraxis2"), 1, 3)
    fig.update_layout(
        title=f"head importance: {task_a} vs {task_b} (mean |diff| = "
        f"{np.abs(a - b).mean():.4f}; {_label(scores)})",
        coloraxis={"colorscale": DIVERGING, "cmin": -lim, "cmax": lim,
                   "colorbar": {"x": 0.62, "title": "score"}},
        coloraxis2={"colorscale": DIVERGING, "cmin": -dlim, "cmax": dlim,
                    "colorbar": {"x": 1.0, "title": "diff"}},
    )  # fmt: skip
    fig.update_xaxes(title_text="head", dtick=1)
    fig.update_yaxes(title_text="layer", dtick=1, autorange="reversed")
    return fig


def overlap_matrix(overlap: pd.DataFrame, statistic: str = "map_diff") -> go.Figure:
    """One statistic of :func:`interp.scoring.overlap.overlap_table` as a symmetric task-by-task
    matrix.

    The diagonal holds the statistic's value for identical maps (0 for differences, 1 for
    similarities); cells of pairs the table lacks are blank.
    """
    missing = [c for c in OVERLAP_COLUMNS if c not in overlap.columns]
    if missing:
        raise InterpError(f"overlap table lacks columns {missing}; expected overlap_table output")
    available = list(dict.fromkeys(overlap["statistic"]))
    if statistic not in available:
        raise InterpError(
            f"unknown statistic {statistic!r}; valid choices: {', '.join(available) or 'none'}"
        )
    sub = overlap[overlap["statistic"] == statistic]
    for col in ("method", "metric"):
        if col in sub.columns and sub[col].nunique() > 1:
            raise InterpError(
                f"overlap table mixes several {col}s {sorted(sub[col].unique())}: filter to one "
                "(a matrix never mixes them)"
            )
    tasks = list(dict.fromkeys([*sub["task_a"], *sub["task_b"]]))
    idx = {t: i for i, t in enumerate(tasks)}
    self_value = 1.0 if statistic.startswith("jaccard") else SELF_VALUE.get(statistic, np.nan)
    mat = np.full((len(tasks), len(tasks)), np.nan)
    np.fill_diagonal(mat, self_value)
    for ta, tb, v in zip(sub["task_a"], sub["task_b"], sub["value"], strict=True):
        mat[idx[ta], idx[tb]] = mat[idx[tb], idx[ta]] = v
    fig = go.Figure(
        go.Heatmap(
            z=mat,
            x=tasks,
            y=tasks,
            colorscale="Viridis",
            text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.3f}")(mat),
            texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: %{z:.4f}<extra></extra>",
            colorbar={"title": statistic},
        )
    )
    fig.update_layout(title=f"task overlap: {statistic}", yaxis={"autorange": "reversed"})
    return fig


def pattern_figure(pattern: pd.DataFrame) -> go.Figure:
    """One head's attention pattern on one example, with the tokens as axis labels.

    Args:
        pattern: :func:`interp.scoring.attention.head_pattern`'s table (one row per
            ``(query, key)``).

    Axis ticks sit at positions, so repeated tokens (``1``, ``1``) stay separate cells.
    """
    missing = [c for c in PATTERN_COLUMNS if c not in pattern.columns]
    if missing:
        raise InterpError(f"attention pattern table lacks columns {missing}")
    n = int(pattern["query"].max()) + 1
    z = np.zeros((n, n))
    z[pattern["query"].to_numpy(), pattern["key"].to_numpy()] = pattern["attention"].to_numpy()
    toks = [""] * n
    for i, t in zip(pattern["key"], pattern["key_token"], strict=True):
        toks[int(i)] = str(t)
    labels = [f"{i}:{t}" for i, t in enumerate(toks)]
    first = pattern.iloc[0]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(n)),
            y=list(range(n)),
            zmin=0,
            zmax=1,
            colorscale="Blues",
            customdata=np.array([[(labels[q], labels[k]) for k in range(n)] for q in range(n)]),
            hovertemplate="query %{customdata[0]}<br>key %{customdata[1]}<br>"
            "attention %{z:.3f}<extra></extra>",
            colorbar={"title": "attention"},
        )
    )
    axis = {"tickmode": "array", "tickvals": list(range(n)), "ticktext": toks}
    p = int(first["prompt_len"])
    fig.add_hline(y=p - 1.5, line={"color": "grey", "dash": "dot"})  # first answer-step query
    fig.update_layout(
        title=f"layer {int(first['layer'])}, head {int(first['head'])}: {first['task']} "
        f"(length {int(first['length'])})",
        xaxis={**axis, "title": "key", "side": "top"},
        yaxis={**axis, "title": "query", "autorange": "reversed"},
        width=max(500, 18 * n + 200),
        height=max(450, 18 * n + 150),
    )
    return fig


def overlap_figures(
    scores: pd.DataFrame, overlap: pd.DataFrame, main: str, aux: Sequence[str]
) -> dict[str, go.Figure]:
    """The heatmaps ``interp overlap`` writes for one checkpoint, by file stem.

    Args:
        scores: the checkpoint's head scores (aggregate rows, ``length`` missing).
        overlap: the checkpoint's overlap table.
        main: the main task.
        aux: its auxiliaries.

    Returns:
        One set of figures per ``(method, metric)`` in ``scores``, never mixed: for the
        pre-declared primary pair (mean ablation, exact match) ``heads_<main>_vs_<aux>``
        (:func:`compare_maps`) per auxiliary and ``overlap_matrix`` (:func:`overlap_matrix`);
        for every other pair the same stems with ``__<method>__<metric>`` appended.
    """
    sc = scores[scores["length"].isna()]
    figs: dict[str, go.Figure] = {}
    for (method, metric), sub in sc.groupby(["method", "metric"], sort=True):
        tag = (
            "" if (method, metric) == ("mean_ablation", "exact_match") else f"__{method}__{metric}"
        )
        for t in aux:
            if t in set(sub["task"]) and main in set(sub["task"]):
                figs[f"heads_{main}_vs_{t}{tag}"] = compare_maps(sub, main, t)
        ov = overlap
        if "method" in ov.columns:
            ov = ov[(ov["method"] == method) & (ov["metric"] == metric)]
        if len(ov):
            figs[f"overlap_matrix{tag}"] = overlap_matrix(ov)
    return figs


def write_overlap_figures(run_dir: str | Path, step: int | None = None) -> list[Path]:
    """Write the heatmaps of ``interp overlap`` (:func:`interp.overlap_figures`) for one
    checkpoint into ``RUN_DIR/analysis/``, from the run's ``scores`` and ``overlap`` tables.

    Args:
        run_dir: an analysed run (``interp overlap`` or ``interp analyze`` ran on it).
        step: the checkpoint (default: the latest step in the overlap table).

    Returns:
        The files written.

    Raises:
        InterpError: if the tables are missing or hold nothing at ``step``.
    """
    rd = RunDir(run_dir)
    spec = rd.spec()
    scores, overlap = rd.read_table("scores"), rd.read_table("overlap")
    step = int(overlap["step"].max()) if step is None and len(overlap) else step
    scores, overlap = scores[scores["step"] == step], overlap[overlap["step"] == step]
    if not len(scores) or not len(overlap):
        raise InterpError(f"no head scores and overlap at step {step} in {rd.analysis_dir}")
    if {"method", "metric"} <= set(scores.columns) & set(overlap.columns):
        # Draw the head maps of a (method, metric) the overlap was computed from that scored
        # every task: the table may hold other pairs for fewer tasks (`interp score --tasks`).
        tasks = {spec.main, *spec.aux}
        for (method, metric), _ in overlap.groupby(["method", "metric"], sort=False):
            sub = scores[(scores["method"] == method) & (scores["metric"] == metric)]
            if tasks <= set(sub["task"]):
                scores = sub
                break
    figs = overlap_figures(scores, overlap, spec.main, spec.aux)
    return [write_html(fig, rd.figure_path(name)) for name, fig in figs.items()]


def attention_figure(
    model: HookedTransformer, batch: Batch, layer: int, head: int, example: int = 0
) -> go.Figure:
    """:func:`pattern_figure` of :func:`interp.scoring.attention.head_pattern` (the pattern is taken
    there; this module only draws): one head's pattern on one example, padding cut."""
    return pattern_figure(head_pattern(model, batch, layer, head, example))


def accuracy_figure(
    acc: pd.DataFrame, train_ranges: Mapping[str, tuple[int, int]], title: str | None = None
) -> go.Figure:
    """Exact-match accuracy against length, one line per task, training ranges shaded.

    Args:
        acc: a table with ``task, length, accuracy`` (e.g.
            :func:`interp.scoring.evaluate.accuracy_table`); several rows per ``(task, length)``
            (seeds, checkpoints) are averaged.
        train_ranges: ``task -> (lo, hi)``, the lengths the task was trained on; each is shaded
            in the task's colour.
        title: figure title.
    """
    missing = [c for c in ("task", "length", "accuracy") if c not in acc.columns]
    if missing:
        raise InterpError(f"accuracy table lacks columns {missing}")
    for task, rng in train_ranges.items():
        if len(rng) != 2 or rng[0] > rng[1]:
            raise InterpError(f"training range of {task!r} must be (lo, hi) with lo <= hi")
    curves = acc.groupby(["task", "length"], sort=False)["accuracy"].mean().reset_index()
    tasks = list(dict.fromkeys([*curves["task"], *train_ranges]))
    color = {t: COLORS[i % len(COLORS)] for i, t in enumerate(tasks)}
    fig = go.Figure()
    # Tasks trained on the same lengths share one shaded band and one label; each band's label
    # sits on its own row at the top, because bands often start at the same length (main 1..3,
    # auxiliaries 1..6) and labels placed by plotly at each band's corner would overlap.
    bands: dict[tuple[int, int], list[str]] = {}
    for task, (lo, hi) in train_ranges.items():
        bands.setdefault((int(lo), int(hi)), []).append(str(task))
    for row, ((lo, hi), names) in enumerate(bands.items()):
        fig.add_vrect(
            x0=lo - 0.5,
            x1=hi + 0.5,
            fillcolor=color[names[0]],
            opacity=0.12,
            line_width=0,
            layer="below",
        )
        fig.add_annotation(
            x=lo - 0.5,
            y=1.0 - LABEL_ROW * row,
            xref="x",
            yref="paper",
            xanchor="left",
            yanchor="top",
            showarrow=False,
            text=" + ".join(names) + f" trained {lo}..{hi}",
            font={"size": 11, "color": color[names[0]]},
            bgcolor="rgba(255,255,255,0.7)",
        )
    for task in dict.fromkeys(curves["task"]):
        c = curves[curves["task"] == task].sort_values("length")
        fig.add_trace(
            go.Scatter(
                x=c["length"],
                y=c["accuracy"],
                mode="lines+markers",
                name=str(task),
                line={"color": color[task]},
            )
        )
    fig.update_layout(
        title=title or "exact-match accuracy vs length (shaded: training lengths)",
        xaxis_title="length",
        yaxis={"title": "exact-match accuracy", "range": [-0.02, 1.05]},
        legend_title="task",
    )
    return fig


NOTEBOOK_RENDERER = "interp"
"""The name :func:`notebook_figures` registers its renderer under in ``plotly.io.renderers``."""


class PortableRenderer(MimetypeRenderer):
    """A plotly renderer whose output every notebook viewer can draw.

    Each figure is stored twice in the notebook: as ``application/vnd.plotly.v1+json`` (what
    JupyterLab and VS Code draw) and as ``text/html`` (what nbconvert, mkdocs-jupyter and other
    HTML viewers use). The first figure's HTML carries plotly.js itself (about 4.6 MB), so an
    exported notebook works without a network; later figures reuse it. Plotly's own
    ``notebook`` renderer would also load MathJax from a CDN with every figure, which fails
    offline; this one loads nothing.
    """

    def __init__(self) -> None:
        # plotly renders with a shallow copy of the renderer per figure, so "has plotly.js been
        # sent" must live in a shared mutable object, not in a plain attribute.
        self.state = {"sent_plotlyjs": False}

    def to_mimebundle(self, fig_dict: dict) -> dict:
        bundle = dict(pio.renderers["plotly_mimetype"].to_mimebundle(fig_dict))
        bundle["text/html"] = pio.to_html(
            fig_dict,
            include_plotlyjs=not self.state["sent_plotlyjs"],
            include_mathjax=False,
            full_html=False,
            default_width="100%",
            default_height=525,
            validate=False,
        )
        self.state["sent_plotlyjs"] = True
        return bundle


def notebook_figures() -> None:
    """Make ``fig.show()`` in this kernel store figures that render everywhere, offline.

    Registers :class:`PortableRenderer` as plotly's default renderer (under
    :data:`NOTEBOOK_RENDERER`). Call it once at the top of a notebook, before the first figure:
    plotly.js then goes into the first figure's output, once per notebook.
    """
    pio.renderers[NOTEBOOK_RENDERER] = PortableRenderer()
    pio.renderers.default = NOTEBOOK_RENDERER


def write_html(fig: go.Figure, path: str | os.PathLike[str]) -> Path:
    """Write a standalone HTML file (plotly.js embedded, opens offline) atomically."""
    return atomic_write(
        path, lambda p: fig.write_html(str(p), include_plotlyjs=True, full_html=True)
    )
