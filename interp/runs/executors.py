"""Executors: run a function over many items, here, in a process pool, or on Ray.

A sweep (:mod:`interp.runs.sweep`) hands its cells to an executor; all share one small interface
(:class:`Executor`): ``map(fn, items)`` yields ``fn(item)`` for every item, in completion order.

* ``local`` (default): a ``ProcessPoolExecutor`` with the ``spawn`` start method (no forked torch
  state) and as many workers as cores. Workers exit when the parent dies. On CUDA (``auto`` or
  ``cuda`` on a machine with GPUs) each worker is given its own GPU, round-robin over the
  visible ones, through ``CUDA_VISIBLE_DEVICES`` (:func:`gpu_slots`): ``gpus_per_cell`` 1 runs
  one cell per GPU, 0.25 packs four cells onto each, 2 gives each cell two (it trains on the
  first); the pool has one worker per slot (at most the cores). An explicit ``cuda:N`` pins
  every cell to GPU ``N``.
* ``ray``: one Ray task per item (``num_cpus=1``), on a local Ray instance or the cluster at
  ``address``, which is probed with a plain TCP connect first (``ray.init`` would retry an
  unreachable address for minutes); an already initialised Ray session is reused and left
  running. On CUDA each task also requests ``gpus_per_cell`` GPUs
  (:func:`interp.core.device.ray_resources`). Ray then sets ``CUDA_VISIBLE_DEVICES`` in the worker,
  which sees only the GPU(s) it was given, as ``cuda:0``; so a cell's ``cuda:N`` is run as
  ``cuda`` (the assigned GPU), with a note saying so. **A multi-node cluster needs a shared
  filesystem**: every cell writes its run directory to the path the driver chose (``--out``),
  so that path must be the same mount on every node (NFS, a cluster filesystem); otherwise
  the runs land on the workers' local disks and the driver finds nothing to aggregate.
* ``serial``: in this process, one item after the other (debugging, tests).

Every worker runs with ``torch.set_num_threads(CELL_THREADS)``: a cell is a small model,
parallelism comes from running cells side by side, and a fixed thread count makes the results
identical across executors.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, Protocol, TypeVar

import torch

from interp.core.config import is_int
from interp.core.device import check_gpu_fraction, parse_device, ray_resources
from interp.core.errors import InterpError, unknown_choice

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray", "serial")
CELL_THREADS = 1


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


def _init_worker(parent: int | None = None, slots: Any = None) -> None:
    torch.set_num_threads(CELL_THREADS)
    if slots is not None:
        # Before any CUDA call in this process: CUDA reads the variable when it initialises.
        os.environ["CUDA_VISIBLE_DEVICES"] = slots.get()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries: the variable's own
    entries when it is set, else ``0..count-1`` (none without CUDA)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def gpu_slots(
    device: str | None, gpus_per_cell: float = 1.0, visible: Sequence[str] | None = None
) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` for each worker of a local pool on CUDA, or None off CUDA.

    Only ``auto`` and ``cuda`` are spread: ``cpu``/``mps`` need no GPU and an explicit ``cuda:N``
    is the user's pin. With ``g = gpus_per_cell``: a fraction gives each GPU ``floor(1 / g)``
    slots (0.25: four cells share a GPU), dealt round-robin so the first workers land on
    different GPUs; a whole number gives each slot ``g`` GPUs of its own.

    Args:
        device: the cells' device string.
        gpus_per_cell: a fraction in ``(0, 1]`` or a whole number.
        visible: the GPUs to share out (default: :func:`visible_gpus`).

    Raises:
        InterpError: a bad ``gpus_per_cell``, or more GPUs per cell than the machine has.
    """
    g = check_gpu_fraction(gpus_per_cell)
    name = parse_device(device)
    if name not in ("auto", "cuda"):
        return None
    gpus = list(visible_gpus() if visible is None else visible)
    if not gpus:
        return None
    if g <= 1:
        per_gpu = max(1, int(1 / g + 1e-9))
        return [gpu for _ in range(per_gpu) for gpu in gpus]
    n = int(g)
    if n > len(gpus):
        raise InterpError(f"{n} GPUs per cell requested but {len(gpus)} GPU(s) are visible")
    return [",".join(gpus[i : i + n]) for i in range(0, len(gpus) - n + 1, n)]


class LocalExecutor:
    """A process pool (``spawn`` start method) sized to the machine's cores.

    Args:
        workers: pool size (default: the cores available to this process); on CUDA also at
            most the GPU slots (:func:`gpu_slots`).
        device: the cells' device string (decides whether workers are given GPUs).
        gpus_per_cell: GPUs, or a fraction of one, per cell on CUDA.
    """

    name = "local"

    def __init__(
        self, workers: int | None = None, device: str | None = None, gpus_per_cell: float = 1.0
    ) -> None:
        if workers is not None and (not is_int(workers) or workers < 1):
            raise InterpError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers or _cpu_count()
        self.device, self.gpus_per_cell = parse_device(device), check_gpu_fraction(gpus_per_cell)

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
        ctx = get_context("spawn")
        n = min(self.workers, len(items))
        slots = gpu_slots(self.device, self.gpus_per_cell)
        queue = None
        if slots:
            n = min(n, len(slots))
            queue = ctx.SimpleQueue()
            for slot in slots[:n]:  # one per worker; each worker takes one at start-up
                queue.put(slot)
        pool = ProcessPoolExecutor(
            max_workers=n,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(os.getpid(), queue),
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
        if self.device.startswith("cuda:"):
            print(
                f"interp: note: under Ray each cell sees only the GPU(s) Ray assigns it "
                f"(CUDA_VISIBLE_DEVICES), so device {self.device!r} runs as 'cuda', the "
                "assigned GPU; to choose GPUs, start the Ray nodes with CUDA_VISIBLE_DEVICES set",
                file=sys.stderr,
            )
        pending = {remote.remote(ray_item(it)): it for it in items}
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


def ray_item(item: T) -> T:
    """An item as a Ray worker must see it: a job dict's ``cuda:N`` becomes ``cuda`` (in the
    worker, Ray's ``CUDA_VISIBLE_DEVICES`` leaves only the assigned GPU(s), numbered from 0, so
    ``cuda:N`` would name a GPU the worker does not have); anything else is passed unchanged."""
    if isinstance(item, dict) and isinstance(item.get("device"), str):
        if parse_device(item["device"]).startswith("cuda:"):
            return {**item, "device": "cuda"}  # type: ignore[return-value]
    return item


def check_executor_args(name: str, address: str | None) -> None:
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
    check_executor_args(name, address)
    if name == "serial":
        return SerialExecutor()
    if name == "local":
        return LocalExecutor(workers, device, gpus_per_cell)
    return RayExecutor(address, workers, device, gpus_per_cell)
