"""Figure 10 at CPU scale: the shipped grid comparison regenerates from the shipped tables, and
the docs' claim row quotes it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

ANALYSES = Path(__file__).resolve().parent.parent / "analyses"
DOCS = ANALYSES.parent / "docs" / "results" / "figures.md"


def _compare():
    path = ANALYSES / "fig10" / "compare.py"
    spec = importlib.util.spec_from_file_location("fig10_compare", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_grid_has_two_seeds_in_every_cell():
    df = _compare().table()
    cells = df.groupby(["main_max", "aux_max"])["seed"].nunique()
    assert len(cells) == 9 and (cells >= 2).all(), cells
    assert np.isfinite(df["curve_distance"]).all()


def test_shipped_comparison_is_what_the_script_writes():
    mod = _compare()
    assert mod.markdown(mod.table()) == (ANALYSES / "fig10" / "compare.md").read_text(), (
        "analyses/fig10/compare.md is stale: run `python analyses/fig10/compare.py`"
    )


def test_the_claim_row_quotes_the_comparison():
    compare = (ANALYSES / "fig10" / "compare.md").read_text()
    held = re.search(r"\): (\d+) of (\d+) pairs hold", compare)
    rho = re.search(r"Spearman ([+-][0-9.]+)", compare)
    assert held and rho, compare
    page = DOCS.read_text()
    assert f"{held[1]} of {held[2]} far-above-near pairs" in page
    assert f"Spearman {rho[1]}" in page
