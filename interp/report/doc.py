"""The HTML skeleton of a report: headings, paragraphs, tables and plotly figures in order.

Kept apart from :mod:`interp.report.html_report` so report sections can live in their own modules;
the
first figure embeds plotly.js, so the file opens offline.

**Untestable rows are words, not tables of NaN.** A statistic with too few units (one run, too
few permutations) comes back as a row whose numbers are NaN and whose ``reason`` says why
(``not testable (n=1, too few runs)``). :meth:`Doc.results` shows only the rows that carry a
number in a table and says the rest in one line per question and reason, so a live demo with
one run per condition reads as one sentence instead of fourteen rows of ``NaN``. The full
tables stay in ``analysis/*.parquet``.
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go


def untestable(df: pd.DataFrame, value: str) -> pd.Series:
    """Rows with no number in ``value`` and a non-empty ``reason``: the statistic was not
    computed, and the row only says why."""
    if "reason" not in df.columns or value not in df.columns:
        return pd.Series(False, index=df.index)
    reason = df["reason"].fillna("").astype(str).str.len() > 0
    return reason & df[value].isna()


def fmt(df: pd.DataFrame, digits: int = 3) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.{digits}f}", border=0, classes="t")


class Doc:
    """A report being written: parts appended in reading order, rendered once."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.n_figs = 0

    def h(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame) -> None:
        self.parts.append(fmt(df))

    def results(
        self, question: str, df: pd.DataFrame, value: str, columns: list[str] | None = None
    ) -> int:
        """The rows of ``df`` that answer ``question`` with a number, as a table, and one line
        saying why the others could not, each distinct reason once (see :func:`untestable`).

        Args:
            question: what the table answers, in words; it starts each line.
            df: a statistics table with ``value`` and ``reason`` columns.
            value: the column that is NaN when the row was not testable (e.g. ``p_value``).
            columns: the columns to show (default: all).

        Returns:
            How many rows were shown in the table.
        """
        bad = untestable(df, value)
        parts = []
        for reason, g in df[bad].groupby(df.loc[bad, "reason"].astype(str), sort=False):
            if len(g) < len(df):
                what = f"{len(g)} of {len(df)} rows"
            else:
                what = f"all {len(df)} rows" if len(df) > 1 else "its only row"
            parts.append(f"{html.escape(reason)} ({what})")
        if parts:
            self.parts.append(
                f'<p class="untestable"><b>{html.escape(question)}</b> {"; ".join(parts)}; '
                "the full table is in the analysis folder.</p>"
            )
        shown = df[~bad]
        if len(shown):
            self.table(shown[columns] if columns else shown)
        return len(shown)

    def fig(self, fig: go.Figure) -> None:
        fig.update_layout(template="plotly_white")
        body = fig.to_html(full_html=False, include_plotlyjs=self.n_figs == 0)
        self.parts.append(f'<div class="fig">{body}</div>')
        self.n_figs += 1

    def render(self) -> str:
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
            "table.t{border-collapse:collapse;font-size:13px;margin:8px 0}"
            "table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
            ".fig{margin:12px 0}"
            "p.untestable{color:#555;border-left:3px solid #bbb;padding-left:8px}"
        )
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{style}</style></head><body>{''.join(self.parts)}</body></html>\n"
        )
