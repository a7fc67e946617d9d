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
:func:`interp.evaluate.transfer_strength`. Groups that share a main task (``arith_a``,
``arith_b`` and ``control_1`` all train ``reverse_add``) share that baseline run instead of
training it once per group.

Layout of ``SWEEP_DIR``::

    sweep.json          the sweep spec as given
    cells.parquet       one row per cell: run, group, kind, main, aux, main_max, aux_max, seed,
                        positional, preset, baseline (the metadata interp.transfer expects)
    runs/<cell_id>/     an ordinary run directory (interp.train), e.g.
                        runs/arith_a-tiny-rope-m4-a8-s0 or
                        runs/baseline-reverse_add-tiny-rope-m4-e8-s0; its status.json
                        (step, loss, speed) drives the per-cell progress lines
    failures.json       cells that failed in the latest invocation, with their error messages
    results.parquet     per run, per evaluated checkpoint, per task and length: accuracy, plus
                        the cell columns, ``role`` (main/aux) and ``done``

**Restartable.** A cell whose run directory holds a finished run (:func:`interp.train.is_done`) is
skipped; an unfinished one resumes from its last checkpoint. A failing cell is recorded and the
others go on. Aggregation rereads every run directory, so results of earlier invocations and of
partially trained cells are never lost. Every table is written atomically (:mod:`interp.io`).

**Executors** share one small interface (:class:`Executor`): ``map(fn, items)`` yields
``fn(item)`` for every item, in completion order.

* ``local`` (default): a ``ProcessPoolExecutor`` with the ``spawn`` start method (no forked torch
  state) and as many workers as cores.
* ``ray``: one Ray task per cell (``num_cpus=1``), on a local Ray instance or the cluster at
  ``address``; an already initialised Ray session is reused and left running. When the cells'
  device is CUDA (``cuda``, or ``auto`` on a cluster that has GPUs) each task also requests
  ``gpus_per_cell`` GPUs (a fraction packs several cells onto one GPU); see
  :func:`interp.device.ray_resources`.
* ``serial``: in this process, one cell after the other (debugging, tests).

A script that uses the ``local`` executor must guard its entry point with
``if __name__ == "__main__":``, as for any ``spawn``-based pool: each worker re-imports the main
module, and without the guard the import would start the sweep again (Python refuses, and every
cell is recorded as "worker crashed").

Every cell runs with ``torch.set_num_threads(1)`` whatever the executor: a cell is a small model,
parallelism comes from running cells side by side, and fixing the thread count makes the trained
weights, hence the results, identical across executors.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd
import torch
from tqdm.auto import tqdm

from interp.device import check_gpu_fraction, parse_device, ray_resources, resolve_device
from interp.errors import InterpError, unknown_choice
from interp.io import (
    dir_lock,
    output_dir,
    read_parquet,
    remove_stale_temps,
    write_json,
    write_parquet,
)
from interp.spec import TrainSpec, is_int
from interp.tasks import get_group, get_task
from interp.train import METRICS, STATUS, is_done

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray", "serial")
RUNS = "runs"
RESULTS = "results.parquet"
CELLS = "cells.parquet"
FAILURES = "failures.json"
SWEEP_JSON = "sweep.json"
CELL_THREADS = 1

_SWEEP_KEYS = {
    "name",
    "groups",
    "seeds",
    "lengths",
    "positional",
    "presets",
    "baseline",
    "eval_margin",
    "base",
}
_BASE_KEYS = {"model", "optim", "train", "eval"}
META_COLUMNS = [
    "run",
    "group",
    "kind",
    "main",
    "aux",
    "main_max",
    "aux_max",
    "seed",
    "positional",
    "preset",
    "baseline",
]
RESULT_COLUMNS = [*META_COLUMNS, "done", "step", "task", "role", "length", "accuracy"]


