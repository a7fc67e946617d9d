"""Loading trained runs: a run directory (or a checkpoint step in it) back into a model.

Downstream stages (evaluation, head scoring, overlap, reports) read runs only through
:func:`load_run`, so they never depend on how training wrote them, nor on which device did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from interp.core.device import resolve_device
from interp.models.checkpoint import load_model_weights, load_tensors, resolve_step
from interp.runs.dirs import RunDir
from interp.runs.spec import TrainSpec
from interp.scoring.evaluate import accuracy_table
from interp.tasks import get_task

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


@dataclass
class LoadedRun:
    """A run's model at one checkpoint, with its spec.

    Attributes:
        model: the model in eval mode.
        spec: the run's resolved spec.
        step: the checkpoint step loaded.
        run_dir: where the run lives.
    """

    model: HookedTransformer
    spec: TrainSpec
    step: int
    run_dir: Path


def read_run_spec(run_dir: str | Path) -> TrainSpec:
    """The spec stored in the run directory (:meth:`interp.runs.dirs.RunDir.spec`)."""
    return RunDir(run_dir).spec()


def load_run(
    run_dir: str | Path,
    checkpoint: int | None = None,
    device: str | torch.device | None = None,
    *,
    spec: TrainSpec | None = None,
) -> LoadedRun:
    """Load the model of a run at ``checkpoint`` (default: the latest).

    Args:
        run_dir: the run directory.
        checkpoint: the step (default: the latest).
        device: where to put the model (default: the run's ``[train] device``, usually
            ``auto``); the checkpoint's tensors are loaded straight onto it.
        spec: the run's spec when the caller has already read it (not read again).

    Raises:
        InterpError: for a missing directory, a missing step (listing those that exist), a
            corrupt checkpoint, or a device this machine does not have.
    """
    spec = spec if spec is not None else read_run_spec(run_dir)
    # imported here: TransformerLens (seconds to load) comes with the first model built
    from interp.models.factory import build_model

    step = resolve_step(run_dir, checkpoint)
    dev = resolve_device(device if device is not None else spec.train.device)
    tensors, _ = load_tensors(run_dir, step, device=dev)
    model = build_model(spec.model, dev, spec.task_heads)
    load_model_weights(model, tensors)
    model.eval()
    return LoadedRun(model, spec, step, Path(run_dir))


def run_checkpoints(run_dir: str | Path) -> list[int]:
    """Checkpoint steps of a run, ascending."""
    return RunDir(run_dir).checkpoints()


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """The run's training metrics (loss and periodic accuracy)."""
    return RunDir(run_dir).metrics()


def eval_run(
    run_dir: str | Path,
    checkpoint: int | None = None,
    lengths: Sequence[int] | None = None,
    n_examples: int | None = None,
    progress: bool = True,
    save: bool = True,
    device: str | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Evaluate a run directory: accuracy per task and length at one checkpoint.

    Args:
        run_dir: the run.
        checkpoint: step to load (default: latest).
        lengths: lengths to evaluate (default: each task's evaluation range from the spec).
        n_examples: examples per length (default: the spec's ``eval.final_examples``).
        progress: show a progress bar.
        save: write ``RUN_DIR/eval/step_NNNNNN.parquet`` (atomically).
        device: where to evaluate (default: the run's ``[train] device``, usually ``auto``).
        batch_size: rows per forward pass (default: the spec's ``[eval] batch_size``, else the
            device's default).

    Returns:
        Tidy accuracy table with ``run, step`` columns.
    """
    run = load_run(run_dir, checkpoint, device=device)
    spec = run.spec
    if lengths is not None:
        for t in spec.task_names:
            get_task(t).check_length(max(lengths))
    per_task = {t: (list(lengths) if lengths else spec.eval_lengths(t)) for t in spec.task_names}
    acc = accuracy_table(
        run.model,
        spec.task_names,
        per_task,
        n_examples=n_examples or spec.eval.final_examples,
        seed=spec.eval.seed,
        progress=progress,
        batch_size=batch_size or spec.eval.batch_size or None,
        run=spec.name,
        step=run.step,
    )
    if save:
        RunDir(run_dir).write_eval(run.step, acc)
    return acc
