"""Causal tests on one model: the top-k shared-head ablation test, head sets (with the shared
prefix trie), dose-response and interchange. Above scoring and statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from interp.causal.dose import dose_matched
    from interp.causal.head_sets import causal_sets
    from interp.causal.interchange import interchange_scores
    from interp.causal.top_k import causal_test, shared_head_ranking

_PUBLIC = {
    "causal_sets": "interp.causal.head_sets",
    "causal_test": "interp.causal.top_k",
    "dose_matched": "interp.causal.dose",
    "interchange_scores": "interp.causal.interchange",
    "shared_head_ranking": "interp.causal.top_k",
}


__all__ = [
    "causal_sets",
    "causal_test",
    "dose_matched",
    "interchange_scores",
    "shared_head_ranking",
]

__getattr__ = lazy_getattr(__name__, _PUBLIC)
