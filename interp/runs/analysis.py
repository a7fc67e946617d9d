"""Analysis specs: a sweep plus what to measure on it, from training to the tables of a report.

An analysis spec (one per paper figure in ``analyses/``) is a sweep spec (:mod:`interp.runs.sweep`)
with two optional extra tables::

    [analysis]
    figure = "fig3"                 # which paper figure it reproduces (a label for the report)
    methods = ["mean_ablation"]     # head-scoring methods (interp.scoring.heads.METHODS)
    metrics = ["exact_match", "frac_lost"]  # metrics (interp.scoring.heads.METRICS; + "logprob")
    n_examples = 128                # examples per length for accuracy, scoring, attention
    k = 4                           # top-k for the Jaccard overlap
    checkpoints = "all"             # score every checkpoint ("all") or only the last ("last")
    attention = true                # the paper's attention-matrix difference
    causal = true                   # the causal shared-head test at the last checkpoint
    causal_k = 3                    # heads ablated by the causal test
    causal_random = 30              # matched random head sets

    [paper]                         # overrides for --scale paper (GPU users), merged into
    presets = ["paper"]             # the sweep keys; nested tables merge key by key
    lengths = [[16, 32]]

``interp sweep SPEC --out DIR --analyze`` trains the grid, then :func:`analyze_sweep` writes
``DIR/analysis/``: ``accuracy``, ``scores``, ``attention``, ``overlap`` (per run and checkpoint),
``transfer`` (overlap joined with the gap per checkpoint), ``correlations`` (descriptive only
within a run), ``runs``/``between``/``within`` (the tests, whose unit is the run), ``causal``,
``causal_sets``, ``dose_sets``/``dose`` and ``interchange`` (:mod:`interp.causal.dose`,
:mod:`interp.causal.interchange`) and ``meta``, all Parquet; ``interp report DIR`` turns them into
HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from interp.core.errors import InterpError
from interp.core.io import read_json, write_json
from interp.core.progress import BASELINE, CAUSAL_STAGES, StageProgress, run_plan, sweep_plan
from interp.runs.analysis_spec import AnalysisConfig
from interp.runs.causal_runs import (
    causal_for_run,
    causal_slopes,
    dose_for_run,
    head_sets_for_run,
    interchange_for_run,
)
from interp.runs.dirs import RunDir, SweepDir, open_dir
from interp.runs.pipeline import accuracy_over_checkpoints, analyze_run


def analyze_sweep(
    sweep_dir: str | Path,
    cfg: AnalysisConfig | None = None,
    progress: bool = True,
    device: str | None = None,
    batch_size: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Measure every finished run of a sweep and write the tables to ``SWEEP_DIR/analysis/``.

    Baseline (main-only) runs get accuracy per checkpoint; every other run also gets head
    scores, attention differences and overlap per checkpoint and, if ``cfg.causal``, the causal
    test at its last checkpoint. Runs without checkpoints are skipped (and listed in ``meta``
    with ``analyzed = False``). ``device`` and ``batch_size`` are passed to every stage (see
    :mod:`interp.runs.pipeline`).
    """
    from interp.stats.metrics import unseen_lengths
    from interp.stats.transfer import transfer_correlations, transfer_table

    cfg = cfg or AnalysisConfig()
    sweep = SweepDir(sweep_dir)
    cells = sweep.cells()
    frames: dict[str, list[pd.DataFrame]] = {
        k: []
        for k in (
            "accuracy", "scores", "overlap", "attention", "causal", "causal_sets",
            "dose_sets", "dose", "interchange",
        )
    }  # fmt: skip
    analyzed = []
    counts = [(r.run, r.kind, len(sweep.run(r.run).checkpoints()) if sweep.run(r.run).is_run()
               else 0) for r in cells.itertuples(index=False)]  # fmt: skip
    stages = StageProgress(sweep_plan(counts, cfg.checkpoints == "all", cfg.causal), progress)
    for row in tqdm(list(cells.itertuples(index=False)), desc="analyze runs", disable=not progress):
        rd = sweep.run(row.run)
        run_dir = rd.path
        steps = rd.checkpoints() if rd.is_run() else []
        analyzed.append(bool(steps))
        if not steps:
            continue
        chosen = steps if cfg.checkpoints == "all" else steps[-1:]
        if row.kind == "baseline":
            with stages.stage(row.run, BASELINE, f"{len(chosen)} checkpoints"):
                frames["accuracy"].append(
                    accuracy_over_checkpoints(
                        run_dir,
                        chosen,
                        cfg.n_examples,
                        progress=False,
                        device=device,
                        batch_size=batch_size,
                    )
                )
            continue
        out = analyze_run(
            run_dir,
            chosen,
            methods=cfg.methods,
            metrics=cfg.metrics,
            n_examples=cfg.n_examples,
            k=cfg.k,
            attention=cfg.attention,
            progress=False,
            device=device,
            batch_size=batch_size,
            stages=stages,
        )
        for key in ("accuracy", "scores", "overlap", "attention"):
            if key in out and len(out[key]):
                frames[key].append(out[key].assign(run=row.run))
        if cfg.causal:
            top_k, head_sets, dose, interchange = CAUSAL_STAGES
            on = {"device": device, "batch_size": batch_size}
            with stages.stage(row.run, top_k, f"step {chosen[-1]}"):
                frames["causal"].append(
                    causal_for_run(run_dir, out.get("scores"), cfg, device, batch_size)
                )
            with stages.stage(row.run, head_sets, f"step {chosen[-1]}"):
                frames["causal_sets"].append(head_sets_for_run(run_dir, cfg, **on))
            with stages.stage(row.run, dose, f"step {chosen[-1]}"):
                d_sets, d_sum = dose_for_run(run_dir, cfg, **on)
            frames["dose_sets"].append(d_sets)
            frames["dose"].append(d_sum)
            with stages.stage(row.run, interchange, f"step {chosen[-1]}"):
                frames["interchange"].append(interchange_for_run(run_dir, cfg, **on))
    tables = {k: pd.concat(v, ignore_index=True) for k, v in frames.items() if v}
    meta = cells.assign(analyzed=analyzed)
    tables["meta"] = meta
    if "accuracy" in tables:
        tables["accuracy"]["run"] = tables["accuracy"]["run"].astype(str)
    if "overlap" in tables:
        ov = tables["overlap"]
        # One transfer table per scoring method and metric, side by side: never averaged
        # across them, never one picked silently.
        parts = [
            transfer_table(sub, tables["accuracy"], meta).assign(score_method=m, score_metric=k)
            for (m, k), sub in ov.groupby(["method", "metric"], sort=True)
        ]
        table = pd.concat(parts, ignore_index=True)
        tables["transfer"] = table
        tables["correlations"] = transfer_correlations(table, n_boot=1000, n_perm=1000)
        id_lengths = {}
        for row in meta[meta["analyzed"]].itertuples(index=False):  # failed cells: no spec
            id_lengths[row.run] = unseen_lengths(sweep.run(row.run).spec())
        tables.update(run_level_tables(ov, tables["accuracy"], meta, id_lengths))
    if "causal_sets" in tables and "slope" in tables["causal_sets"].columns:
        tables["causal_slopes"] = causal_slopes(tables["causal_sets"], meta)
    for name, df in tables.items():
        sweep.write_table(name, df.reset_index(drop=True))
    return tables