# --------------------------------------------------------------------------------------------
# Spec and grid expansion


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec (see the module docstring for the TOML format).

    Attributes:
        name: label of the sweep.
        groups: task-group names.
        seeds: run seeds (data and initialisation).
        lengths: ``(main_max, aux_max)`` pairs.
        positional: positional schemes.
        presets: model preset names.
        baseline: also train main-only baseline runs.
        eval_margin: extra evaluation lengths beyond ``max(main_max, aux_max)``.
        base: ``model``/``optim``/``train``/``eval`` sections applied to every cell.
    """

    name: str
    groups: tuple[str, ...]
    seeds: tuple[int, ...]
    lengths: tuple[tuple[int, int], ...]
    positional: tuple[str, ...] = ("rope",)
    presets: tuple[str, ...] = ("cpu",)
    baseline: bool = False
    eval_margin: int = 0
    base: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    """One run of a sweep.

    Attributes:
        run: deterministic, readable id; also the run directory's name.
        group: task-group name (``"baseline"`` for main-only runs).
        kind: ``transfer``, ``control`` or ``baseline``.
        main: main task.
        aux: auxiliary tasks (empty for a baseline).
        main_max: main task's training max length.
        aux_max: auxiliaries' training max length (the transfer range's end).
        seed: run seed.
        positional: positional scheme.
        preset: model preset.
        baseline: id of the matching baseline run (``""`` if none, or for a baseline itself).
        spec: the cell's :class:`~interp.spec.TrainSpec` as a dict.
    """

    run: str
    group: str
    kind: str
    main: str
    aux: tuple[str, ...]
    main_max: int
    aux_max: int
    seed: int
    positional: str
    preset: str
    baseline: str
    spec: dict[str, Any] = field(compare=False, repr=False)

    def meta(self) -> dict[str, Any]:
        """The cell's metadata row (``aux`` comma-joined)."""
        d = {k: getattr(self, k) for k in META_COLUMNS}
        d["aux"] = ",".join(self.aux)
        return d


def _as_list(d: dict[str, Any], key: str, default: Any = None) -> list[Any]:
    v = d.get(key, default)
    if v is None:
        raise InterpError(f"sweep spec: missing required key {key!r}")
    if not isinstance(v, list):
        v = [v]
    if not v:
        raise InterpError(f"sweep spec: {key!r} must not be empty")
    return v


def _check_unique(key: str, values: list[Any]) -> None:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise InterpError(f"sweep spec: {key!r} lists {v!r} twice")
        seen.add(v)


def parse_sweep_spec(d: dict[str, Any]) -> SweepSpec:
    """Validate a sweep spec dict (the parsed TOML).

    Raises:
        InterpError: for unknown keys, wrong types, an unknown group, or malformed lengths.
    """
    if not isinstance(d, dict):
        raise InterpError("sweep spec must be a table/dict")
    unknown = sorted(set(d) - _SWEEP_KEYS)
    if unknown:
        raise InterpError(
            f"sweep spec: unknown keys {unknown}; valid keys: {', '.join(sorted(_SWEEP_KEYS))}"
        )
    groups = _as_list(d, "groups")
    if not all(isinstance(g, str) for g in groups):
        raise InterpError("sweep spec: 'groups' must be group names (strings)")
    for g in groups:
        get_group(g)  # raises with the list of valid groups
    seeds = _as_list(d, "seeds")
    if not all(is_int(s) and s >= 0 for s in seeds):
        raise InterpError(f"sweep spec: 'seeds' must be non-negative integers, got {seeds}")
    raw_lengths = d.get("lengths")
    if isinstance(raw_lengths, list) and len(raw_lengths) == 2 and all(map(is_int, raw_lengths)):
        raw_lengths = [raw_lengths]  # a single pair
    lengths = _as_list({"lengths": raw_lengths}, "lengths")
    pairs = []
    for p in lengths:
        if not (isinstance(p, list) and len(p) == 2 and all(is_int(x) and x >= 1 for x in p)):
            raise InterpError(
                f"sweep spec: 'lengths' must be [main_max, aux_max] pairs of positive integers, "
                f"got {p!r}"
            )
        pairs.append((p[0], p[1]))
    positional = _as_list(d, "positional", ["rope"])
    presets = _as_list(d, "presets", ["cpu"])
    for key, vals in (("positional", positional), ("presets", presets)):
        if not all(isinstance(v, str) for v in vals):
            raise InterpError(f"sweep spec: {key!r} must be strings")
    for key, vals in (
        ("groups", groups),
        ("seeds", seeds),
        ("lengths", pairs),
        ("positional", positional),
        ("presets", presets),
    ):
        _check_unique(key, vals)
    baseline = d.get("baseline", False)
    if not isinstance(baseline, bool):
        raise InterpError("sweep spec: 'baseline' must be true or false")
    margin = d.get("eval_margin", 0)
    if not is_int(margin) or margin < 0:
        raise InterpError("sweep spec: 'eval_margin' must be a non-negative integer")
    base = d.get("base", {})
    if not isinstance(base, dict):
        raise InterpError("sweep spec: [base] must be a table")
    bad = sorted(set(base) - _BASE_KEYS)
    if bad:
        raise InterpError(
            f"sweep spec: unknown [base] sections {bad}; valid: {', '.join(sorted(_BASE_KEYS))}"
        )
    for k, v in base.items():
        if not isinstance(v, dict):
            raise InterpError(f"sweep spec: [base.{k}] must be a table")
    return SweepSpec(
        name=str(d.get("name", "sweep")),
        groups=tuple(groups),
        seeds=tuple(seeds),
        lengths=tuple(pairs),
        positional=tuple(positional),
        presets=tuple(presets),
        baseline=baseline,
        eval_margin=margin,
        base={k: dict(v) for k, v in base.items()},
    )


