"""Statistics over the measurement tables: intervals, permutation tests, transfer tables, the
between-run primary test, within-run tests, per-run metrics and power. Above scoring in the
data flow, below the causal tests and the run pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from interp.stats.between import primary_test
    from interp.stats.between_table import PRIMARY
    from interp.stats.intervals import bootstrap_mean_ci, clopper_pearson, spearman
    from interp.stats.transfer import transfer_correlations, transfer_table
    from interp.stats.within import per_run

_PUBLIC = {
    "bootstrap_mean_ci": "interp.stats.intervals",
    "clopper_pearson": "interp.stats.intervals",
    "per_run": "interp.stats.within",
    "PRIMARY": "interp.stats.between_table",
    "primary_test": "interp.stats.between",
    "spearman": "interp.stats.intervals",
    "transfer_correlations": "interp.stats.transfer",
    "transfer_table": "interp.stats.transfer",
}


__all__ = [
    "PRIMARY",
    "bootstrap_mean_ci",
    "clopper_pearson",
    "per_run",
    "primary_test",
    "spearman",
    "transfer_correlations",
    "transfer_table",
]

__getattr__ = lazy_getattr(__name__, _PUBLIC)
