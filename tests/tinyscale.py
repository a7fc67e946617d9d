"""Test-only shrinking of specs to seconds-scale, and a TOML writer to put them back on disk.

The figure specs in ``analyses/`` train CPU-scale models for minutes to hours. Tests run the same
specs, through the same commands, after :func:`shrink` has cut them down to the ``tiny`` preset,
one seed, one length pair and a handful of steps: every code path (every task family, baselines,
analysis, report) still runs, in seconds. Production code has no notion of this.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

# autocast/compile are execution keys: a CPU-scale spec may ask for bf16 + torch.compile, which a
# seconds-scale test neither needs (their own tests cover them) nor can afford (compile warm-up).
TINY_TRAIN = {
    "steps": 4, "batch_size": 8, "checkpoint_every": 2, "log_every": 2,
    "autocast": "off", "compile": False,
}  # fmt: skip
TINY_EVAL = {"examples": 8, "final_examples": 8, "every": 0}
TINY_ANALYSIS = {"n_examples": 8, "causal_k": 1, "causal_random": 3}


def _first(v: Any) -> list[Any]:
    return [v[0]] if isinstance(v, list) else [v]


def shrink(d: dict[str, Any]) -> dict[str, Any]:
    """A seconds-scale copy of a sweep/analysis spec dict or a train spec dict."""
    d = copy.deepcopy(d)
    d.pop("paper", None)
    if "tasks" in d:  # a train spec (interp train)
        d["model"] = {"preset": "tiny"}
        d["train"] = {**d.get("train", {}), **TINY_TRAIN, "checkpoint_steps": []}
        d["optim"] = {**d.get("optim", {}), "warmup_steps": 1}
        d["eval"] = {**d.get("eval", {}), **TINY_EVAL}
        return d
    d["presets"] = ["tiny"]
    d["seeds"] = _first(d["seeds"])
    lengths = d["lengths"]
    d["lengths"] = [lengths[0]] if isinstance(lengths[0], list) else [lengths]
    base = d.setdefault("base", {})
    base["model"] = {}
    base["train"] = {**base.get("train", {}), **TINY_TRAIN}
    base["optim"] = {**base.get("optim", {}), "warmup_steps": 1}
    base["eval"] = {**base.get("eval", {}), **TINY_EVAL}
    if "analysis" in d:
        d["analysis"] = {**d["analysis"], **TINY_ANALYSIS}
    return d


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as a TOML value")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def to_toml(d: dict[str, Any], prefix: str = "") -> str:
    """Serialise the TOML subset the specs use (scalars, lists, tables, arrays of tables)."""
    lines = [
        f"{k} = {_value(v)}"
        for k, v in d.items()
        if not isinstance(v, dict) and not _is_table_array(v)
    ]
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            lines += ["", f"[{name}]", to_toml(v, f"{name}.")]
        elif _is_table_array(v):
            for item in v:
                lines += ["", f"[[{name}]]", to_toml(item, f"{name}.")]
    return "\n".join(lines)


def shrink_file(src: Path, dest: Path) -> Path:
    """Write a shrunk copy of the TOML spec ``src`` to ``dest``."""
    d = shrink(tomllib.loads(src.read_text()))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(to_toml(d) + "\n")
    assert tomllib.loads(dest.read_text()) == d  # the writer round-trips
    return dest
