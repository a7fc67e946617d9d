"""Plotly figures (interp.report.plots)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig
from interp.models.factory import build_model
from interp.report.plots import (
    accuracy_figure,
    attention_figure,
    compare_maps,
    importance_heatmap,
    overlap_matrix,
    write_html,
)
from interp.scoring.overlap import overlap_table
from interp.tasks.batches import task_batch
from interp.tasks.vocab import VOCAB


def scores() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for task in ("reverse_add", "no_carry", "copy"):
        m = rng.normal(size=(2, 3))
        rows += [
            (task, pd.NA, layer, head, v, "mean_ablation", "exact_match")
            for (layer, head), v in np.ndenumerate(m)
        ]
    cols = ["task", "length", "layer", "head", "score", "method", "metric"]
    return pd.DataFrame(rows, columns=cols)


def test_importance_heatmap_holds_the_map():
    df = scores()
    fig = importance_heatmap(df, "no_carry")
    assert isinstance(fig, go.Figure)
    z = np.asarray(fig.data[0].z)
    expected = df[df["task"] == "no_carry"].sort_values(["layer", "head"])["score"]
    np.testing.assert_allclose(z.ravel(), expected.to_numpy())
    with pytest.raises(InterpError, match="no head scores for task 'mqar'"):
        importance_heatmap(df, "mqar")


def test_compare_maps_shows_both_and_their_difference():
    df = scores()
    fig = compare_maps(df, "reverse_add", "copy")
    a, b, d = (np.asarray(t.z) for t in fig.data)
    np.testing.assert_allclose(d, a - b)
    assert fig.layout.coloraxis.cmax == pytest.approx(max(abs(a).max(), abs(b).max()))


def test_overlap_matrix_is_symmetric_with_identity_diagonal():
    ov = overlap_table(scores(), k=2)
    fig = overlap_matrix(ov, "cosine")
    z = np.asarray(fig.data[0].z, dtype=float)
    assert list(fig.data[0].x) == ["reverse_add", "no_carry", "copy"]
    np.testing.assert_allclose(z, z.T)
    np.testing.assert_allclose(np.diag(z), 1.0)
    v = ov[(ov["statistic"] == "cosine") & (ov["task_a"] == "reverse_add")]
    assert z[0, 2] == pytest.approx(v[v["task_b"] == "copy"]["value"].item())
    assert np.allclose(np.diag(np.asarray(overlap_matrix(ov, "map_diff").data[0].z)), 0)
    with pytest.raises(InterpError, match="valid choices: map_diff, cosine, spearman, jaccard@2"):
        overlap_matrix(ov, "pearson")


def test_attention_figure_labels_tokens_and_cuts_padding():
    model = build_model(ModelConfig(n_layers=1, n_heads=2, d_model=16, n_ctx=64))
    batch = task_batch(model, "shortest_path", [3], 4)
    i = int(batch.seq_len.argmin())
    fig = attention_figure(model, batch, 0, 1, example=i)
    n = int(batch.seq_len[i])
    z = np.asarray(fig.data[0].z)
    assert z.shape == (n, n)
    np.testing.assert_allclose(z.sum(1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(z, 1), 0)  # causal
    assert list(fig.layout.xaxis.ticktext) == VOCAB.decode(batch.tokens[i, :n])
    assert list(fig.layout.xaxis.tickvals) == list(range(n))  # repeated tokens stay apart
    with pytest.raises(InterpError, match="outside the model"):
        attention_figure(model, batch, 1, 0)
    with pytest.raises(InterpError, match="outside the batch"):
        attention_figure(model, batch, 0, 0, example=4)


def test_accuracy_figure_lines_and_training_ranges():
    acc = pd.DataFrame(
        {
            "task": ["reverse_add"] * 4 + ["no_carry"] * 2,
            "length": [2, 4, 2, 4, 2, 4],
            "accuracy": [1.0, 0.2, 0.8, 0.4, 1.0, 1.0],  # two seeds of reverse_add
        }
    )
    fig = accuracy_figure(acc, {"reverse_add": (1, 2), "no_carry": (1, 4)})
    lines = {t.name: t for t in fig.data}
    assert list(lines) == ["reverse_add", "no_carry"]
    np.testing.assert_allclose(lines["reverse_add"].y, [0.9, 0.3])  # seeds averaged
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(r.x0, r.x1) for r in rects] == [(0.5, 2.5), (0.5, 4.5)]
    assert rects[0].fillcolor == lines["reverse_add"].line.color
    with pytest.raises(InterpError, match="lo <= hi"):
        accuracy_figure(acc, {"reverse_add": (5, 2)})
    with pytest.raises(InterpError, match="lacks columns"):
        accuracy_figure(acc.drop(columns="accuracy"), {})


def test_accuracy_figure_range_labels_do_not_overlap():
    """Group A's shape: the main range nested in the auxiliaries' shared one. Bands that start
    at the same length get labels on separate rows; tasks with one range share one band."""
    from interp.report.plots import LABEL_ROW

    acc = pd.DataFrame({"task": ["reverse_add"] * 2, "length": [1, 4], "accuracy": [1.0, 0.1]})
    ranges = {"reverse_add": (1, 3), "no_carry": (1, 6), "carry_only": (1, 6)}
    fig = accuracy_figure(acc, ranges)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(r.x0, r.x1) for r in rects] == [(0.5, 3.5), (0.5, 6.5)]
    labels = list(fig.layout.annotations)
    assert [a.text for a in labels] == [
        "reverse_add trained 1..3", "no_carry + carry_only trained 1..6"
    ]  # fmt: skip
    # Same left edge, so they must differ in height by at least one label row.
    assert labels[0].x == labels[1].x
    assert abs(labels[0].y - labels[1].y) >= LABEL_ROW - 1e-9
    assert all(a.yref == "paper" and a.showarrow is False for a in labels)


def test_write_html_is_standalone_and_atomic(tmp_path):
    fig = importance_heatmap(scores(), "copy")
    path = write_html(fig, tmp_path / "sub" / "map.html")
    text = path.read_text()
    # plotly.js is embedded (megabytes of it), not loaded from a CDN: the file opens offline.
    assert len(text) > 1_000_000 and '<script src="http' not in text
    assert [p.name for p in path.parent.iterdir()] == ["map.html"]  # no temp file left

    class Boom(go.Figure):
        def write_html(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_html(Boom(fig), path)
    assert path.read_text() == text  # the old file survives a failed write


def test_pattern_figure_draws_the_attention_table():
    from interp.report.plots import pattern_figure
    from interp.scoring.attention import head_pattern

    model = build_model(ModelConfig(n_layers=1, n_heads=2, d_model=16, n_ctx=64))
    batch = task_batch(model, "reverse_add", [2], 3)
    table = head_pattern(model, batch, 0, 1, example=2)
    n = int(batch.seq_len[2])
    assert len(table) == n * n and table.groupby("query")["attention"].sum().round(5).eq(1).all()
    fig = pattern_figure(table)
    np.testing.assert_allclose(
        np.asarray(fig.data[0].z),
        np.asarray(attention_figure(model, batch, 0, 1, example=2).data[0].z),
    )
    with pytest.raises(InterpError, match="lacks columns"):
        pattern_figure(table.drop(columns="key_token"))


def test_overlap_figures_one_set_per_method_and_metric_never_mixed():
    from interp.report.plots import overlap_figures

    a = scores()
    b = a.assign(metric="frac_lost", score=a["score"].abs())
    both = pd.concat([a, b], ignore_index=True)
    ov = pd.concat(
        [
            overlap_table(a, k=2).assign(method="mean_ablation", metric="exact_match"),
            overlap_table(b, k=2).assign(method="mean_ablation", metric="frac_lost"),
        ],
        ignore_index=True,
    )
    with pytest.raises(InterpError, match="mixes several metrics"):
        overlap_matrix(ov, "map_diff")
    figs = overlap_figures(both, ov, "reverse_add", ["no_carry"])
    assert set(figs) == {
        "heads_reverse_add_vs_no_carry",
        "overlap_matrix",
        "heads_reverse_add_vs_no_carry__mean_ablation__frac_lost",
        "overlap_matrix__mean_ablation__frac_lost",
    }
    # The frac_lost figure draws the frac_lost maps (all non-negative here), not the others.
    z = np.asarray(figs["heads_reverse_add_vs_no_carry__mean_ablation__frac_lost"].data[0].z)
    assert (z >= 0).all()


def test_dose_and_interchange_figures_draw_their_tables():
    from interp.report.stat_plots import dose_figure, interchange_figure

    sets = pd.DataFrame(
        {
            "type": ["shared", "shared", "main_only", "aux_only"],
            "heads": ["L0H0", "L0H1", "L1H0", "L1H1"],
            "d_id": [0.2, 0.21, 0.19, 0.05],
            "d_t": [0.5, 0.4, 0.1, 0.0],
            "reached": [True, True, True, False],
        }
    )
    fig = dose_figure(sets)
    names = [t.name for t in fig.data]
    assert names == ["shared", "main_only", "aux_only (target not reached)"]
    assert list(fig.data[0].y) == [0.5, 0.4]
    ic = pd.DataFrame(
        {
            "aux": ["no_carry"] * 4,
            "metric": ["exact_match"] * 4,
            "layer": [0, 0, 1, 1],
            "head": [0, 1, 0, 1],
            "effect": [0.0, -0.5, 0.25, 0.0],
        }
    )
    z = np.asarray(interchange_figure(ic).data[0].z)
    np.testing.assert_allclose(z, [[0.0, -0.5], [0.25, 0.0]])


def test_notebook_figures_store_html_with_plotlyjs_once():
    """Through plotly's own show() path (which copies the renderer for every figure): the first
    figure's HTML carries plotly.js, later ones reuse it, every one also has the mimetype."""
    import plotly.io as pio

    from interp.report.plots import NOTEBOOK_RENDERER, notebook_figures

    previous = pio.renderers.default
    try:
        notebook_figures()
        assert pio.renderers.default == NOTEBOOK_RENDERER
        fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
        first = pio.renderers._build_mime_bundle(fig.to_dict())
        second = pio.renderers._build_mime_bundle(fig.to_dict())
    finally:
        pio.renderers.default = previous
    for bundle in (first, second):
        assert set(bundle) == {"application/vnd.plotly.v1+json", "text/html"}
        assert 'class="plotly-graph-div"' in bundle["text/html"]
        assert "cdn" not in bundle["text/html"].split("plotly.js v")[0].lower()
    assert first["text/html"].count("* plotly.js v") == 1
    assert "plotly.js v" not in second["text/html"]
