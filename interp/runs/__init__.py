"""Runs on disk and the stages over them: run specs, run and sweep directories, loading a run,
training, sweeps (with executors and monitor), the per-run pipeline and the analysis of a
sweep. Above the measurements they call; below the zoo, the reports and the CLI.
"""

from __future__ import annotations

from interp.runs.analysis import analyze_path, analyze_sweep
from interp.runs.dir_kinds import OUTPUTS_KIND, claim_dir, dir_kind, outputs_dir
from interp.runs.dirs import (
    CELLS,
    CONFIG,
    DONE,
    FAILURES,
    METRICS,
    RESULTS,
    RUNS,
    SWEEP_JSON,
    RunDir,
    SweepDir,
    is_shipped_entry,
    is_zoo_entry,
    open_dir,
)
from interp.runs.loader import LoadedRun, eval_run, load_run
from interp.runs.pipeline import overlap_run, score_run
from interp.runs.spec import TrainSpec, load_spec
from interp.runs.sweep import run_sweep

__all__ = [
    "CELLS",
    "CONFIG",
    "DONE",
    "FAILURES",
    "METRICS",
    "OUTPUTS_KIND",
    "RESULTS",
    "RUNS",
    "SWEEP_JSON",
    "claim_dir",
    "dir_kind",
    "is_shipped_entry",
    "is_zoo_entry",
    "outputs_dir",
    "LoadedRun",
    "RunDir",
    "SweepDir",
    "TrainSpec",
    "analyze_path",
    "analyze_sweep",
    "eval_run",
    "load_run",
    "load_spec",
    "open_dir",
    "overlap_run",
    "run_sweep",
    "score_run",
]