def load_sweep_spec(spec: str | Path | dict[str, Any] | SweepSpec) -> SweepSpec:
    """Read a sweep spec from a TOML file, a dict, or pass a :class:`SweepSpec` through.

    Raises:
        InterpError: for a missing file, malformed TOML, or an invalid spec.
    """
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return parse_sweep_spec(spec)
    p = Path(spec)
    if not p.is_file():
        raise InterpError(f"sweep spec not found: {p}")
    try:
        d = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InterpError(f"malformed sweep spec {p}: {e}") from None
    return parse_sweep_spec(d)


def _low(task: str) -> int:
    return max(1, get_task(task).min_length)


def _train_dict(
    sw: SweepSpec,
    run: str,
    group: str,
    main: str,
    ranges: list[tuple[str, int]],
    seed: int,
    positional: str,
    preset: str,
    eval_max: int,
) -> dict[str, Any]:
    base = sw.base
    ev = {**base.get("eval", {})}
    ev.setdefault("max_length", eval_max)
    d = {
        "name": run,
        "group": group,
        "main": main,
        "seed": seed,
        "tasks": [{"name": t, "lengths": [_low(t), hi]} for t, hi in ranges],
        "model": {**base.get("model", {}), "preset": preset, "positional": positional},
        "eval": ev,
    }
    for k in ("optim", "train"):
        if k in base:
            d[k] = dict(base[k])
    try:
        # Resolving validates everything now, before any cell trains, and stores the fully
        # resolved dict, which is what the run directory's config.json will hold.
        return TrainSpec.from_dict(d).to_dict()
    except InterpError as e:
        raise InterpError(f"sweep cell {run}: {e}") from None


