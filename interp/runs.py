"""Loading trained runs: a run directory (or a checkpoint step in it) back into a model.

Downstream stages (evaluation, head scoring, overlap, reports) read runs only through
:func:`load_run`, so they never depend on how training wrote them, nor on which device did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from transformer_lens import HookedTransformer

from interp.checkpoint import load_model_weights, load_tensors, resolve_step
from interp.device import resolve_device
from interp.model import build_model
from interp.rundir import RunDir
from interp.spec import TrainSpec


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
    """The spec stored in the run directory (:meth:`interp.rundir.RunDir.spec`)."""
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
