"""Per-cell progress of a running sweep, read from the cells' ``status.json`` files.

Training with ``status=True`` (:func:`interp.runs.train.train`) keeps ``RUN_DIR/status.json``
current (step, total, loss, seconds per step). :class:`CellMonitor` rereads those files on a
thread, so it works whatever runs the cells: this process, a process pool, or Ray workers on a
shared file system.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from interp.runs.dirs import STATUS


class CellMonitor:
    """One line per running cell (step, loss, ETA), from the ``status.json`` each cell's
    training keeps current (:func:`interp.runs.train.train` with ``status=True``).

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
