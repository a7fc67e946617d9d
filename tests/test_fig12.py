"""Figure 12 at CPU scale trains NoPE only: its RoPE side is another experiment's runs, so each
NoPE cell must equal its RoPE counterpart in everything but the positional scheme (and name)."""

from __future__ import annotations

from pathlib import Path

import pytest

from interp.runs.analysis_spec import load_analysis_spec
from interp.runs.sweep_spec import expand
from interp.zoo import registry as zoo

ANALYSES = Path(__file__).resolve().parent.parent / "analyses"


def _cells(spec: str) -> list:
    sweep, _ = load_analysis_spec(ANALYSES / spec)
    return expand(sweep)


def _same_but_positional(nope: dict, rope: dict) -> None:
    assert nope["model"]["positional"] == "nope" and rope["model"]["positional"] == "rope"
    a = {**nope, "model": {**nope["model"], "positional": "-"}}
    b = {**rope, "model": {**rope["model"], "positional": "-"}}
    for key in ("name", "group"):
        a.pop(key), b.pop(key)
    assert a == b


def test_arithmetic_nope_cells_are_the_b4_specs_but_for_positional():
    cells = _cells("fig12_rope_vs_nope.toml")
    assert sorted((c.group, c.seed) for c in cells) == [
        (g, s) for g in ("arith_a", "baseline") for s in (0, 1, 2)
    ]
    for c in cells:
        twin = "main" if c.group == "baseline" else "both"
        _same_but_positional(c.spec, zoo.spec(f"b4_{twin}_s{c.seed}").to_dict())


def test_string_nope_cells_are_the_fig4_string_b_cells_but_for_positional():
    rope = {
        (c.group, c.seed): c.spec
        for c in _cells("fig4_strings.toml")
        if c.group == "string_b" or (c.group == "baseline" and c.main == "capitalize_reverse")
    }
    cells = _cells("fig12_strings_nope.toml")
    assert (
        sorted(rope)
        == sorted((c.group, c.seed) for c in cells)
        == [(g, s) for g in ("baseline", "string_b") for s in (0, 1, 2)]
    )
    for c in cells:
        _same_but_positional(c.spec, rope[(c.group, c.seed)])


@pytest.mark.parametrize("spec", ["fig12_rope_vs_nope.toml", "fig12_strings_nope.toml"])
def test_the_cpu_scale_fig12_specs_train_nope_only(spec):
    assert {c.positional for c in _cells(spec)} == {"nope"}


def test_shipped_comparison_is_what_the_script_writes():
    """``analyses/fig12/compare.md`` regenerates from the shipped tables (no model run)."""
    import importlib.util

    path = ANALYSES / "fig12" / "compare.py"
    spec = importlib.util.spec_from_file_location("fig12_compare", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.markdown(mod.table()) == (ANALYSES / "fig12" / "compare.md").read_text(), (
        "analyses/fig12/compare.md is stale (a b4_* entry landed since): run "
        "`python analyses/fig12/compare.py`"
    )


def test_the_verdict_quotes_the_comparison():
    """The docs' Fig. 12 verdict quotes the matched-seed gains that compare.md holds."""
    import re

    compare = (ANALYSES / "fig12" / "compare.md").read_text()
    m = re.search(r"mean gain: RoPE ([+-][0-9.]+), NoPE ([+-][0-9.]+)", compare)
    assert m, compare
    page = (ANALYSES.parent / "docs" / "results" / "figures.md").read_text()
    assert f"NoPE's gain is {m[2]} and RoPE's {m[1]} on the three seeds" in page


def test_shipped_string_comparison_is_what_the_script_writes():
    """``analyses/fig12_strings/compare.md`` regenerates from the two sweeps' shipped tables."""
    import importlib.util

    path = ANALYSES / "fig12_strings" / "compare.py"
    spec = importlib.util.spec_from_file_location("fig12_strings_compare", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    df = mod.table()
    assert set(df["positional"]) == {"rope", "nope"} and set(df["condition"]) == {"both", "main"}
    assert mod.markdown(df) == (ANALYSES / "fig12_strings" / "compare.md").read_text(), (
        "analyses/fig12_strings/compare.md is stale: run `python analyses/fig12_strings/compare.py`"
    )
