"""Sweep specs and their grid: what a sweep trains, before anything runs.

A *sweep spec* (one TOML file; the format is in :mod:`interp.runs.sweep`) describes a grid of
training runs: task groups x seeds x length pairs x positional schemes x model presets, plus
optional main-only baselines. :class:`SweepSpec` is the validated spec (a dataclass with
``to_dict``/``from_dict`` like every other config) and :func:`expand` turns it into
:class:`Cell` objects, each carrying the fully resolved :class:`~interp.runs.spec.TrainSpec` dict
its
run directory's ``config.json`` will hold. Expanding validates every cell, so a bad spec fails
before the first cell trains.

Cell ids are deterministic and readable, and name the run directories::

    arith_a-tiny-rope-m4-a8-s0              group-preset-positional-m<main_max>-a<aux_max>-s<seed>
    baseline-reverse_add-tiny-rope-m4-e8-s0 baseline-main-preset-positional-m<main>-e<eval>-s<seed>

Groups that share a main task share its baseline cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from interp.core.config import check_keys, is_int, read_config_file
from interp.core.errors import InterpError
from interp.runs.dirs import META_COLUMNS, meta_row
from interp.runs.spec import TrainSpec
from interp.tasks import get_group, get_task

_SWEEP_KEYS = {
    "name",
    "groups",
    "seeds",
    "lengths",
    "positional",
    "presets",
    "baseline",
    "eval_margin",
    "base",
}
_BASE_KEYS = {"model", "optim", "train", "eval"}


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec (see the module docstring for the TOML format).

    Attributes:
        name: label of the sweep.
        groups: task-group names.
        seeds: run seeds (data and initialisation).
        lengths: ``(main_max, aux_max)`` pairs.
        positional: positional schemes.
        presets: model preset names.
        baseline: also train main-only baseline runs.
        eval_margin: extra evaluation lengths beyond ``max(main_max, aux_max)``.
        base: ``model``/``optim``/``train``/``eval`` sections applied to every cell.
    """

    name: str
    groups: tuple[str, ...]
    seeds: tuple[int, ...]
    lengths: tuple[tuple[int, int], ...]
    positional: tuple[str, ...] = ("rope",)
    presets: tuple[str, ...] = ("cpu",)
    baseline: bool = False
    eval_margin: int = 0
    base: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a TOML/JSON-ready dict (lists, not tuples); :meth:`from_dict` inverts it."""
        d = asdict(self)
        for k in ("groups", "seeds", "positional", "presets"):
            d[k] = list(d[k])
        d["lengths"] = [list(p) for p in self.lengths]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepSpec:
        """Validate a sweep spec dict (the parsed TOML); see :func:`parse_sweep_spec`."""
        return parse_sweep_spec(d)


@dataclass(frozen=True)
class Cell:
    """One run of a sweep.

    Attributes:
        run: deterministic, readable id; also the run directory's name.
        group: task-group name (``"baseline"`` for main-only runs).
        kind: ``transfer``, ``control`` or ``baseline``.
        main: main task.
        aux: auxiliary tasks (empty for a baseline).
        main_max: main task's training max length.
        aux_max: auxiliaries' training max length (the transfer range's end).
        seed: run seed.
        positional: positional scheme.
        preset: model preset.
        baseline: id of the matching baseline run (``""`` if none, or for a baseline itself).
        spec: the cell's :class:`~interp.runs.spec.TrainSpec` as a dict.
    """

    run: str
    group: str
    kind: str
    main: str
    aux: tuple[str, ...]
    main_max: int
    aux_max: int
    seed: int
    positional: str
    preset: str
    baseline: str
    spec: dict[str, Any] = field(compare=False, repr=False)

    def meta(self) -> dict[str, Any]:
        """The cell's metadata row (``aux`` comma-joined), built by
        :func:`interp.runs.dirs.meta_row`
        from the cell's spec, plus its preset."""
        row = meta_row(TrainSpec.from_dict(self.spec), self.baseline, self.kind)
        # A baseline has no auxiliaries, but its row keeps the transfer range of the cell that
        # asked for it (the grid's aux_max), as cells.parquet always recorded.
        row.update(aux_max=self.aux_max, preset=self.preset)
        return {k: row[k] for k in META_COLUMNS}


