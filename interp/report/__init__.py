"""What a reader sees: Plotly figures of runs and statistics and the HTML reports of a run, a
sweep or a family. Above everything it draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from interp.report.html_report import write_report
    from interp.report.plots import accuracy_figure, importance_heatmap

_PUBLIC = {
    "accuracy_figure": "interp.report.plots",
    "importance_heatmap": "interp.report.plots",
    "write_report": "interp.report.html_report",
}


__all__ = ["accuracy_figure", "importance_heatmap", "write_report"]

__getattr__ = lazy_getattr(__name__, _PUBLIC)
