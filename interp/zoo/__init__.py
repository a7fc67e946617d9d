"""The model zoo: small trained checkpoints shipped with the repository (``models/zoo``), their
cards, and the families of runs they form. Above runs (an entry is an exported run).

In a notebook: ``from interp import zoo; model, cfg = zoo.load("arith_a")``.

The names below are imported on first use (:mod:`interp.core.lazy`), so a command that only
lists or reads entries does not load TransformerLens. ``transfer_range(spec)`` and
``condition(spec)`` are :meth:`interp.runs.spec.TrainSpec.transfer_range` and
:meth:`interp.runs.spec.TrainSpec.condition`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from interp.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from interp.zoo.family import TRANSFER_THRESHOLD, family_accuracy
    from interp.zoo.pruning import prune
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

_PUBLIC = {
    "accuracy": "interp.zoo.registry",
    "card": "interp.zoo.registry",
    "checkpoints": "interp.zoo.registry",
    "entry_dir": "interp.zoo.registry",
    "evaluate": "interp.zoo.registry",
    "export_run": "interp.zoo.registry",
    "family_accuracy": "interp.zoo.family",
    "info": "interp.zoo.registry",
    "list_models": "interp.zoo.registry",
    "load": "interp.zoo.registry",
    "metrics": "interp.zoo.registry",
    "names": "interp.zoo.registry",
    "prune": "interp.zoo.pruning",
    "spec": "interp.zoo.registry",
    "SPEC_DIR": "interp.zoo.registry",
    "train_entry": "interp.zoo.registry",
    "TRANSFER_THRESHOLD": "interp.zoo.family",
    "ZOO_DIR": "interp.zoo.registry",
}
_SPEC_METHODS = ("transfer_range", "condition")
_lazy = lazy_getattr(__name__, _PUBLIC)

__all__ = [
    "accuracy",
    "card",
    "checkpoints",
    "condition",
    "entry_dir",
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
    "SPEC_DIR",
    "train_entry",
    "transfer_range",
    "TRANSFER_THRESHOLD",
    "ZOO_DIR",
]


def __getattr__(name: str) -> Any:
    if name in _SPEC_METHODS:
        from interp.runs.spec import TrainSpec

        return getattr(TrainSpec, name)
    return _lazy(name)