def _as_list(d: dict[str, Any], key: str, default: Any = None) -> list[Any]:
    v = d.get(key, default)
    if v is None:
        raise InterpError(f"sweep spec: missing required key {key!r}")
    if not isinstance(v, list):
        v = [v]
    if not v:
        raise InterpError(f"sweep spec: {key!r} must not be empty")
    return v


def _check_unique(key: str, values: list[Any]) -> None:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise InterpError(f"sweep spec: {key!r} lists {v!r} twice")
        seen.add(v)


def parse_sweep_spec(d: dict[str, Any]) -> SweepSpec:
    """Validate a sweep spec dict (the parsed TOML).

    Raises:
        InterpError: for unknown keys, wrong types, an unknown group, or malformed lengths.
    """
    if not isinstance(d, dict):
        raise InterpError("sweep spec must be a table/dict")
    check_keys(d, _SWEEP_KEYS, "sweep spec")
    groups = _as_list(d, "groups")
    if not all(isinstance(g, str) for g in groups):
        raise InterpError("sweep spec: 'groups' must be group names (strings)")
    for g in groups:
        get_group(g)  # raises with the list of valid groups
    seeds = _as_list(d, "seeds")
    if not all(is_int(s) and s >= 0 for s in seeds):
        raise InterpError(f"sweep spec: 'seeds' must be non-negative integers, got {seeds}")
    raw_lengths = d.get("lengths")
    if isinstance(raw_lengths, list) and len(raw_lengths) == 2 and all(map(is_int, raw_lengths)):
        raw_lengths = [raw_lengths]  # a single pair
    lengths = _as_list({"lengths": raw_lengths}, "lengths")
    pairs = []
    for p in lengths:
        if not (isinstance(p, list) and len(p) == 2 and all(is_int(x) and x >= 1 for x in p)):
            raise InterpError(
                f"sweep spec: 'lengths' must be [main_max, aux_max] pairs of positive integers, "
                f"got {p!r}"
            )
        pairs.append((p[0], p[1]))
    positional = _as_list(d, "positional", ["rope"])
    presets = _as_list(d, "presets", ["cpu"])
    for key, vals in (("positional", positional), ("presets", presets)):
        if not all(isinstance(v, str) for v in vals):
            raise InterpError(f"sweep spec: {key!r} must be strings")
    for key, vals in (
        ("groups", groups),
        ("seeds", seeds),
        ("lengths", pairs),
        ("positional", positional),
        ("presets", presets),
    ):
        _check_unique(key, vals)
    baseline = d.get("baseline", False)
    if not isinstance(baseline, bool):
        raise InterpError("sweep spec: 'baseline' must be true or false")
    margin = d.get("eval_margin", 0)
    if not is_int(margin) or margin < 0:
        raise InterpError("sweep spec: 'eval_margin' must be a non-negative integer")
    base = d.get("base", {})
    if not isinstance(base, dict):
        raise InterpError("sweep spec: [base] must be a table")
    check_keys(base, _BASE_KEYS, "sweep spec", noun="[base] sections")
    for k, v in base.items():
        if not isinstance(v, dict):
            raise InterpError(f"sweep spec: [base.{k}] must be a table")
    return SweepSpec(
        name=str(d.get("name", "sweep")),
        groups=tuple(groups),
        seeds=tuple(seeds),
        lengths=tuple(pairs),
        positional=tuple(positional),
        presets=tuple(presets),
        baseline=baseline,
        eval_margin=margin,
        base={k: dict(v) for k, v in base.items()},
    )


def sweep_identity(sw: SweepSpec) -> dict[str, Any]:
    """What a second ``interp sweep`` into the same directory must match: the spec without the
    execution settings of its ``[base]`` sections (:data:`interp.runs.spec.EXECUTION_KEYS`: where
    and how fast the cells run, not what they train), as for a run's resume."""
    from interp.runs.spec import run_identity

    d = sw.to_dict()
    d["base"] = run_identity(d.get("base") or {})
    return d


