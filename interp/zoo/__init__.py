"""The model zoo: small trained checkpoints shipped with the repository (``models/zoo``), their
cards, and the families of runs they form. Above runs (an entry is an exported run).

In a notebook: ``from interp import zoo; model, cfg = zoo.load("arith_a")``.
"""

from __future__ import annotations

from interp.runs.spec import TrainSpec
from interp.zoo.family import TRANSFER_THRESHOLD, family_accuracy
from interp.zoo.prune import prune
from interp.zoo.registry import (
    SPEC_DIR,
    ZOO_DIR,
    accuracy,
    card,
    checkpoints,
    entry_dir,
    evaluate,
    export_run,
    info,
    list_models,
    load,
    metrics,
    names,
    spec,
    train_entry,
)

transfer_range = TrainSpec.transfer_range
"""``transfer_range(spec)``: :meth:`interp.runs.spec.TrainSpec.transfer_range`."""
condition = TrainSpec.condition
"""``condition(spec)``: :meth:`interp.runs.spec.TrainSpec.condition`."""

__all__ = [
    "SPEC_DIR",
    "TRANSFER_THRESHOLD",
    "ZOO_DIR",
    "accuracy",
    "card",
    "checkpoints",
    "entry_dir",
    "condition",
    "evaluate",
    "export_run",
    "family_accuracy",
    "info",
    "list_models",
    "load",
    "metrics",
    "names",
    "prune",
    "spec",
    "train_entry",
    "transfer_range",
]
