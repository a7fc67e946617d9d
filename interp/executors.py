"""Executors: run a function over many items, here, in a process pool, or on Ray.

A sweep (:mod:`interp.sweep`) hands its cells to an executor; all share one small interface
(:class:`Executor`): ``map(fn, items)`` yields ``fn(item)`` for every item, in completion order.

* ``local`` (default): a ``ProcessPoolExecutor`` with the ``spawn`` start method (no forked torch
  state) and as many workers as cores. Workers exit when the parent dies.
* ``ray``: one Ray task per item (``num_cpus=1``), on a local Ray instance or the cluster at
  ``address``, which is probed with a plain TCP connect first (``ray.init`` would retry an
  unreachable address for minutes); an already initialised Ray session is reused and left
  running. On CUDA each task also requests ``gpus_per_cell`` GPUs
  (:func:`interp.device.ray_resources`).
* ``serial``: in this process, one item after the other (debugging, tests).

Every worker runs with ``torch.set_num_threads(CELL_THREADS)``: a cell is a small model,
parallelism comes from running cells side by side, and a fixed thread count makes the results
identical across executors.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Protocol, TypeVar

import torch

from interp.config import is_int
from interp.device import check_gpu_fraction, parse_device, ray_resources
from interp.errors import InterpError, unknown_choice

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
        return LocalExecutor(workers)
    return RayExecutor(address, workers, device, gpus_per_cell)
