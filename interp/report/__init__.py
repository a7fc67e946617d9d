"""What a reader sees: Plotly figures of runs and statistics and the HTML reports of a run, a
sweep or a family. Above everything it draws.
"""

from __future__ import annotations

from interp.report.html_report import write_report
from interp.report.plots import accuracy_figure, importance_heatmap

__all__ = ["accuracy_figure", "importance_heatmap", "write_report"]
