"""Progress of a long analysis: which stage runs on which run, with an ETA for the whole.

Training shows step, loss and an ETA per run (:mod:`interp.runs.sweep_monitor`); the analysis that
follows can take longer than the training on a CPU (head scores at every checkpoint, then every
head set, dose matching and interchange patching at the last one), and a bar that only counts
runs says nothing for minutes. :class:`StageProgress` prints one line as each stage starts::

    analyze [3/26] arith_a-mini-rope-m3-a6-s0: head scores (step 600) · 0:41 elapsed, ~3:05 left

**The plan.** The analysis is listed as ``(run, stage)`` steps before it starts
(:func:`run_plan` for one run), so the line can say how far along it is. **The ETA** is the
sum, over the steps still to run, of the mean duration of that kind of stage so far, or of all
stages so far for a kind not seen yet: the first line of a kind is a guess, and the estimate
gets better as stages finish. Before any stage has finished there is no estimate. Lines go
through ``tqdm.write`` so they never break a progress bar drawn below them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from tqdm.auto import tqdm

ACCURACY = "accuracy"
SCORES = "head scores"
OVERLAP = "overlap"
BASELINE = "accuracy (every checkpoint)"
CAUSAL_STAGES = ("causal top-k", "head sets", "dose", "interchange")
"""The stages run at a run's last checkpoint when the analysis has ``causal = true``."""


def run_plan(
    run: str, n_checkpoints: int, scores: bool = True, causal: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """The ``(run, stage)`` steps of one run's analysis, in the order they run.

    Args:
        run: the run's name (what the lines show).
        n_checkpoints: how many checkpoints are measured.
        scores: the run has several tasks, so head scores and overlap are measured at each
            checkpoint (a main-task-only run gets accuracy only).
        causal: the stages run once at the last checkpoint (e.g. :data:`CAUSAL_STAGES`).
    """
    per = [ACCURACY, SCORES, OVERLAP] if scores else [ACCURACY]
    return [(run, s) for _ in range(n_checkpoints) for s in per] + [(run, s) for s in causal]


def sweep_plan(
    runs: Iterable[tuple[str, str, int]], every_checkpoint: bool, causal: bool
) -> list[tuple[str, str]]:
    """The steps of a sweep's analysis (:func:`interp.runs.analysis.analyze_sweep`).

    Args:
        runs: ``(run, kind, number of checkpoints)`` per cell; cells without checkpoints are
            skipped, baselines (kind ``"baseline"``) get one accuracy stage over all of them.
        every_checkpoint: every checkpoint is measured (else the last one only).
        causal: the causal stages run at each run's last checkpoint.
    """
    plan: list[tuple[str, str]] = []
    last = CAUSAL_STAGES if causal else ()
    for run, kind, n in runs:
        if not n:
            continue
        if kind == "baseline":
            plan.append((run, BASELINE))
        else:
            plan += run_plan(run, n if every_checkpoint else 1, True, last)
    return plan


def format_seconds(seconds: float) -> str:
    """``0:41``, ``3:05``, ``1:02:03``."""
    s = int(round(max(0.0, seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class StageProgress:
    """One line per analysis stage: its place in the plan, the run, elapsed time and an ETA.

    Args:
        plan: the ``(run, stage)`` steps, in order (see :func:`run_plan`).
        enabled: print the lines (``False``: only time the stages, e.g. under ``--quiet``).
        stream: where the lines go (default ``sys.stderr``, beside the progress bars).
        clock: seconds, monotonic (a test passes a fake one).
    """

    def __init__(
        self,
        plan: Sequence[tuple[str, str]],
        enabled: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = list(plan)
        self.enabled = enabled
        self.stream = stream
        self.clock = clock
        self.t0 = clock()
        self.done = 0
        self.durations: dict[str, list[float]] = {}

    def eta(self) -> float | None:
        """Seconds left for the steps not yet finished, or None before any stage finished."""
        if not self.durations:
            return None
        every = [d for ds in self.durations.values() for d in ds]
        overall = sum(every) / len(every)
        mean = {k: sum(v) / len(v) for k, v in self.durations.items()}
        return sum(mean.get(stage, overall) for _, stage in self.plan[self.done :])

    def line(self, run: str, stage: str, detail: str = "") -> str:
        """The line printed when ``stage`` starts on ``run``."""
        n = max(len(self.plan), self.done + 1)  # a stage beyond the plan still gets a line
        eta = self.eta()
        left = f"~{format_seconds(eta)} left" if eta is not None else "ETA after the first stage"
        what = f"{stage} ({detail})" if detail else stage
        elapsed = format_seconds(self.clock() - self.t0)
        return f"analyze [{self.done + 1}/{n}] {run}: {what} · {elapsed} elapsed, {left}"

    @contextmanager
    def stage(self, run: str, stage: str, detail: str = "") -> Iterator[None]:
        """Announce ``stage`` on ``run``, run the block, and record how long it took."""
        if self.enabled:
            tqdm.write(self.line(run, stage, detail), file=self.stream or sys.stderr)
        start = self.clock()
        yield
        self.durations.setdefault(stage, []).append(self.clock() - start)
        self.done += 1


@contextmanager
def maybe_stage(
    progress: StageProgress | None, run: str, stage: str, detail: str = ""
) -> Iterator[None]:
    """:meth:`StageProgress.stage`, or nothing when there is no progress to report."""
    if progress is None:
        yield
    else:
        with progress.stage(run, stage, detail):
            yield
