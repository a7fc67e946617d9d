"""Runs on disk and the stages over them: run specs, run and sweep directories, loading a run,
training, sweeps (with executors and monitor), the per-run pipeline and the analysis of a
sweep. Above the measurements they call; below the zoo, the reports and the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.core.lazy import lazy_getattr

if TYPE_CHECKING:
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

_PUBLIC = {
    "analyze_path": "interp.runs.analysis",
    "analyze_sweep": "interp.runs.analysis",
    "CELLS": "interp.runs.dirs",
    "claim_dir": "interp.runs.dir_kinds",
    "CONFIG": "interp.runs.dirs",
    "dir_kind": "interp.runs.dir_kinds",
    "DONE": "interp.runs.dirs",
    "eval_run": "interp.runs.loader",
    "FAILURES": "interp.runs.dirs",
    "is_shipped_entry": "interp.runs.dirs",
    "is_zoo_entry": "interp.runs.dirs",
    "load_run": "interp.runs.loader",
    "load_spec": "interp.runs.spec",
    "LoadedRun": "interp.runs.loader",
    "METRICS": "interp.runs.dirs",
    "open_dir": "interp.runs.dirs",
    "outputs_dir": "interp.runs.dir_kinds",
    "OUTPUTS_KIND": "interp.runs.dir_kinds",
    "overlap_run": "interp.runs.pipeline",
    "RESULTS": "interp.runs.dirs",
    "run_sweep": "interp.runs.sweep",
    "RunDir": "interp.runs.dirs",
    "RUNS": "interp.runs.dirs",
    "score_run": "interp.runs.pipeline",
    "SWEEP_JSON": "interp.runs.dirs",
    "SweepDir": "interp.runs.dirs",
    "TrainSpec": "interp.runs.spec",
}

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

__getattr__ = lazy_getattr(__name__, _PUBLIC)
