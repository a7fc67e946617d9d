"""One self-contained HTML report from the analysis tables of a run or a sweep.

The report only *reads* tables (``DIR/analysis/*.parquet``, written by
:func:`interp.runs.analysis.analyze_sweep` or :func:`interp.runs.pipeline.analyze_run`) and draws
them
with :mod:`interp.report.plots`; :func:`load_tables` refuses a directory that was not analysed, and
only :func:`write_report`'s ``analyze`` flag (on for ``interp report``) runs the analysis first.
plotly.js is embedded once, so the file opens offline.

Sections: runs; length generalization (accuracy vs length, with and without the auxiliary);
generalization gap and transfer strength; the length-ratio gap grid (when the sweep varies
lengths, like the paper's Figure 10); head-importance maps of main vs auxiliary; the overlap
matrix; overlap and gap over checkpoints; their correlations; the causal shared-head test.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.core.errors import InterpError
from interp.core.io import write_text
from interp.report import plots, stat_plots
from interp.report.doc import Doc as _Doc
from interp.runs.dirs import RunDir, open_dir

TABLES = (
    "meta",
    "family",
    "accuracy",
    "scores",
    "overlap",
    "attention",
    "transfer",
    "correlations",
    "causal",
    "runs",
    "between",
    "contrasts",
    "within_runs",
    "within",
    "causal_sets",
    "causal_slopes",
)


def load_tables(path: str | Path) -> dict[str, pd.DataFrame]:
    """Read the analysis tables of a sweep or run directory; nothing is computed here.

    Raises:
        InterpError: if ``path`` is missing or neither a run nor a sweep directory, or has no
            analysis tables yet (run ``interp analyze PATH`` first).
    """
    d = open_dir(path)
    if not d.has_analysis():
        raise InterpError(
            f"no analysis tables in {d.analysis_dir}; run `interp analyze {d.path}` first"
        )
    tables = d.read_tables(TABLES)
    if "meta" not in tables:
        tables["meta"] = pd.DataFrame([d.meta()]) if isinstance(d, RunDir) else d.cells()
    return tables


def _last(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["step"] == df.groupby("run")["step"].transform("max")]


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
    from interp.stats.transfer import checkpoint_metrics

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
    from interp.stats.metrics import SOLVED_LOWER, run_metrics

    last = _last(cm).merge(meta, on="run", how="left")
    rm = run_metrics(acc, meta)
    if len(rm):
        last = last.merge(rm.drop(columns="step"), on="run", how="left")
    doc.p(
        "Accuracies pool the counts over each range and carry 95% Clopper-Pearson intervals "
        "(train_ci_*, transfer_ci_*). gap_<aux>: the gap against that auxiliary alone, over the "
        f"lengths where it is solved (Clopper-Pearson lower bound >= {SOLVED_LOWER}); gap_min: "
        "the smallest. curve_distance: sum |main - aux| / sum max(main, aux) over lengths "
        "1..max(main_max, aux_max), two-sided, defined for every (main, aux) length pair. "
        "Seeds are listed one per row."
    )
    gap_cols = sorted(c for c in last.columns if c.startswith("gap_"))
    cols = [c for c in ("run", "group", "kind", "seed", "positional", "main_max", "aux_max",
                        "step", "train_acc", "train_ci_low", "train_ci_high", "transfer_acc",
                        "transfer_correct", "transfer_n", "transfer_ci_low", "transfer_ci_high",
                        "baseline_transfer_acc", "gap", *gap_cols, "curve_distance",
                        "transfer_strength") if c in last.columns]  # fmt: skip
    doc.table(last[cols])
    if {"main_max", "aux_max", "curve_distance"} <= set(last.columns) and last[
        ["main_max", "aux_max"]
    ].drop_duplicates().shape[0] > 1:
        grid = last.pivot_table(
            index="main_max", columns="aux_max", values="curve_distance", aggfunc="mean"
        )
        grid = grid.sort_index(ascending=False)
        fig = go.Figure(go.Heatmap(z=grid.values, x=[str(c) for c in grid.columns],
                                   y=[str(i) for i in grid.index], colorscale="Blues",
                                   zmin=0, zmax=1, text=np.round(grid.values, 2),
                                   texttemplate="%{text}"))  # fmt: skip
        fig.update_layout(title="curve distance by (main length, auxiliary length), as the "
                          "paper's Figure 10 (mean over seeds)", xaxis_title="aux max length",
                          yaxis_title="main max length")  # fmt: skip
        doc.fig(fig)


def _heads_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    scores, meta = tables.get("scores"), tables["meta"]
    if scores is None or not len(scores):
        return
    doc.h("Head importance: main vs auxiliary")
    doc.p(
        "Per-head importance (clean minus ablated metric; frac_lost: the fraction of the "
        "clean-correct examples the ablation breaks) at the last checkpoint of the first runs, "
        "one figure per scoring method and metric; the third panel is the difference. Main and "
        "auxiliary maps are scored on the same lengths (the main task's training range); "
        "'<aux>@transfer' is the auxiliary scored on the transfer range, its own map."
    )
    sc = _last(scores[scores["length"].isna()])
    shown = 0
    for run, sub in sc.groupby("run", sort=False):
        if shown >= 4:
            break
        row = meta[meta["run"] == run].iloc[0]
        # One figure per (method, metric): never mixed, none dropped.
        for _, one in sub.groupby(["method", "metric"], sort=True):
            for a in str(row["aux"]).split(","):
                if a and a in set(one["task"]) and row["main"] in set(one["task"]):
                    fig = plots.compare_maps(one, row["main"], a)
                    fig.update_layout(title=f"{run}: {fig.layout.title.text}")
                    doc.fig(fig)
        shown += 1
    ov = tables.get("overlap")
    if ov is not None and len(ov):
        first_run = ov["run"].iloc[0]
        o = _last(ov[ov["run"] == first_run])
        doc.h("Overlap between tasks", 3)
        doc.p("One row per scoring method and metric; nothing is averaged across them.")
        idx = [c for c in ("method", "metric") if c in o.columns] + ["task_a", "task_b"]
        piv = o.pivot_table(index=idx, columns="statistic", values="value")
        doc.table(piv.reset_index())
        keys = [c for c in ("method", "metric") if c in o.columns]
        groups = o.groupby(keys, sort=True) if keys else [((), o)]
        for key, o1 in groups:
            if o1[["task_a", "task_b"]].drop_duplicates().shape[0] > 1:
                key = key if isinstance(key, tuple) else (key,)
                label = " / ".join(map(str, key))
                fig = plots.overlap_matrix(o1, "map_diff")
                fig.update_layout(title=f"map_diff between tasks ({label})")
                doc.fig(fig)


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
        doc.h("Correlations (descriptive over checkpoints and groups; tested over 5+ seeds)", 3)
        doc.p(
            "Over checkpoints within a run (the paper's view) the coefficient is descriptive "
            "only: one run's checkpoints are autocorrelated and share its training trajectory, "
            "so no interval or p-value is computed from them (see the within-run and primary "
            "tests). Over seeds and groups each run is one unit. Distances (map_diff, "
            "attn_diff) should correlate positively with the gap if transfer runs through shared "
            "heads; similarities (cosine, spearman, jaccard) negatively."
        )
        want = ("view", "run", "group", "score_method", "score_metric", "statistic", "metric",
                "method", "r", "ci_low", "ci_high", "p_value", "n", "reason")  # fmt: skip
        cols = [c for c in want if c in corr.columns]
        shown = corr[corr["r"].notna()]
        if len(shown) < len(corr):
            doc.p(
                f"{len(corr) - len(shown)} correlations are undefined (fewer than 3 units in "
                "their view, e.g. one seed or one group) and are omitted; they are listed with "
                "their reason in analysis/correlations.parquet."
            )
        doc.table(shown[cols])


def _primary_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    """The between-run primary test first: what it found, in words, then the numbers."""
    from interp.stats.between import partial_residuals, prepare, primary_test
    from interp.stats.between_table import describe

    between = tables.get("between")
    doc.h("Primary test: head overlap and transfer across runs")
    if between is None or not len(between):
        doc.p(
            "not testable (n=0): no run with an auxiliary task has both head overlap and "
            "accuracy tables."
        )
        return
    prim = between[between["primary"]] if "primary" in between.columns else between
    row = prim.iloc[0] if len(prim) == 1 else None
    if row is not None:
        doc.p(describe(row) + ".")
    else:
        # No row is promoted to "the" result when the pre-declared one is absent (or ambiguous).
        doc.p(
            f"The pre-declared primary combination was not computed ({len(prim)} rows marked "
            "primary); every row below is exploratory."
        )
    doc.p(
        "Unit: the run (final checkpoint; runs with in-distribution competence below 0.9 "
        "excluded and listed). Primary model (analyses/family/PLAN.md): within-condition rank of "
        "the transfer-range count ~ overlap + condition, by least squares; secondary rows add "
        "competence or use the empirical logit. p-value: Freedman-Lane permutation within "
        "condition; interval: classical t interval; mde: the coefficient detectable with 80% "
        "power. The single pre-declared primary row is marked primary; the other rows are "
        "secondary or exploratory (no correction for multiplicity)."
    )
    want = ("primary", "method", "metric", "statistic", "model", "estimate", "ci_low", "ci_high",
            "t", "p_value", "mde", "n_runs", "n_conditions", "df_resid", "covariates", "dropped",
            "excluded", "reason")  # fmt: skip
    doc.results(
        "Does more head overlap go with more transfer across runs?",
        between,
        "p_value",
        [c for c in want if c in between.columns],
    )
    runs = tables.get("runs")
    if row is not None and runs is not None and len(runs) and not row.get("reason"):
        sub = runs
        for k in ("method", "metric", "statistic"):
            if k in sub.columns and k in row:
                sub = sub[sub[k] == row[k]]
        res = primary_test(sub, n_perm=200, n_boot=200)
        doc.fig(stat_plots.between_figure(prepare(sub), partial_residuals(res)))
    contrasts = tables.get("contrasts")
    if contrasts is not None and len(contrasts):
        doc.h("Related vs control runs (secondary)", 3)
        doc.p(
            "Difference of run means, related minus control, for overlap and for transfer "
            "(y = empirical logit); exact permutation p-value over label assignments."
        )
        doc.results("Do related and control runs differ?", contrasts, "p_value")


def _within_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    within, per = tables.get("within"), tables.get("within_runs")
    if within is None or per is None or not len(per):
        return
    doc.h("Within runs, after convergence (sign-flip test across runs)", 3)
    doc.p(
        "A checkpoint is kept once the main task and each auxiliary are >= 0.9 pooled over the "
        "main training lengths (from the first such checkpoint on); a run enters with >= 5 kept "
        "checkpoints and some transfer. Each run gives one number (the correlation of the first "
        "differences of overlap and logit transfer, log-step and saturating trends removed), "
        "and the runs are combined by a sign-flip test; the interval inverts it, mde is the "
        "shift detectable with 80% power. No run is tested on its own checkpoints."
    )
    doc.results("Do overlap and transfer move together within runs?", within, "p_value")
    want = ("run", "condition", "statistic", "n_checkpoints", "value", "reason")
    doc.results(
        "Per-run correlation after convergence:", per, "value",
        [c for c in want if c in per.columns],
    )  # fmt: skip


def _head_sets_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    sets = tables.get("causal_sets")
    if sets is None or not len(sets):
        return
    doc.h("Causal test separating transfer from competence: every head set of size 1-3", 3)
    doc.p(
        "Each dot is a set of heads mean-ablated together at the final checkpoint. d_ID / d_T: "
        "fraction of the main task's clean-correct examples lost in its training / transfer "
        "range. The dashed curve is d_T expected from d_ID (cubic fit); a set's residual is its "
        "transfer-specific effect. Per run, the slope of the residual on the set's sharedness "
        "is one number (sets overlap, so no test within a run); runs are combined by a "
        "sign-flip test."
    )
    for run, sub in list(sets.groupby("run", sort=False))[:4]:
        doc.fig(stat_plots.head_sets_figure(sub, title=f"{run}: d_T vs d_ID for every head set"))
    slopes = tables.get("causal_slopes")
    if slopes is not None and len(slopes):
        doc.results("Do shared head sets carry transfer beyond competence?", slopes, "p_value")
    _dose_section(doc, tables)
    _interchange_section(doc, tables)


def _dose_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    sets, summary = tables.get("dose_sets"), tables.get("dose")
    if sets is None or not len(sets) or summary is None:
        return
    doc.h("Dose-matched graded ablation: transfer lost at equal damage to competence", 3)
    doc.p(
        "Each head set is ablated gradually, z <- (1 - a) z + a mean, with a found by bisection "
        "so that it breaks 20% of the main task's clean-correct training-range examples "
        "(d_ID = 0.2). Set types by a rule fixed in advance: top-4 heads of the main map (M) and "
        "of the auxiliary map (A), both mean ablation / frac_lost on the main training lengths; "
        "shared = M & A, main-only = M - A, aux-only = A - M; every subset of 1-2 heads of a "
        "type. If transfer runs through shared heads, shared sets should lose more transfer "
        "(d_T) than main-only sets at the same d_ID. Sets of a run share heads: descriptive."
    )
    doc.table(summary)
    for run, sub in list(sets.groupby("run", sort=False))[:4]:
        doc.fig(stat_plots.dose_figure(sub, title=f"{run}: d_T at matched d_ID, by set type"))


def _interchange_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    df = tables.get("interchange")
    if df is None or not len(df):
        return
    doc.h("Cross-task interchange patching at transfer lengths", 3)
    doc.p(
        "Each head's output is taken from the auxiliary prompt with the same operands (only the "
        "task-identity token differs; the teacher-forced answer is the main task's) and patched "
        "into the main task at the transfer lengths; effect = patched minus unpatched main-task "
        "metric. A head whose output does not depend on the task asked scores 0."
    )
    cols = ["run", "aux", "metric", "main", "source", "n", "lengths"]
    doc.table(df[cols].drop_duplicates())
    for run, sub in list(df.groupby("run", sort=False))[:4]:
        for metric in dict.fromkeys(sub["metric"]):
            title = f"{run}: interchange ({metric})"
            doc.fig(stat_plots.interchange_figure(sub, metric, title=title))


def _causal_section(doc: _Doc, tables: dict[str, pd.DataFrame]) -> None:
    causal = tables.get("causal")
    if causal is None or not len(causal):
        return
    doc.h("Causal test: ablate the shared heads")
    doc.p(
        "Drop in the main task's exact match when the top-k heads shared by main and auxiliary "
        "are mean-ablated together, against distinct sets of k other heads matched on the damage "
        "they do in the main training range (id_drop_topk vs id_drop_random), inside the main "
        "training range and in the transfer range. diff = top-k minus the median control set, "
        "with a one-sided rank p-value and the interval inverting that test; with fewer distinct "
        "control sets than a p of 0.05 needs (random_sets < 19) there is no p-value (reason). "
        "Heads were selected on other examples than those measured."
    )
    em = causal[causal["metric"] == "exact_match"]
    want = ("run", "range", "lo", "hi", "effect", "estimate", "ci_low", "ci_high", "p_value",
            "n", "k", "heads", "clean", "random_sets", "id_drop_topk", "id_drop_random",
            "reason")  # fmt: skip
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
    analyze: bool = True,
    progress: bool = True,
    family: str | Path | None = None,
) -> Path:
    """Write ``report.html`` for a run or sweep directory; returns its path.

    Args:
        path: the run or sweep directory.
        out: the HTML file (default: ``PATH/report.html``).
        title: the report's title.
        analyze: when the analysis tables are missing, analyse the directory first
            (:func:`interp.runs.analysis.ensure_analyzed`, what ``interp report`` does); with
            ``False`` a directory without tables is an error. This is the only place the
            report stage starts a computation; the report itself only reads tables.
        progress: show that analysis's progress bars.
        family: an analysed zoo-family directory (:mod:`interp.zoo.family_sweep`); its
            per-condition transfer table and primary test lead the report, before ``path``'s
            sections.
    """
    if analyze:
        from interp.runs.analysis import ensure_analyzed

        ensure_analyzed(path, progress=progress)
    path = Path(path)
    tables = load_tables(path)
    doc = _Doc(title or f"interp report: {path.name}")
    doc.h(doc.title, 1)
    doc.p(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {path}.")
    meta = tables["meta"]
    if family is not None:
        from interp.report.family_section import family_section

        fam = load_tables(family)
        family_section(doc, fam)
        _primary_section(doc, fam)
        doc.h(f"Live runs ({path.name}): trained just now", 1)
    _primary_section(doc, tables)
    _runs_section(doc, meta)
    if "accuracy" in tables:
        _accuracy_section(doc, tables["accuracy"], meta)
        _metrics_section(doc, tables)
    _heads_section(doc, tables)
    _over_checkpoints_section(doc, tables)
    _within_section(doc, tables)
    _causal_section(doc, tables)
    _head_sets_section(doc, tables)
    dest = Path(out) if out else open_dir(path).report_path
    write_text(dest, doc.render())
    return dest
