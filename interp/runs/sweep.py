"""Sweeps: a grid of training runs, executed locally or on Ray, aggregated into one table.

The paper's evidence is comparative: the same main task with and without a related auxiliary,
across task groups, length pairs, positional schemes and seeds. A *sweep spec* describes such a
grid in one TOML file; :func:`run_sweep` trains every cell (skipping finished ones) and gathers
every run's accuracy curves into ``SWEEP_DIR/results.parquet``.

Sweep spec format (``analyses/sweep_example.toml`` is a runnable one)::

    name = "example"                 # a label (optional)
    groups = ["arith_a", "control_1"] # interp.tasks.get_group names: (main, aux) + kind
    seeds = [0, 1]
    lengths = [[4, 8]]               # [main_max, aux_max] pairs: the CPU-scale training ranges
    positional = ["rope"]            # optional, default ["rope"]; any of rope, nope, learned
    presets = ["tiny"]               # optional, default ["cpu"]; models/presets/NAME.json
    baseline = true                  # optional: also train the main task alone (per cell)
    eval_margin = 2                  # optional: evaluate up to max(main_max, aux_max) + margin

    [base.model]                     # optional overrides on top of the preset
    [base.optim]                     # the TrainSpec sections, applied to every cell
    lr = 3e-3
    [base.train]
    steps = 200
    batch_size = 32
    [base.eval]
    examples = 32

Every list key also accepts a single value. The grid is groups x seeds x lengths x positional x
presets. A cell trains the group's main task on lengths ``[1, main_max]`` and every auxiliary on
``[1, aux_max]`` (the task's own minimum where that is larger, e.g. 2 for mazes), and evaluates
every task up to ``eval.max_length = max(main_max, aux_max) + eval_margin`` unless
``[base.eval]`` sets ``max_length``. With ``baseline = true`` each cell also gets a main-only
run with the same main range, evaluation range, seed and model: the reference for
:func:`interp.scoring.evaluate.transfer_strength`. Groups that share a main task (``arith_a``,
``arith_b`` and ``control_1`` all train ``reverse_add``) share that baseline run instead of
training it once per group.

Layout of ``SWEEP_DIR``::

    sweep.json          the sweep spec as given
    cells.parquet       one row per cell: run, group, kind, main, aux, main_max, aux_max, seed,
                        positional, preset, baseline (the metadata interp.stats.transfer expects)
    runs/<cell_id>/     an ordinary run directory (interp.runs.train), e.g.
                        runs/arith_a-tiny-rope-m4-a8-s0 or
                        runs/baseline-reverse_add-tiny-rope-m4-e8-s0; its status.json
                        (step, loss, speed) drives the per-cell progress lines
    failures.json       cells that failed in the latest invocation, with their error messages
    results.parquet     per run, per evaluated checkpoint, per task and length: accuracy, plus
                        the cell columns, ``role`` (main/aux) and ``done``

**Restartable.** A cell whose run directory holds a finished run
(:func:`interp.runs.train.is_done`) is
skipped; an unfinished one resumes from its last checkpoint. A failing cell is recorded and the
others go on. Aggregation rereads every run directory, so results of earlier invocations and of
partially trained cells are never lost. Every table is written atomically (:mod:`interp.core.io`).

**Modules.** The spec and its grid live in :mod:`interp.runs.sweep_spec`, the executors (``local``
process pool, ``ray``, ``serial``; see there) in :mod:`interp.runs.executors`, the per-cell progress
lines in :mod:`interp.runs.sweep_monitor`; this module runs the cells and collects their results.
The
names callers use (``run_sweep``, ``expand``, ``load_sweep_spec``, ``SweepSpec``, ``Cell``,
``get_executor``, the executors, ``CellMonitor``, the file names) are importable from here.

A script that uses the ``local`` executor must guard its entry point with
``if __name__ == "__main__":``, as for any ``spawn``-based pool: each worker re-imports the main
module, and without the guard the import would start the sweep again (Python refuses, and every
cell is recorded as "worker crashed").
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from interp.core.device import check_gpu_fraction, parse_device, resolve_device
from interp.core.errors import InterpError
from interp.core.io import (
    dir_lock,
    output_dir,
    read_json,
    read_parquet,
    remove_stale_temps,
    write_json,
    write_parquet,
)
from interp.runs.dir_kinds import SWEEP_KIND, claim_dir
from interp.runs.dirs import CELLS, FAILURES, META_COLUMNS, RESULTS, RUNS, SWEEP_JSON, SweepDir
from interp.runs.executors import (
    CELL_THREADS,
    EXECUTORS,
    Executor,
    LocalExecutor,
    RayExecutor,
    SerialExecutor,
    check_executor_args,
    get_executor,
)
from interp.runs.spec import TrainSpec
from interp.runs.sweep_monitor import CellMonitor
from interp.runs.sweep_spec import (
    Cell,
    SweepSpec,
    expand,
    load_sweep_spec,
    parse_sweep_spec,
    sweep_identity,
    sweep_metadata,
)

__all__ = [
    "CELLS",
    "CELL_THREADS",
    "EXECUTORS",
    "FAILURES",
    "META_COLUMNS",
    "RESULTS",
    "RESULT_COLUMNS",
    "RUNS",
    "SWEEP_JSON",
    "Cell",
    "CellMonitor",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "SerialExecutor",
    "SweepSpec",
    "collect_results",
    "expand",
    "get_executor",
    "load_sweep_spec",
    "parse_sweep_spec",
    "run_cell",
    "run_sweep",
    "check_same_sweep",
    "sweep_metadata",
]

RESULT_COLUMNS = [*META_COLUMNS, "done", "step", "task", "role", "length", "accuracy"]


# --------------------------------------------------------------------------------------------
# Running cells and collecting their results


def run_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Train one cell; never raises, so one bad cell cannot stop the sweep.

    Args:
        job: ``{"run": id, "spec": TrainSpec dict, "run_dir": path}``.

    Returns:
        ``{"run", "status" ("done" | "failed"), "error", "traceback", "seconds"}``.
    """
    from interp.runs.train import train

    t0 = time.perf_counter()
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(CELL_THREADS)
        spec = TrainSpec.from_dict(job["spec"])
        train(
            spec, job["run_dir"], resume=True, progress=False, device=job.get("device"), status=True
        )
        status, err, tb = "done", "", ""
    except Exception as e:  # recorded in failures.json; the sweep goes on
        status, err, tb = "failed", f"{type(e).__name__}: {e}", traceback.format_exc()
    finally:
        torch.set_num_threads(prev)
    return {
        "run": job["run"],
        "status": status,
        "error": err,
        "traceback": tb,
        "seconds": time.perf_counter() - t0,
    }


