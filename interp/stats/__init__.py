"""Statistics over the measurement tables: intervals, permutation tests, transfer tables, the
between-run primary test, within-run tests, per-run metrics and power. Above scoring in the
data flow, below the causal tests and the run pipeline.
"""

from __future__ import annotations

from interp.stats.between import primary_test
from interp.stats.between_table import PRIMARY
from interp.stats.intervals import bootstrap_mean_ci, clopper_pearson, spearman
from interp.stats.transfer import transfer_correlations, transfer_table
from interp.stats.within import per_run

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
