"""Config dicts: the shared loader and validator, and every config's to_dict/from_dict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from interp.core.config import check_fields, check_keys, check_type, read_config_file
from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig
from interp.runs.analysis_spec import AnalysisConfig
from interp.runs.spec import TrainSpec
from interp.runs.spec_sections import EvalConfig, OptimConfig, TrainConfig
from interp.runs.sweep_spec import SweepSpec, load_sweep_spec

ROOT = Path(__file__).resolve().parent.parent

TRAIN = {
    "name": "r",
    "group": "arith_a",
    "main": "reverse_add",
    "seed": 3,
    "tasks": [
        {"name": "reverse_add", "lengths": [1, 4]},
        {"name": "no_carry", "lengths": [1, 6], "weight": 0.5},
    ],
    "model": {"preset": "tiny"},
    "train": {"steps": 7, "checkpoint_steps": [2]},
}

CONFIGS = [
    OptimConfig(lr=3e-3, betas=(0.8, 0.9)),
    TrainConfig(steps=7, checkpoint_steps=[2, 5]),
    EvalConfig(examples=4),
    ModelConfig(n_layers=1, d_model=32, n_heads=2),
    TrainSpec.from_dict(TRAIN),
    load_sweep_spec(ROOT / "analyses" / "sweep_example.toml"),
    AnalysisConfig(methods=["mean_ablation"], k=3, attention=False),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: type(c).__name__)
def test_every_config_round_trips_through_json(cfg):
    d = cfg.to_dict()
    again = type(cfg).from_dict(json.loads(json.dumps(d)))
    assert again.to_dict() == d
    assert again == cfg


@dataclass
class _Cfg:
    n: int = 1
    x: float = 0.5
    on: bool = True
    label: str = "a"
    pair: tuple[float, float] = (0.1, 0.2)
    steps: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=lambda: ["a"])


@pytest.mark.parametrize(
    "key, value, want",
    [
        ("n", "3", "an integer"),
        ("n", True, "an integer"),
        ("x", "big", "a number"),
        ("on", 1, "true or false"),
        ("label", 3, "a string"),
        ("pair", [1], "a list of 2 numbers"),
        ("steps", [1.5], "a list of integers"),
        ("names", [1], "a list of strings"),
    ],
)
def test_check_fields_names_the_bad_value(key, value, want):
    with pytest.raises(InterpError, match=rf"^cfg: \[sec\] {key} must be {want}, got "):
        check_fields(_Cfg, {key: value}, "cfg", "sec")


def test_check_fields_accepts_good_values_and_refuses_unknown_keys():
    check_fields(_Cfg, {"n": 2, "x": 1, "on": False, "pair": [1, 2.5], "names": []}, "cfg")
    with pytest.raises(InterpError, match=r"^cfg: unknown keys \['m'\] in \[sec\]; valid keys: "):
        check_fields(_Cfg, {"m": 1}, "cfg", "sec")
    with pytest.raises(InterpError, match=r"^w: unknown top-level keys \['z'\]; valid keys: a, b$"):
        check_keys({"z": 1}, {"a", "b"}, "w", noun="top-level keys")
    check_type("w:", "k", object(), None)  # a default without a checked type accepts anything


def test_read_config_file_by_suffix(tmp_path: Path):
    (tmp_path / "a.toml").write_text('x = 1\n[s]\ny = "z"\n')
    (tmp_path / "a.json").write_text('{"x": 1}')
    assert read_config_file(tmp_path / "a.toml") == {"x": 1, "s": {"y": "z"}}
    assert read_config_file(tmp_path / "a.json") == {"x": 1}
    with pytest.raises(InterpError, match="^spec file not found: "):
        read_config_file(tmp_path / "none.toml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InterpError, match="^malformed sweep spec .*bad.json: "):
        read_config_file(tmp_path / "bad.json", malformed="malformed sweep spec")
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(InterpError, match="^malformed spec "):
        read_config_file(tmp_path / "bad.toml")


def test_sweep_spec_keeps_what_it_was_given():
    sw = SweepSpec.from_dict({"groups": "arith_a", "seeds": 0, "lengths": [4, 8]})
    assert sw.to_dict() == {
        "name": "sweep",
        "groups": ["arith_a"],
        "seeds": [0],
        "lengths": [[4, 8]],
        "positional": ["rope"],
        "presets": ["cpu"],
        "baseline": False,
        "eval_margin": 0,
        "base": {},
    }
