"""The HTML skeleton of a report: headings, paragraphs, tables and plotly figures in order.

Kept apart from :mod:`interp.report` so report sections can live in their own modules; the
first figure embeds plotly.js, so the file opens offline.
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go


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
        )
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{style}</style></head><body>{''.join(self.parts)}</body></html>\n"
        )