def expand(spec: str | Path | dict[str, Any] | SweepSpec) -> list[Cell]:
    """Expand a sweep spec into its cells (baselines first, then the grid in spec order).

    Raises:
        InterpError: if the spec, or the train spec of any cell, is invalid.
    """
    sw = load_sweep_spec(spec)
    grid: list[Cell] = []
    baselines: dict[str, Cell] = {}
    for group in sw.groups:
        g = get_group(group)
        for main_max, aux_max in sw.lengths:
            eval_max = int(sw.base.get("eval", {}).get("max_length", 0)) or (
                max(main_max, aux_max) + sw.eval_margin
            )
            for preset in sw.presets:
                for pos in sw.positional:
                    for seed in sw.seeds:
                        base_id = ""
                        if sw.baseline:
                            base_id = (
                                f"baseline-{g.main}-{preset}-{pos}-m{main_max}-e{eval_max}-s{seed}"
                            )
                            if base_id not in baselines:
                                baselines[base_id] = Cell(
                                    base_id,
                                    "baseline",
                                    "baseline",
                                    g.main,
                                    (),
                                    main_max,
                                    aux_max,
                                    seed,
                                    pos,
                                    preset,
                                    "",
                                    _train_dict(
                                        sw,
                                        base_id,
                                        "baseline",
                                        g.main,
                                        [(g.main, main_max)],
                                        seed,
                                        pos,
                                        preset,
                                        eval_max,
                                    ),
                                )
                        run = f"{group}-{preset}-{pos}-m{main_max}-a{aux_max}-s{seed}"
                        ranges = [(g.main, main_max), *[(a, aux_max) for a in g.aux]]
                        grid.append(
                            Cell(
                                run,
                                group,
                                g.kind,
                                g.main,
                                tuple(g.aux),
                                main_max,
                                aux_max,
                                seed,
                                pos,
                                preset,
                                base_id,
                                _train_dict(
                                    sw, run, group, g.main, ranges, seed, pos, preset, eval_max
                                ),
                            )
                        )
    return [*baselines.values(), *grid]


def sweep_metadata(cells: Sequence[Cell]) -> pd.DataFrame:
    """The run-metadata frame :mod:`interp.transfer` consumes: one row per cell."""
    return pd.DataFrame([c.meta() for c in cells], columns=META_COLUMNS)


# --------------------------------------------------------------------------------------------
# Executors


class Executor(Protocol):
    """Runs a function over items, possibly in parallel.

    ``map(fn, items)`` yields ``fn(item)`` for every item, in completion order (so a progress
    bar advances as work finishes). If running an item fails outside ``fn`` (a crashed worker
    process), ``on_error(item, exception)`` supplies its result when given; otherwise the
    exception propagates. ``close()`` releases what the executor started.
    """

    name: str

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_error: Callable[[T, BaseException], R] | None = None,
    ) -> Iterator[R]: ...

    def close(self) -> None: ...


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class SerialExecutor:
    """Items one after the other in this process."""

    name = "serial"

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_error: Callable[[T, BaseException], R] | None = None,
    ) -> Iterator[R]:
        for item in items:
            yield fn(item)

    def close(self) -> None:
        pass


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    # A pool worker blocks on its task queue forever if the parent is killed (SIGKILL, SIGTERM
    # and the OOM killer run no cleanup), training cells nobody will collect; it is reparented
    # then, so a changed parent pid means the sweep is gone.
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _init_worker(parent: int | None = None) -> None:
    torch.set_num_threads(CELL_THREADS)
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


