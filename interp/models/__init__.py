"""The model: its architecture (:class:`ModelConfig`), the factory that builds a TransformerLens
``HookedTransformer`` (:func:`build_model`), pretrained loading, checkpoints on disk, per-task
head masks and the fast forward pass. Second step of the data flow, after tasks and batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from interp.models.architecture import ModelConfig, list_presets, load_preset
    from interp.models.checkpoint import list_checkpoints, load_model_weights, save_checkpoint
    from interp.models.factory import build_model

_PUBLIC = {
    "build_model": "interp.models.factory",
    "list_checkpoints": "interp.models.checkpoint",
    "list_presets": "interp.models.architecture",
    "load_model_weights": "interp.models.checkpoint",
    "load_preset": "interp.models.architecture",
    "ModelConfig": "interp.models.architecture",
    "save_checkpoint": "interp.models.checkpoint",
}


__all__ = [
    "ModelConfig",
    "build_model",
    "list_checkpoints",
    "list_presets",
    "load_model_weights",
    "load_preset",
    "save_checkpoint",
]

__getattr__ = lazy_getattr(__name__, _PUBLIC)
