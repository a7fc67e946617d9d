"""One self-contained HTML report from the analysis tables of a run or a sweep.

The report only *reads* tables (``DIR/analysis/*.parquet``, written by
:func:`interp.analysis.analyze_sweep` or :func:`interp.pipeline.analyze_run`); when they are
missing it runs the analysis first. plotly.js is embedded once, so the file opens offline.

Sections: runs; length generalization (accuracy vs length, with and without the auxiliary);
generalization gap and transfer strength; the length-ratio gap grid (when the sweep varies
lengths, like the paper's Figure 10); head-importance maps of main vs auxiliary; the overlap
matrix; overlap and gap over checkpoints; their correlations; the causal shared-head test.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp import plots
from interp.errors import InterpError
from interp.io import write_text

TABLES = (
    "meta",
    "accuracy",
    "scores",
    "overlap",
    "attention",
    "transfer",
    "correlations",
    "causal",
)


def load_tables(
    path: str | Path, analyze: bool = True, progress: bool = True
) -> dict[str, pd.DataFrame]:
    """Read the analysis tables of a sweep or run directory (running the analysis if needed)."""
    path = Path(path)
    if not path.is_dir():
        raise InterpError(f"directory not found: {path}")
    adir = path / "analysis"
    is_sweep = (path / "cells.parquet").is_file()
    is_run = (path / "config.json").is_file()
    if not (is_sweep or is_run):
        raise InterpError(f"{path} is neither a run directory nor a sweep directory")
    if not (adir / "accuracy.parquet").is_file():
        if not analyze:
            raise InterpError(f"no analysis tables in {adir}; run the analysis first")
        if is_sweep:
            from interp.analysis import analyze_sweep

            analyze_sweep(path, progress=progress)
        else:
            from interp.pipeline import analyze_run

            analyze_run(path, progress=progress)
    tables = {
        n: pd.read_parquet(adir / f"{n}.parquet")
        for n in TABLES
        if (adir / f"{n}.parquet").is_file()
    }
    if "meta" not in tables:
        from interp.pipeline import run_meta

        tables["meta"] = pd.DataFrame([run_meta(path)])
    return tables


def _last(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["step"] == df.groupby("run")["step"].transform("max")]


def _fmt(df: pd.DataFrame, digits: int = 3) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.{digits}f}", border=0, classes="t")


class _Doc:
    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.n_figs = 0

    def h(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame) -> None:
        self.parts.append(_fmt(df))

    def fig(self, fig: go.Figure) -> None:
        fig.update_layout(template="plotly_white")
        body = fig.to_html(full_html=False, include_plotlyjs=self.n_figs == 0)
        self.parts.append(f'<div class="fig">{body}</div>')
        self.n_figs += 1

    def render(self) -> str:
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
            "table.t{border-collapse:collapse;font-size:13px;margin:8px 0}"
            "table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
            ".fig{margin:12px 0}"
        )
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{style}</style></head><body>{''.join(self.parts)}</body></html>\n"
        )


def _runs_section(doc: _Doc, meta: pd.DataFrame) -> None:
    doc.h("Runs")
    cols = [c for c in ("run", "group", "kind", "main", "aux", "main_max", "aux_max", "seed",
                        "positional", "preset") if c in meta.columns]  # fmt: skip
    doc.table(meta[cols])


def _accuracy_section(doc: _Doc, acc: pd.DataFrame, meta: pd.DataFrame) -> None:
    doc.h("Length generalization")
    doc.p(
        "Exact-match accuracy (teacher-forced, equal to greedy decoding) against length at the "
        "last checkpoint, mean over seeds. Shaded: each task's training lengths. The dashed line "
        "is the main task trained alone (the baseline)."
    )
    last = _last(acc)
    m = meta.set_index("run")
    keys = [c for c in ("group", "main_max", "aux_max", "positional", "preset") if c in m.columns]
    transfer_runs = m[m["kind"] != "baseline"]
    for cfg, runs in transfer_runs.groupby(keys, sort=False) if keys else [((), transfer_runs)]:
        first = runs.iloc[0]
        sub = last[last["run"].isin(runs.index)]
        if not len(sub):
            continue
        ranges = {first["main"]: (1, int(first["main_max"]))}
        for a in str(first["aux"]).split(","):
            if a:
                ranges[a] = (1, int(first["aux_max"]))
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, np.atleast_1d(cfg), strict=False))
        fig = plots.accuracy_figure(sub, ranges, title=f"{first.get('group', '')}: {label}")
        base_ids = [b for b in runs.get("baseline", pd.Series(dtype=str)).unique() if b]
        base = last[last["run"].isin(base_ids) & (last["task"] == first["main"])]
        if len(base):
            c = base.groupby("length")["accuracy"].mean()
            fig.add_trace(go.Scatter(x=c.index, y=c.values, name=f"{first['main']} (no aux)",
                                     line={"dash": "dash", "color": "black"}))  # fmt: skip
        doc.fig(fig)


def _metrics_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    from interp.transfer import checkpoint_metrics

    meta, acc = tables["meta"], tables["accuracy"]
    try:
        cm = checkpoint_metrics(acc, meta)
    except InterpError as e:
        doc.p(f"transfer metrics unavailable: {e}")
        return
    if not len(cm):
        return
    doc.h("Generalization gap and transfer strength")
    doc.p(
        "gap: 0 = the main task is as accurate as the auxiliary over the transfer range, 1 = it "
        "fails wherever the auxiliary succeeds. transfer_strength: the main task's mean accuracy "
        "over the transfer range minus the main-only baseline's. Last checkpoint of each run."
    )
    last = _last(cm).merge(meta, on="run", how="left")
    cols = [c for c in ("run", "group", "kind", "seed", "positional", "main_max", "aux_max",
                        "step", "main_train_acc", "main_transfer_acc", "baseline_transfer_acc",
                        "gap", "transfer_strength") if c in last.columns]  # fmt: skip
    doc.table(last[cols])
    if {"main_max", "aux_max"} <= set(last.columns) and last[
        ["main_max", "aux_max"]
    ].drop_duplicates().shape[0] > 1:
        grid = last.pivot_table(index="main_max", columns="aux_max", values="gap", aggfunc="mean")
        grid = grid.sort_index(ascending=False)
        fig = go.Figure(go.Heatmap(z=grid.values, x=[str(c) for c in grid.columns],
                                   y=[str(i) for i in grid.index], colorscale="Blues",
                                   zmin=0, zmax=1, text=np.round(grid.values, 2),
                                   texttemplate="%{text}"))  # fmt: skip
        fig.update_layout(title="generalization gap by (main length, auxiliary length), as the "
                          "paper's Figure 10", xaxis_title="aux max length",
                          yaxis_title="main max length")  # fmt: skip
        doc.fig(fig)


def _heads_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    scores, meta = tables.get("scores"), tables["meta"]
    if scores is None or not len(scores):
        return
    doc.h("Head importance: main vs auxiliary")
    doc.p(
        "Per-head importance (clean minus ablated metric) at the last checkpoint of the first "
        "run of each configuration; the third panel is the difference."
    )
    sc = _last(scores[scores["length"].isna()])
    shown = 0
    for run, sub in sc.groupby("run", sort=False):
        if shown >= 4:
            break
        row = meta[meta["run"] == run].iloc[0]
        method, metric = sub["method"].iloc[0], sub["metric"].iloc[0]
        sub = sub[(sub["method"] == method) & (sub["metric"] == metric)]
        for a in str(row["aux"]).split(","):
            if a and a in set(sub["task"]) and row["main"] in set(sub["task"]):
                fig = plots.compare_maps(sub, row["main"], a)
                fig.update_layout(title=f"{run}: {fig.layout.title.text}")
                doc.fig(fig)
        shown += 1
    ov = tables.get("overlap")
    if ov is not None and len(ov):
        first_run = ov["run"].iloc[0]
        o = _last(ov[ov["run"] == first_run])
        o = o[(o["method"] == o["method"].iloc[0]) & (o["metric"] == o["metric"].iloc[0])]
        doc.h("Overlap between tasks", 3)
        piv = o.pivot_table(index=["task_a", "task_b"], columns="statistic", values="value")
        doc.table(piv.reset_index())
        if o[["task_a", "task_b"]].drop_duplicates().shape[0] > 1:
            doc.fig(plots.overlap_matrix(o, "map_diff"))


def _over_checkpoints_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    tr = tables.get("transfer")
    if tr is None or not len(tr):
        return
    doc.h("Overlap and gap over training (the paper's Appendix B)")
    stats = [
        s for s in ("map_diff", "attn_diff_per_query", "spearman") if s in set(tr["statistic"])
    ]
    runs = list(dict.fromkeys(tr["run"]))[:4]
    for run in runs:
        sub = tr[tr["run"] == run]
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        g = sub.drop_duplicates("step").sort_values("step")
        gap_line = go.Scatter(
            x=g["step"], y=g["gap"], name="generalization gap", line={"color": "black", "width": 3}
        )
        fig.add_trace(gap_line, secondary_y=False)
        for s in stats:
            c = sub[sub["statistic"] == s].sort_values("step")
            fig.add_trace(go.Scatter(x=c["step"], y=c["overlap"], name=s, mode="lines+markers"),
                          secondary_y=True)  # fmt: skip
        fig.update_layout(title=f"{run}: gap and head overlap (main vs aux) by checkpoint")
        fig.update_xaxes(title_text="training step")
        fig.update_yaxes(title_text="gap", secondary_y=False, range=[-0.02, 1.05])
        fig.update_yaxes(title_text="overlap statistic", secondary_y=True)
        doc.fig(fig)
    corr = tables.get("correlations")
    if corr is not None and len(corr):
        doc.h("Correlations with bootstrap 95% CIs and permutation p-values", 3)
        doc.p(
            "Over checkpoints within a run (the paper's view; checkpoints are autocorrelated, so "
            "these p-values are optimistic), over seeds and over groups. Distances (map_diff, "
            "attn_diff) should correlate positively with the gap if transfer runs through shared "
            "heads; similarities (cosine, spearman, jaccard) negatively."
        )
        want = ("view", "run", "group", "statistic", "metric", "method", "r", "ci_low",
                "ci_high", "p_value", "n", "reason")  # fmt: skip
        cols = [c for c in want if c in corr.columns]
        shown = corr[corr["r"].notna()]
        if len(shown) < len(corr):
            doc.p(
                f"{len(corr) - len(shown)} correlations are undefined (fewer than 3 units in "
                "their view, e.g. one seed or one group) and are omitted; they are listed with "
                "their reason in analysis/correlations.parquet."
            )
        doc.table(shown[cols])


def _causal_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    causal = tables.get("causal")
    if causal is None or not len(causal):
        return
    doc.h("Causal test: ablate the shared heads")
    doc.p(
        "Drop in the main task's exact match when the top-k heads shared by main and auxiliary "
        "are mean-ablated together, against k random heads matched by layer (many draws), inside "
        "the main training range and in the transfer range. diff = top-k minus random, with a "
        "one-sided rank p-value. Heads were selected on other examples than those measured. "
        "random_sets counts the distinct random head sets drawn: with few heads per layer the "
        "layer-matched control can collapse to a single set, and then it has no spread."
    )
    em = causal[causal["metric"] == "exact_match"]
    want = ("run", "range", "lo", "hi", "effect", "estimate", "ci_low", "ci_high", "p_value",
            "n", "k", "heads", "clean", "random_sets")  # fmt: skip
    cols = [c for c in want if c in em.columns]
    doc.table(em[cols])
    fig = go.Figure()
    for effect in ("topk", "random"):
        e = em[em["effect"] == effect]
        label = e["run"].astype(str) + " / " + e["range"].astype(str)
        fig.add_trace(go.Bar(x=label, y=e["estimate"], name=effect, error_y={
            "type": "data", "symmetric": False, "array": e["ci_high"] - e["estimate"],
            "arrayminus": e["estimate"] - e["ci_low"]}))  # fmt: skip
    fig.update_layout(barmode="group", title="main-task exact-match drop under ablation",
                      yaxis_title="accuracy drop (clean - ablated)")  # fmt: skip
    doc.fig(fig)


def write_report(
    path: str | Path,
    out: str | Path | None = None,
    title: str | None = None,
    progress: bool = True,
) -> Path:
    """Write ``report.html`` for a run or sweep directory (analysing it first if it has no
    tables; ``progress`` shows that analysis's bars); returns its path."""
    path = Path(path)
    tables = load_tables(path, progress=progress)
    doc = _Doc(title or f"interp report: {path.name}")
    doc.h(doc.title, 1)
    doc.p(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {path}.")
    meta = tables["meta"]
    _runs_section(doc, meta)
    if "accuracy" in tables:
        _accuracy_section(doc, tables["accuracy"], meta)
        _metrics_section(doc, tables)
    _heads_section(doc, tables)
    _over_checkpoints_section(doc, tables)
    _causal_section(doc, tables)
    dest = Path(out) if out else path / "report.html"
    write_text(dest, doc.render())
    return dest
