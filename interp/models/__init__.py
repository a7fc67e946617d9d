"""The model: its architecture (:class:`ModelConfig`), the factory that builds a TransformerLens
``HookedTransformer`` (:func:`build_model`), pretrained loading, checkpoints on disk, per-task
head masks and the fast forward pass. Second step of the data flow, after tasks and batches.
"""

from __future__ import annotations

from interp.models.architecture import ModelConfig, list_presets, load_preset
from interp.models.checkpoint import list_checkpoints, load_model_weights, save_checkpoint
from interp.models.factory import build_model

__all__ = [
    "ModelConfig",
    "build_model",
    "list_checkpoints",
    "list_presets",
    "load_model_weights",
    "load_preset",
    "save_checkpoint",
]
