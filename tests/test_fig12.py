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
    rope = {c.seed: c.spec for c in _cells("fig4_strings.toml") if c.group == "string_b"}
    cells = _cells("fig12_strings_nope.toml")
    assert sorted(rope) == [c.seed for c in cells] == [0, 1, 2]
    for c in cells:
        _same_but_positional(c.spec, rope[c.seed])


@pytest.mark.parametrize("spec", ["fig12_rope_vs_nope.toml", "fig12_strings_nope.toml"])
def test_the_cpu_scale_fig12_specs_train_nope_only(spec):
    assert {c.positional for c in _cells(spec)} == {"nope"}
