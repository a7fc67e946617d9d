"""Figures 6-7 at CPU scale: the shipped maze comparison regenerates from the shipped tables, every
group has its main task alone beside it in every seed, and the docs quote the comparison."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ANALYSES = Path(__file__).resolve().parent.parent / "analyses"
DOCS = ANALYSES.parent / "docs" / "results" / "figures.md"


def _compare() -> dict:
    return runpy.run_path(str(ANALYSES / "mazes" / "compare.py"))


def test_every_group_has_three_seeds_with_and_without_its_auxiliary():
    df = _compare()["table"]()
    counts = df.groupby(["group", "condition"])["seed"].nunique()
    assert counts.to_dict() == {
        (g, c): 3 for g in ("maze_a", "maze_b") for c in ("alone", "with aux")
    }, counts
    # A baseline is the group's own main task trained alone, nothing else.
    for r in df.itertuples(index=False):
        assert r.source.startswith("baseline-" if r.condition == "alone" else r.group)
        assert r.main in r.source or r.condition == "with aux"


def test_shipped_comparison_is_what_the_script_writes():
    mod = _compare()
    assert mod["markdown"](mod["table"]()) == (ANALYSES / "mazes" / "compare.md").read_text(), (
        "analyses/mazes/compare.md is stale: run `python analyses/mazes/compare.py`"
    )


def test_the_claim_row_quotes_the_gains():
    compare = (ANALYSES / "mazes" / "compare.md").read_text()
    gains = dict(
        re.findall(r"- (maze_[ab]): transfer gain .*?mean over seeds ([+-][0-9.]+)", compare)
    )
    assert set(gains) == {"maze_a", "maze_b"}, compare
    row = next(line for line in DOCS.read_text().splitlines() if line.startswith("| maze tasks"))
    for group, gain in gains.items():
        assert f"{group} {gain}" in row.replace("**", ""), (group, gain, row)
