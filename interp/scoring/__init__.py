"""Measurements on one model: accuracy (evaluation), head importance scores (ablation, patching),
attention tables and head-map overlap. Above models in the data flow; its tables feed the
statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from interp.scoring.attention import attention_table
    from interp.scoring.evaluate import accuracy_table, generalization_gap, transfer_strength
    from interp.scoring.heads import METHODS, METRICS, score_heads
    from interp.scoring.overlap import overlap_table, score_maps

_PUBLIC = {
    "accuracy_table": "interp.scoring.evaluate",
    "attention_table": "interp.scoring.attention",
    "generalization_gap": "interp.scoring.evaluate",
    "METHODS": "interp.scoring.heads",
    "METRICS": "interp.scoring.heads",
    "overlap_table": "interp.scoring.overlap",
    "score_heads": "interp.scoring.heads",
    "score_maps": "interp.scoring.overlap",
    "transfer_strength": "interp.scoring.evaluate",
}


__all__ = [
    "METHODS",
    "METRICS",
    "accuracy_table",
    "attention_table",
    "generalization_gap",
    "overlap_table",
    "score_heads",
    "score_maps",
    "transfer_strength",
]

__getattr__ = lazy_getattr(__name__, _PUBLIC)