def ensure_analyzed(path: str | Path, progress: bool = True) -> bool:
    """Analyse a sweep or run directory unless its tables exist (what ``interp report`` does).

    Returns:
        Whether the analysis ran.

    Raises:
        InterpError: if ``path`` is neither a run nor a sweep directory.
    """
    d = open_dir(path)
    if d.has_analysis():
        return False
    if isinstance(d, RunDir):
        analyze_run(d.path, progress=progress)
    else:
        analyze_sweep(d.path, progress=progress)
    return True


def run_level_tables(
    overlap: pd.DataFrame,
    acc: pd.DataFrame,
    meta: pd.DataFrame,
    id_lengths: dict[str, list[int]] | None = None,
) -> dict[str, pd.DataFrame]:
    """The statistics whose unit is the run (:mod:`interp.stats.between`,
    :mod:`interp.stats.within`).

    ``id_lengths`` gives, per run, the main-task lengths that measure in-distribution
    competence (:func:`interp.stats.metrics.unseen_lengths`: the training lengths whose test items
    were not seen in training); the ``runs`` table records them in ``competence_lengths``.

    Returns:
        ``runs`` (one row per run and overlap statistic at its last checkpoint), ``between``
        (the primary test per method/metric/statistic), ``contrasts`` (related vs control, for
        the pre-declared primary combination), ``within_runs`` (each run's post-convergence
        summary, no test) and ``within`` (the sign-flip test across runs).
    """
    from interp.stats.arms import related_vs_control
    from interp.stats.between import prepare
    from interp.stats.between_table import PRIMARY, between_table
    from interp.stats.run_table import run_table
    from interp.stats.within import combine, convergence, per_run

    out: dict[str, pd.DataFrame] = {}
    runs = run_table(overlap, acc, meta, id_lengths=id_lengths)
    if not len(runs):
        return out
    out["runs"] = runs
    out["between"] = between_table(runs, n_perm=2000, n_boot=1000)
    prim = runs
    for k, v in PRIMARY.items():
        if k in prim.columns:
            prim = prim[prim[k] == v]
    if len(prim):
        out["contrasts"] = related_vs_control(prepare(prim), n_boot=1000)
    allsteps = run_table(overlap, acc, meta, step="all", id_lengths=id_lengths)
    within_runs = per_run(allsteps, convergence(acc, meta))
    if len(within_runs):
        out["within_runs"] = within_runs
        out["within"] = combine(within_runs)
    return out


