"""Measurements on one model: accuracy (evaluation), head importance scores (ablation, patching),
attention tables and head-map overlap. Above models in the data flow; its tables feed the
statistics.
"""

from __future__ import annotations

from interp.scoring.attention import attention_table
from interp.scoring.evaluate import accuracy_table, generalization_gap, transfer_strength
from interp.scoring.heads import METHODS, METRICS, score_heads
from interp.scoring.overlap import overlap_table, score_maps

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