def _crashed(job: dict[str, Any], e: BaseException) -> dict[str, Any]:
    return {
        "run": job["run"],
        "status": "failed",
        "error": f"worker crashed: {type(e).__name__}: {e}",
        "traceback": "".join(traceback.format_exception(e)),
        "seconds": float("nan"),
    }


def collect_results(out_dir: str | Path, cells: Sequence[Cell]) -> pd.DataFrame:
    """Reread every cell's run directory into one accuracy table (see the module docstring).

    Cells without a metrics file yet contribute nothing; unfinished cells contribute what they
    have, flagged ``done = False``.
    """
    sweep = SweepDir(out_dir)
    frames = []
    for c in cells:
        rd = sweep.run(c.run)
        if not rd.metrics_path.is_file():
            continue
        m = read_parquet(rd.metrics_path)
        m = m[m["kind"] == "accuracy"]
        if m.empty:
            continue
        f = pd.DataFrame(
            {
                "step": m["step"].astype("int64").to_numpy(),
                "task": m["task"].astype(str).to_numpy(),
                "length": m["length"].astype("int64").to_numpy(),
                "accuracy": m["value"].astype("float64").to_numpy(),
            }
        )
        for k, v in c.meta().items():
            f[k] = v
        f["done"] = rd.is_done()
        f["role"] = ["main" if t == c.main else "aux" for t in f["task"]]
        frames.append(f[RESULT_COLUMNS])
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in RESULT_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["run", "step", "task", "length"], kind="stable").reset_index(drop=True)


