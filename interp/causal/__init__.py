"""Causal tests on one model: the top-k shared-head ablation test, head sets (with the shared
prefix trie), dose-response and interchange. Above scoring and statistics.
"""

from __future__ import annotations

from interp.causal.dose import dose_matched
from interp.causal.head_sets import causal_sets
from interp.causal.interchange import interchange_scores
from interp.causal.top_k import causal_test, shared_head_ranking

__all__ = [
    "causal_sets",
    "causal_test",
    "dose_matched",
    "interchange_scores",
    "shared_head_ranking",
]
