"""Loading trained runs: a run directory (or a checkpoint step in it) back into a model.

Downstream stages (evaluation, head scoring, overlap, reports) read runs only through
:func:`load_run`, so they never depend on how training wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from transformer_lens import HookedTransformer

from interp.checkpoint import list_checkpoints, load_model_weights, load_tensors, resolve_step
from interp.errors import InterpError
from interp.io import read_json, read_parquet
from interp.model import build_model
from interp.spec import TrainSpec
from interp.train import CONFIG, METRICS


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
    """The spec stored in ``RUN_DIR/config.json``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InterpError(f"run directory not found: {run_dir}")
    if not (run_dir / CONFIG).is_file():
        raise InterpError(f"{run_dir} is not a run directory (no {CONFIG})")
    try:
        return TrainSpec.from_dict(read_json(run_dir / CONFIG))
    except InterpError as e:
        raise InterpError(f"corrupt {run_dir / CONFIG}: {e}") from None


def load_run(run_dir: str | Path, checkpoint: int | None = None) -> LoadedRun:
    """Load the model of a run at ``checkpoint`` (default: the latest).

    Raises:
        InterpError: for a missing directory, a missing step (listing those that exist) or a
            corrupt checkpoint.
    """
    spec = read_run_spec(run_dir)
    step = resolve_step(run_dir, checkpoint)
    tensors, _ = load_tensors(run_dir, step)
    model = build_model(spec.model)
    load_model_weights(model, tensors)
    model.eval()
    return LoadedRun(model, spec, step, Path(run_dir))


def run_checkpoints(run_dir: str | Path) -> list[int]:
    """Checkpoint steps of a run, ascending."""
    return list_checkpoints(run_dir)


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """The run's ``metrics.parquet`` (training loss and periodic accuracy)."""
    p = Path(run_dir) / METRICS
    if not p.is_file():
        raise InterpError(f"no {METRICS} in {run_dir}")
    return read_parquet(p)