def run_sweep(
    spec: str | Path | dict[str, Any] | SweepSpec,
    out_dir: str | Path,
    executor: str | Executor = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    device: str | None = None,
    gpus_per_cell: float = 1.0,
) -> pd.DataFrame:
    """Train every unfinished cell of a sweep and aggregate all results.

    Args:
        spec: a sweep spec TOML path, dict or :class:`SweepSpec`.
        out_dir: the sweep directory (created; reusable across invocations).
        executor: ``local``, ``ray``, ``serial``, or an :class:`Executor` instance.
        workers: parallel cells (local pool size / local Ray CPUs).
        address: Ray cluster address (``ray`` only).
        progress: show a progress bar over cells.
        device: where every cell trains (default: ``[base.train] device``, else ``auto``),
            resolved in the worker that trains the cell.
        gpus_per_cell: GPUs (or a fraction of one) per cell on CUDA (local pool and Ray).

    Returns:
        The aggregated results (also in ``OUT_DIR/results.parquet``); ``df.attrs["failures"]``
        lists the cells that failed in this invocation (also in ``OUT_DIR/failures.json``) and
        ``df.attrs["attempted"]`` counts the cells it tried to train (finished ones are skipped).

    Raises:
        InterpError: for a malformed spec, an unknown executor, a missing Ray installation or an
            unreachable Ray address. Failures of individual cells do not raise.
    """
    sw = load_sweep_spec(spec)
    cells = expand(sw)  # validates every cell before anything runs
    if isinstance(executor, str):
        check_executor_args(executor, address)
    device = parse_device(device or sw.base.get("train", {}).get("device"))
    if executor in ("local", "serial"):
        resolve_device(device)  # cells train on this machine: fail now, not once per cell
    check_gpu_fraction(gpus_per_cell)
    claim_dir(out_dir, SWEEP_KIND)  # not a run, zoo entry or experiment
    check_same_sweep(out_dir, sw)
    out = output_dir(out_dir)
    # A second sweep into the same directory would train the same cells twice over.
    with dir_lock(out):
        remove_stale_temps(out)
        return _run_sweep_locked(
            sw, cells, out, executor, workers, address, progress, device, gpus_per_cell
        )


def check_same_sweep(out_dir: str | Path, sw: SweepSpec) -> None:
    """Refuse to continue the sweep in ``out_dir`` with a different spec (as a run refuses a
    different config): its cells and tables would mix two grids. Execution settings (device,
    threads, ...) may differ; a ``sweep.json`` of an older version is read through today's
    parser, so defaults added since do not count as a difference.

    Raises:
        InterpError: if ``out_dir`` holds a sweep with another spec, or an unreadable one.
    """
    path = SweepDir(out_dir).sweep_json_path
    if not path.is_file():
        return
    try:
        old = sweep_identity(load_sweep_spec(read_json(path)))
    except InterpError as e:
        raise InterpError(f"corrupt {path}: {e}") from None
    if old != sweep_identity(sw):
        raise InterpError(
            f"{out_dir} already holds a sweep with a different spec; use a new --out directory "
            "(or delete the old sweep)"
        )


def _run_sweep_locked(
    sw: SweepSpec,
    cells: list[Cell],
    out: Path,
    executor: str | Executor,
    workers: int | None,
    address: str | None,
    progress: bool,
    device: str,
    gpus_per_cell: float,
) -> pd.DataFrame:
    sweep = SweepDir(out)
    write_json(sweep.sweep_json_path, sw.to_dict())
    write_parquet(sweep.cells_path, sweep_metadata(cells))
    todo = [
        {"run": c.run, "spec": c.spec, "run_dir": str(sweep.run(c.run).path), "device": device}
        for c in cells
        if not sweep.run(c.run).is_done()
    ]
    failures: list[dict[str, Any]] = []
    # Built only when there is work: starting (or reaching) Ray costs seconds and is pointless
    # for a sweep that is already complete.
    if not todo:
        ex: Executor = SerialExecutor()
    elif isinstance(executor, str):
        ex = get_executor(executor, workers, address, device, gpus_per_cell)
    else:
        ex = executor
    bar = tqdm(total=len(todo), desc=f"sweep {sw.name}", disable=not progress, unit="cell")
    monitor = CellMonitor({j["run"]: Path(j["run_dir"]) for j in todo}, enabled=progress)
    try:
        with monitor:
            for res in ex.map(run_cell, todo, on_error=_crashed):
                monitor.done(res["run"])
                if res["status"] != "done":
                    failures.append({k: res[k] for k in ("run", "error", "traceback")})
                bar.update(1)
                bar.set_postfix(failed=len(failures))
    finally:
        bar.close()
        if isinstance(executor, str):
            ex.close()
        # Written even when interrupted, so the record matches what happened so far.
        failures.sort(key=lambda f: f["run"])
        write_json(sweep.failures_path, failures)
        results = collect_results(out, cells)
        write_parquet(sweep.results_path, results)
    if failures and progress:
        print(
            f"sweep: {len(failures)} of {len(todo)} cells failed; see {sweep.failures_path}",
            file=sys.stderr,
        )
    results.attrs["failures"] = failures
    results.attrs["attempted"] = len(todo)
    return results
