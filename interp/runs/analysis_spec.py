"""The analysis spec: a sweep spec's ``[analysis]`` table (what to measure on the sweep) and
its ``[paper]`` overrides, read into an :class:`AnalysisConfig`.

See :mod:`interp.runs.analysis` for the format and for what an analysis writes.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from interp.core.config import check_fields, check_keys, read_config_file
from interp.core.errors import InterpError, unknown_choice

SCALES = ("cpu", "paper")
# Counts (examples, k, random sets) above this are typos, not experiments.
_MAX_COUNT = 1_000_000


@dataclass
class AnalysisConfig:
    """What :func:`analyze_sweep` measures (see the module docstring)."""

    figure: str = ""
    methods: list[str] = field(default_factory=lambda: ["mean_ablation"])
    metrics: list[str] = field(default_factory=lambda: ["exact_match", "frac_lost"])
    n_examples: int = 128
    k: int = 4
    checkpoints: str = "all"
    attention: bool = True
    causal: bool = True
    causal_k: int = 3
    causal_random: int = 30
    description: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AnalysisConfig:
        """Validate an ``[analysis]`` table (types, ranges and method/metric names).

        Raises:
            InterpError: naming the first bad key, its value and what it must be.
        """
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise InterpError("analysis spec: [analysis] must be a table")
        check_keys(d, {f.name for f in fields(cls)}, "analysis spec", "analysis")
        for key, value in d.items():
            _check_analysis_value(key, value)  # ranges and names, with the specific messages
        check_fields(cls, d, "analysis spec", "analysis")  # and the types, as every config
        return cls(**{k: list(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_analysis_value(key: str, value: Any) -> None:
    from interp.core.config import is_int
    from interp.scoring.heads import METHODS, METRICS

    def bad(want: str) -> InterpError:
        return InterpError(f"analysis spec: [analysis] {key} must be {want}, got {value!r}")

    if key in ("figure", "description"):
        if not isinstance(value, str):
            raise bad("a string")
    elif key in ("methods", "metrics"):
        choices = METHODS if key == "methods" else METRICS
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise bad(f"a non-empty list of names from {', '.join(choices)}")
        for v in value:
            if v not in choices:
                raise unknown_choice(key[:-1], v, choices)
    elif key in ("attention", "causal"):
        if not isinstance(value, bool):
            raise bad("true or false")
    elif key == "checkpoints":
        if value not in ("all", "last"):
            raise bad("'all' or 'last'")
    elif not (is_int(value) and 1 <= value <= _MAX_COUNT):
        raise bad(f"an integer in 1..{_MAX_COUNT}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_analysis_spec(
    spec: str | Path | dict[str, Any], scale: str = "cpu"
) -> tuple[dict[str, Any], AnalysisConfig]:
    """Split an analysis spec into ``(sweep spec dict, analysis config)`` at ``scale``."""
    if scale not in SCALES:
        raise unknown_choice("scale", scale, SCALES)
    if isinstance(spec, dict):
        d = copy.deepcopy(spec)
    else:
        d = read_config_file(spec)
    cfg = AnalysisConfig.from_dict(d.pop("analysis", None))
    paper = d.pop("paper", None)
    if scale == "paper":
        if not isinstance(paper, dict):
            raise InterpError("this spec has no [paper] table: it defines no paper-scale variant")
        d = _merge(d, paper)
    return d, cfg