def load_sweep_spec(spec: str | Path | dict[str, Any] | SweepSpec) -> SweepSpec:
    """Read a sweep spec from a TOML file, a dict, or pass a :class:`SweepSpec` through.

    Raises:
        InterpError: for a missing file, malformed TOML, or an invalid spec.
    """
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return parse_sweep_spec(spec)
    d = read_config_file(spec, missing="sweep spec not found", malformed="malformed sweep spec")
    return parse_sweep_spec(d)


def _low(task: str) -> int:
    return max(1, get_task(task).min_length)


def _train_dict(
    sw: SweepSpec,
    run: str,
    group: str,
    main: str,
    ranges: list[tuple[str, int]],
    seed: int,
    positional: str,
    preset: str,
    eval_max: int,
) -> dict[str, Any]:
    base = sw.base
    ev = {**base.get("eval", {})}
    ev.setdefault("max_length", eval_max)
    d = {
        "name": run,
        "group": group,
        "main": main,
        "seed": seed,
        "tasks": [{"name": t, "lengths": [_low(t), hi]} for t, hi in ranges],
        "model": {**base.get("model", {}), "preset": preset, "positional": positional},
        "eval": ev,
    }
    for k in ("optim", "train"):
        if k in base:
            d[k] = dict(base[k])
    try:
        # Resolving validates everything now, before any cell trains, and stores the fully
        # resolved dict, which is what the run directory's config.json will hold.
        return TrainSpec.from_dict(d).to_dict()
    except InterpError as e:
        raise InterpError(f"sweep cell {run}: {e}") from None


def expand(spec: str | Path | dict[str, Any] | SweepSpec) -> list[Cell]:
    """Expand a sweep spec into its cells (baselines first, then the grid in spec order).

    Raises:
        InterpError: if the spec, or the train spec of any cell, is invalid.
    """
    sw = load_sweep_spec(spec)
    grid: list[Cell] = []
    baselines: dict[str, Cell] = {}
    for group in sw.groups:
        g = get_group(group)
        for main_max, aux_max in sw.lengths:
            eval_max = int(sw.base.get("eval", {}).get("max_length", 0)) or (
                max(main_max, aux_max) + sw.eval_margin
            )
            for preset in sw.presets:
                for pos in sw.positional:
                    for seed in sw.seeds:
                        base_id = ""
                        if sw.baseline:
                            base_id = (
                                f"baseline-{g.main}-{preset}-{pos}-m{main_max}-e{eval_max}-s{seed}"
                            )
                            if base_id not in baselines:
                                baselines[base_id] = Cell(
                                    base_id,
                                    "baseline",
                                    "baseline",
                                    g.main,
                                    (),
                                    main_max,
                                    aux_max,
                                    seed,
                                    pos,
                                    preset,
                                    "",
                                    _train_dict(
                                        sw,
                                        base_id,
                                        "baseline",
                                        g.main,
                                        [(g.main, main_max)],
                                        seed,
                                        pos,
                                        preset,
                                        eval_max,
                                    ),
                                )
                        run = f"{group}-{preset}-{pos}-m{main_max}-a{aux_max}-s{seed}"
                        ranges = [(g.main, main_max), *[(a, aux_max) for a in g.aux]]
                        grid.append(
                            Cell(
                                run,
                                group,
                                g.kind,
                                g.main,
                                tuple(g.aux),
                                main_max,
                                aux_max,
                                seed,
                                pos,
                                preset,
                                base_id,
                                _train_dict(
                                    sw, run, group, g.main, ranges, seed, pos, preset, eval_max
                                ),
                            )
                        )
    return [*baselines.values(), *grid]


def sweep_metadata(cells: Sequence[Cell]) -> pd.DataFrame:
    """The run-metadata frame :mod:`interp.stats.transfer` consumes: one row per cell."""
    return pd.DataFrame([c.meta() for c in cells], columns=META_COLUMNS)