def save_config(sweep_dir: str | Path, cfg: AnalysisConfig) -> Path:
    """Keep a sweep's analysis config beside it, for a later ``interp analyze SWEEP_DIR``."""
    return write_json(SweepDir(sweep_dir).analysis_config_path, cfg.to_dict())


def read_config(sweep_dir: str | Path) -> AnalysisConfig:
    """The analysis config saved by ``interp sweep`` (the defaults if there is none)."""
    p = SweepDir(sweep_dir).analysis_config_path
    if not p.is_file():
        return AnalysisConfig()
    try:
        return AnalysisConfig.from_dict(read_json(p))
    except InterpError as e:
        raise InterpError(f"corrupt {p}: {e}") from None


def analyze_path(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    device: str | None = None,
    batch_size: int | None = None,
) -> dict[str, pd.DataFrame]:
    """``interp analyze``: analyse a sweep directory or a single run directory.

    A sweep uses the analysis config ``interp sweep`` saved with it; a run uses the defaults.
    ``overrides`` (``AnalysisConfig`` fields) replace either, and are validated like a spec's
    ``[analysis]`` table. A run's tables go to ``RUN_DIR/analysis/`` (:func:`analyze_run`), plus
    ``causal.parquet`` when the run has a transfer range and ``causal`` is on. ``device`` and
    ``batch_size`` are passed to every stage.

    Raises:
        InterpError: for a directory that is neither a run nor a sweep, or bad overrides.
    """
    d = open_dir(path)
    base = read_config(d.path) if isinstance(d, SweepDir) else AnalysisConfig()
    cfg = AnalysisConfig.from_dict({**base.to_dict(), **(overrides or {})})
    if isinstance(d, SweepDir):
        return analyze_sweep(d.path, cfg, progress=progress, device=device, batch_size=batch_size)
    steps = d.checkpoints()
    if not steps:
        raise InterpError(f"no checkpoints in {d.path}: nothing to analyse")
    chosen = steps if cfg.checkpoints == "all" else steps[-1:]
    with_causal = cfg.causal and bool(d.spec().aux)
    plan = run_plan(d.path.name, len(chosen), len(d.spec().task_names) > 1,
                    CAUSAL_STAGES[:1] if with_causal else ())  # fmt: skip
    stages = StageProgress(plan, enabled=progress)
    out = analyze_run(
        d.path,
        chosen,
        methods=cfg.methods,
        metrics=cfg.metrics,
        n_examples=cfg.n_examples,
        k=cfg.k,
        attention=cfg.attention,
        progress=progress,
        device=device,
        batch_size=batch_size,
        stages=stages,
    )
    if with_causal:
        with stages.stage(d.path.name, CAUSAL_STAGES[0], f"step {chosen[-1]}"):
            causal = causal_for_run(d.path, out.get("scores"), cfg, device, batch_size)
        if len(causal):
            out["causal"] = causal
            d.write_table("causal", causal)
    return out