class LocalExecutor:
    """A process pool (``spawn`` start method) sized to the machine's cores.

    Args:
        workers: pool size (default: the cores available to this process).
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and (not is_int(workers) or workers < 1):
            raise InterpError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers or _cpu_count()

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_error: Callable[[T, BaseException], R] | None = None,
    ) -> Iterator[R]:
        if not items:
            return
        # spawn, not fork: a forked child inherits torch's thread pools and any locks held by
        # the parent's threads, a known source of deadlocks.
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(items)),
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        try:
            futures = {pool.submit(fn, it): it for it in items}
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except Exception as e:  # a worker died (BrokenProcessPool) or fn raised
                    if on_error is None:
                        raise
                    yield on_error(futures[fut], e)
        finally:
            # On an interrupt, queued items must not start; running ones finish.
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` (or ``ray://host:port``) nobody listens on.

    ``ray.init`` keeps retrying an unreachable address for minutes; a plain TCP connect answers
    in milliseconds (refused) or ``timeout`` seconds (filtered).
    """
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise InterpError(
            f"Ray address {address!r} is not of the form host:port, ray://host:port or auto"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise InterpError(f"cannot reach the Ray cluster at {address!r}: {e}") from None


class RayExecutor:
    """One Ray task per item on a local Ray instance or an existing cluster.

    Args:
        address: cluster address (``host:port``, ``ray://host:port``, ``auto``); ``None``
            starts a local instance (or reuses the Ray session this process already has).
        workers: CPUs of a local instance (default: the cores available).
        device: the cells' device string (decides whether a task requests GPUs).
        gpus_per_cell: GPUs, or a fraction of one, per cell on CUDA.

    Raises:
        InterpError: if Ray is not installed or the address cannot be reached.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        device: str | None = None,
        gpus_per_cell: float = 1.0,
    ) -> None:
        self.device, self.gpus_per_cell = parse_device(device), check_gpu_fraction(gpus_per_cell)
        try:
            import ray
        except ImportError:
            raise InterpError(
                "the 'ray' executor needs Ray, which is not installed; "
                "install it with: pip install 'interp[ray]'"
            ) from None
        self._ray = ray
        self._started = False
        if ray.is_initialized():
            return  # the caller's session (and its shutdown) stays the caller's
        if address:
            _check_reachable(address)
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=workers or _cpu_count(),
                    include_dashboard=False,
                    log_to_driver=False,
                )
        except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
            where = f"at {address!r}" if address else "locally"
            raise InterpError(f"cannot start or connect to Ray {where}: {e}") from None
        self._started = True

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_error: Callable[[T, BaseException], R] | None = None,
    ) -> Iterator[R]:
        ray = self._ray
        gpus = float(ray.cluster_resources().get("GPU", 0))
        remote = ray.remote(**ray_resources(self.device, self.gpus_per_cell, gpus))(fn)
        pending = {remote.remote(it): it for it in items}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                item = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as e:  # a crashed worker, or fn raised
                    if on_error is None:
                        raise
                    yield on_error(item, e)
        finally:
            for ref in pending:  # interrupted: do not leave the cluster training for nobody
                ray.cancel(ref)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def _check_executor_args(name: str, address: str | None) -> None:
    if name not in EXECUTORS:
        raise unknown_choice("executor", name, EXECUTORS)
    if address and name != "ray":
        raise InterpError(f"an address is only meaningful for the ray executor, not {name!r}")


def get_executor(
    name: str = "local",
    workers: int | None = None,
    address: str | None = None,
    device: str | None = None,
    gpus_per_cell: float = 1.0,
) -> Executor:
    """Build an executor by name (``local``, ``ray`` or ``serial``).

    Raises:
        InterpError: for an unknown name, an address given to a non-Ray executor, a missing Ray
            installation or an unreachable Ray address.
    """
    _check_executor_args(name, address)
    if name == "serial":
        return SerialExecutor()
    if name == "local":
        return LocalExecutor(workers)
    return RayExecutor(address, workers, device, gpus_per_cell)


# --------------------------------------------------------------------------------------------
# Running cells


def run_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Train one cell; never raises, so one bad cell cannot stop the sweep.

    Args:
        job: ``{"run": id, "spec": TrainSpec dict, "run_dir": path}``.

    Returns:
        ``{"run", "status" ("done" | "failed"), "error", "traceback", "seconds"}``.
    """
    from interp.train import train

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


class CellMonitor:
    """One line per running cell (step, loss, ETA), from the ``status.json`` each cell's
    training keeps current (:func:`interp.train.train` with ``status=True``).

    A thread rereads the files every ``interval`` seconds, so it works whatever runs the cells
    (this process, a process pool, or Ray workers on a shared file system). On a terminal each
    running cell gets a live bar under the sweep's bar; in a log (not a terminal) a plain status
    line per running cell is printed every ``log_every`` seconds instead.
    """

    def __init__(
        self,
        run_dirs: dict[str, Path],
        enabled: bool = True,
        interval: float = 1.0,
        log_every: float = 60.0,
    ) -> None:
        self.run_dirs = run_dirs
        self.enabled = enabled and bool(run_dirs)
        self.interval = interval
        self.log_every = log_every
        self.tty = sys.stderr.isatty()
        self.bars: dict[str, tqdm] = {}
        self.finished: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> CellMonitor:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with self._lock:
            for bar in self.bars.values():
                bar.close()
            self.bars.clear()

    def done(self, run: str) -> None:
        """Stop showing ``run`` (its result has arrived)."""
        with self._lock:
            self.finished.add(run)
            bar = self.bars.pop(run, None)
            if bar is not None:
                bar.close()

    @staticmethod
    def line(st: dict[str, Any]) -> str:
        """``step 1200/2400 (50%), loss 0.4120, ETA 03:20`` for a status dict."""
        eta = max(0.0, (st["total"] - st["step"]) * st["sec_per_step"])
        pct = 100 * st["step"] // max(1, st["total"])
        return (
            f"step {st['step']}/{st['total']} ({pct}%), loss {st['loss']:.4f}, "
            f"ETA {tqdm.format_interval(eta)}"
        )

    def statuses(self) -> dict[str, dict[str, Any]]:
        """The latest status of every cell that is running (started, not finished)."""
        out = {}
        for run, rd in self.run_dirs.items():
            if run in self.finished:
                continue
            try:
                st = json.loads((rd / STATUS).read_text())
                if st["step"] < st["total"]:
                    out[run] = st
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not started yet, or mid-replace
        return out

    def _loop(self) -> None:
        last_log = time.monotonic()
        while not self._stop.wait(self.interval):
            running = self.statuses()
            with self._lock:
                if self.tty:
                    for run, st in running.items():
                        bar = self.bars.get(run)
                        if bar is None:  # a status line, drawn and cleared like a bar
                            bar = self.bars[run] = tqdm(leave=False, bar_format="{desc}")
                        bar.set_description_str(f"  {run}: {self.line(st)}", refresh=True)
                    for run in [r for r in self.bars if r not in running]:
                        self.bars.pop(run).close()
                elif running and time.monotonic() - last_log >= self.log_every:
                    last_log = time.monotonic()
                    for run, st in running.items():
                        tqdm.write(f"  {run}: {self.line(st)}", file=sys.stderr)


def collect_results(out_dir: str | Path, cells: Sequence[Cell]) -> pd.DataFrame:
    """Reread every cell's run directory into one accuracy table (see the module docstring).

    Cells without a metrics file yet contribute nothing; unfinished cells contribute what they
    have, flagged ``done = False``.
    """
    runs_dir = Path(out_dir) / RUNS
    frames = []
    for c in cells:
        rd = runs_dir / c.run
        p = rd / METRICS
        if not p.is_file():
            continue
        m = read_parquet(p)
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
        f["done"] = is_done(rd)
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
        gpus_per_cell: Ray only: GPUs (or a fraction of one) each cell requests on CUDA.

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
        _check_executor_args(executor, address)
    device = parse_device(device or sw.base.get("train", {}).get("device"))
    if executor in ("local", "serial"):
        resolve_device(device)  # cells train on this machine: fail now, not once per cell
    check_gpu_fraction(gpus_per_cell)
    out = output_dir(out_dir)
    # A second sweep into the same directory would train the same cells twice over.
    with dir_lock(out):
        remove_stale_temps(out)
        return _run_sweep_locked(
            sw, cells, out, executor, workers, address, progress, device, gpus_per_cell
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
    write_json(out / SWEEP_JSON, {**asdict(sw), "lengths": [list(p) for p in sw.lengths]})
    write_parquet(out / CELLS, sweep_metadata(cells))
    todo = [
        {"run": c.run, "spec": c.spec, "run_dir": str(out / RUNS / c.run), "device": device}
        for c in cells
        if not is_done(out / RUNS / c.run)
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
        write_json(out / FAILURES, failures)
        results = collect_results(out, cells)
        write_parquet(out / RESULTS, results)
    if failures and progress:
        print(
            f"sweep: {len(failures)} of {len(todo)} cells failed; see {out / FAILURES}",
            file=sys.stderr,
        )
    results.attrs["failures"] = failures
    results.attrs["attempted"] = len(todo)
    return results
