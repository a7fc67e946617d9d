"""The run directory and the sweep directory: one module owns their layout.

Stages of the package talk to each other only through directories: training writes a run,
evaluation, scoring and analysis read runs and write tables, plots turn tables into figures, and
the report reads tables. This module is the one place that knows where each of those files
lives, so no other module spells a file name::

    RUN_DIR/
      config.json                  the resolved spec (interp.runs.train writes it first)
      checkpoints/                 step_NNNNNN.safetensors + index.json (interp.models.checkpoint)
      metrics.parquet              training loss and periodic accuracy
      DONE                         written last, when the final checkpoint is safe
      status.json                  step, loss, speed while training (sweep progress lines)
      eval/step_NNNNNN.parquet     `interp eval` tables (and accuracy_step_NNNNNN.html)
      analysis/<table>.parquet     accuracy, scores, attention, overlap (interp.runs.pipeline)
      analysis/<figure>.html       heatmaps of `interp overlap`
      report.html

    SWEEP_DIR/
      sweep.json, cells.parquet    the spec and one metadata row per cell
      runs/<run>/                  one RUN_DIR per cell
      results.parquet, failures.json
      summary.txt                  the text summary `interp demo` prints
      analysis/<table>.parquet     the sweep-level tables (interp.runs.analysis)
      report.html

A zoo entry (:mod:`interp.zoo.registry`) is a run directory with a few more files
(:class:`ZooEntryDir`), and a fine-tuning experiment (:mod:`interp.cli.finetune`) is a folder of
run directories with its own tables (:class:`ExperimentDir`).

**Directory kinds.** Each writer's first file names what a directory holds, so a directory is
never written by two kinds of command and their files never mix (:func:`dir_kind`,
:func:`claim_dir`)::

    experiment.json              a fine-tuning experiment (interp finetune with checkpoints)
    zoo.json                     a zoo entry (interp zoo export); never written into otherwise
    sweep.json / cells.parquet   a sweep (interp sweep, interp demo)
    outputs.json                 an output folder of a zoo entry or run (:func:`outputs_dir`)
    config.json                  a run (interp train, interp finetune with one run spec)

These are the files each kind has always written first, so directories made before the kinds
were checked are recognised unchanged.

**Analysis tables.** Every table is ``analysis/<name>.parquet``, written atomically.
:meth:`TableDir.upsert_table` merges a new slice into the table on disk by key columns, so a
single-checkpoint command adds to the multi-checkpoint table instead of replacing it.

**The metadata row.** :meth:`RunDir.meta` is the one place a run's metadata row (what
:mod:`interp.stats.transfer` and the report join on: run, group, main, aux, ranges, kind, baseline)
is built from its spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from interp.core.errors import InterpError
from interp.core.io import read_json, read_parquet, write_json, write_parquet
from interp.models.checkpoint import CKPT_DIR, list_checkpoints
from interp.runs.spec import TrainSpec
from interp.tasks import GROUPS

CONFIG = "config.json"
METRICS = "metrics.parquet"
DONE = "DONE"
STATUS = "status.json"
EVAL = "eval"
ANALYSIS = "analysis"
REPORT = "report.html"
SUMMARY = "summary.txt"
RUNS = "runs"
CELLS = "cells.parquet"
RESULTS = "results.parquet"
FAILURES = "failures.json"
SWEEP_JSON = "sweep.json"
ANALYSIS_JSON = "analysis.json"
OUTPUTS_JSON = "outputs.json"

ZOO_ACCURACY = "accuracy.parquet"
ZOO_INFO = "zoo.json"
ZOO_CARD = "card.md"
ZOO_SPECS = ("spec.toml", "spec.json")

EXPERIMENT_JSON = "experiment.json"
EXPERIMENT_ACCURACY = "accuracy.parquet"
EXPERIMENT_GAP = "gap.parquet"
EXPERIMENT_FIGURE = "pretrained.html"


def _is_name(text: str) -> bool:
    """Whether ``text`` is one path component (a cell's run name), never a path."""
    return bool(text) and text not in (".", "..") and "/" not in text and "\\" not in text


def _step_name(step: int) -> str:
    return f"step_{int(step):06d}"


@dataclass(frozen=True)
class TableDir:
    """A directory with an ``analysis/`` folder of Parquet tables and HTML figures."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def analysis_dir(self) -> Path:
        return self.path / ANALYSIS

    @property
    def report_path(self) -> Path:
        return self.path / REPORT

    def table_path(self, name: str) -> Path:
        """``analysis/<name>.parquet``."""
        return self.analysis_dir / f"{name}.parquet"

    def figure_path(self, name: str) -> Path:
        """``analysis/<name>.html``."""
        return self.analysis_dir / f"{name}.html"

    def has_table(self, name: str) -> bool:
        return self.table_path(name).is_file()

    def has_analysis(self) -> bool:
        """Whether the analysis has been run here (its accuracy table exists)."""
        return self.has_table("accuracy")

    def read_table(self, name: str) -> pd.DataFrame:
        """One analysis table.

        Raises:
            InterpError: if it does not exist.
        """
        p = self.table_path(name)
        if not p.is_file():
            raise InterpError(f"no {name} table in {self.analysis_dir}")
        return read_parquet(p)

    def read_tables(self, names: Iterable[str]) -> dict[str, pd.DataFrame]:
        """The tables among ``names`` that exist.

        Raises:
            InterpError: for a table that exists but cannot be read (reported as corrupt).
        """
        return {n: read_parquet(self.table_path(n)) for n in names if self.has_table(n)}

    def write_table(self, name: str, df: pd.DataFrame) -> Path:
        """Atomically (re)write ``analysis/<name>.parquet``."""
        _refuse_shipped(self.path)
        return write_parquet(self.table_path(name), df)

    def upsert_table(self, name: str, df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
        """Write ``df`` into table ``name``, keeping earlier rows whose ``keys`` it does not
        cover; returns what was written."""
        _refuse_shipped(self.path)
        return upsert(self.table_path(name), df, keys)


def upsert(path: str | Path, df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Write ``df`` to ``path``, keeping earlier rows whose ``keys`` ``df`` does not cover.

    So ``interp score RUN --checkpoint 300`` adds to the multi-checkpoint table that
    ``interp analyze`` wrote instead of replacing it.
    """
    path = Path(path)
    if path.is_file() and len(df):
        old = pd.read_parquet(path)
        if set(keys) <= set(old.columns):
            covered = df[list(keys)].drop_duplicates()
            merged = old.merge(covered, on=list(keys), how="left", indicator=True)
            old = old[(merged["_merge"] == "left_only").to_numpy()]
            df = pd.concat([old, df], ignore_index=True)
    write_parquet(path, df)
    return df


@dataclass(frozen=True)
class RunDir(TableDir):
    """One training run's directory (see the module docstring)."""

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def done_path(self) -> Path:
        return self.path / DONE

    @property
    def status_path(self) -> Path:
        return self.path / STATUS

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CKPT_DIR

    @property
    def eval_dir(self) -> Path:
        return self.path / EVAL

    def is_run(self) -> bool:
        """Whether the directory holds a run (its ``config.json`` exists)."""
        return self.config_path.is_file()

    def is_done(self) -> bool:
        """Whether the run finished (its ``DONE`` marker exists)."""
        return self.done_path.is_file()

    def check(self) -> RunDir:
        """Raise :class:`InterpError` unless this is a run directory; returns ``self``."""
        if not self.path.is_dir():
            raise InterpError(f"run directory not found: {self.path}")
        if not self.is_run():
            raise InterpError(f"{self.path} is not a run directory (no {CONFIG})")
        return self

    def config(self) -> dict[str, Any]:
        """The raw ``config.json``."""
        return read_json(self.check().config_path)

    def spec(self) -> TrainSpec:
        """The resolved spec stored in ``config.json``.

        Raises:
            InterpError: a missing directory or config, or a config that is not a valid spec
                (reported as corrupt).
        """
        try:
            return TrainSpec.from_dict(self.config())
        except InterpError as e:
            if not self.path.is_dir() or not self.is_run():
                raise
            raise InterpError(f"corrupt {self.config_path}: {e}") from None

    def write_config(self, spec: TrainSpec) -> Path:
        return write_json(self.config_path, spec.to_dict())

    def checkpoints(self) -> list[int]:
        """Checkpoint steps, ascending."""
        return list_checkpoints(self.path)

    def metrics(self) -> pd.DataFrame:
        """``metrics.parquet`` (training loss and periodic accuracy).

        Raises:
            InterpError: if the run has none yet.
        """
        if not self.metrics_path.is_file():
            raise InterpError(f"no {METRICS} in {self.path}")
        return read_parquet(self.metrics_path)

    def eval_path(self, step: int) -> Path:
        """``eval/step_NNNNNN.parquet``: the table ``interp eval`` writes."""
        return self.eval_dir / f"{_step_name(step)}.parquet"

    def eval_figure_path(self, step: int) -> Path:
        """``eval/accuracy_step_NNNNNN.html``: the figure ``interp eval`` writes."""
        return self.eval_dir / f"accuracy_{_step_name(step)}.html"

    def write_eval(self, step: int, df: pd.DataFrame) -> Path:
        _refuse_shipped(self.path)
        return write_parquet(self.eval_path(step), df)

    def wall_time(self) -> float | None:
        """Seconds from ``config.json`` (written first) to ``DONE`` (written last)."""
        if self.config_path.is_file() and self.done_path.is_file():
            return round(self.done_path.stat().st_mtime - self.config_path.stat().st_mtime, 1)
        return None

    def meta(
        self, baseline: str | None = None, kind: str | None = None, spec: TrainSpec | None = None
    ) -> dict[str, Any]:
        """The run's metadata row for :mod:`interp.stats.transfer` (see :func:`meta_row`)."""
        return meta_row(spec if spec is not None else self.spec(), baseline, kind)


META_COLUMNS = [
    "run",
    "group",
    "kind",
    "main",
    "aux",
    "main_max",
    "aux_max",
    "seed",
    "positional",
    "preset",
    "baseline",
]
"""The metadata columns of a sweep's ``cells.parquet``, one row per cell (:func:`meta_row`
gives all but ``preset``, which the sweep adds)."""


def meta_row(spec: TrainSpec, baseline: str | None = None, kind: str | None = None) -> dict:
    """One metadata row from a run's spec: ``run, group, seed, main, aux`` (comma-joined),
    ``main_max, aux_max`` (training maxima), ``kind`` (``baseline`` without auxiliaries, else
    the group's kind, else ``transfer``), ``baseline`` and ``positional``."""
    aux = spec.aux
    group = GROUPS.get(spec.group)
    main_max = spec.train_range(spec.main)[1]
    return {
        "run": spec.name,
        "group": spec.group,
        "seed": spec.seed,
        "main": spec.main,
        "aux": ",".join(aux),
        "main_max": main_max,
        "aux_max": max((spec.train_range(a)[1] for a in aux), default=main_max),
        "kind": kind or ("baseline" if not aux else (group.kind if group else "transfer")),
        "baseline": baseline or "",
        "positional": spec.model.positional,
    }


@dataclass(frozen=True)
class SweepDir(TableDir):
    """A sweep's directory: its cells, one run directory per cell, sweep-level tables."""

    @property
    def runs_dir(self) -> Path:
        return self.path / RUNS

    @property
    def cells_path(self) -> Path:
        return self.path / CELLS

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS

    @property
    def failures_path(self) -> Path:
        return self.path / FAILURES

    @property
    def sweep_json_path(self) -> Path:
        return self.path / SWEEP_JSON

    @property
    def analysis_config_path(self) -> Path:
        """``analysis.json``: the analysis config ``interp sweep`` keeps for ``interp analyze``."""
        return self.path / ANALYSIS_JSON

    @property
    def summary_path(self) -> Path:
        """``summary.txt``: the text summary ``interp demo`` prints and keeps."""
        return self.path / SUMMARY

    def is_sweep(self) -> bool:
        """Whether the directory holds a sweep (its ``cells.parquet`` exists)."""
        return self.cells_path.is_file()

    def run(self, name: str) -> RunDir:
        """The run directory of cell ``name``."""
        return RunDir(self.runs_dir / name)

    def cells(self) -> pd.DataFrame:
        """``cells.parquet``: one metadata row per cell.

        Raises:
            InterpError: if this is not a sweep directory, or its ``cells.parquet`` is not a
                readable table with the cell columns (reported as corrupt).
        """

        if not self.is_sweep():
            raise InterpError(f"{self.path} is not a sweep directory (no {CELLS})")
        df = read_parquet(self.cells_path)
        missing = [c for c in META_COLUMNS if c not in df.columns]
        if missing:
            raise InterpError(f"corrupt table {self.cells_path}: no column(s) {', '.join(missing)}")
        if df["run"].map(lambda r: isinstance(r, str) and _is_name(r)).all():
            return df
        raise InterpError(f"corrupt table {self.cells_path}: a 'run' is not a run name")


def open_dir(path: str | Path) -> RunDir | SweepDir:
    """A sweep or run directory, whichever ``path`` is.

    Raises:
        InterpError: if ``path`` does not exist or is neither.
    """
    path = Path(path)
    if not path.is_dir():
        raise InterpError(f"directory not found: {path}")
    sweep = SweepDir(path)
    if sweep.is_sweep():
        return sweep
    run = RunDir(path)
    if run.is_run():
        return run
    raise InterpError(f"{path} is neither a run directory nor a sweep directory")


@dataclass(frozen=True)
class ZooEntryDir(RunDir):
    """A zoo entry: a complete run directory plus its accuracy table, info and card."""

    @property
    def accuracy_path(self) -> Path:
        return self.path / ZOO_ACCURACY

    @property
    def info_path(self) -> Path:
        return self.path / ZOO_INFO

    @property
    def card_path(self) -> Path:
        return self.path / ZOO_CARD

    def spec_file(self) -> Path | None:
        """The spec file stored beside the entry (``spec.toml``, or ``spec.json``), if any."""
        for name in ZOO_SPECS:
            if (self.path / name).is_file():
                return self.path / name
        return None

    def spec_file_path(self, suffix: str) -> Path:
        """Where a spec file with ``suffix`` (``.toml``/``.json``) is stored."""
        return self.path / f"spec{suffix}"


@dataclass(frozen=True)
class ExperimentDir:
    """A fine-tuning experiment (:mod:`interp.cli.finetune`): one run directory per checkpoint."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def spec_path(self) -> Path:
        return self.path / EXPERIMENT_JSON

    @property
    def accuracy_path(self) -> Path:
        return self.path / EXPERIMENT_ACCURACY

    @property
    def gap_path(self) -> Path:
        return self.path / EXPERIMENT_GAP

    @property
    def figure_path(self) -> Path:
        return self.path / EXPERIMENT_FIGURE

    def run(self, label: str) -> RunDir:
        return RunDir(self.path / RUNS / label)


def is_zoo_entry(path: str | Path) -> bool:
    """Whether ``path`` is a zoo entry (it has a ``zoo.json``)."""
    return (Path(path) / ZOO_INFO).is_file()


def is_shipped_entry(path: str | Path) -> bool:
    """Whether ``path`` is an entry of the shipped zoo (``models/zoo/NAME``, or the installed
    package's copy): part of the checkout, so never written into. A copy of an entry elsewhere
    is the user's own run directory."""
    from interp.core.resources import zoo_dir

    p = Path(path)
    return is_zoo_entry(p) and p.resolve().parent == zoo_dir().resolve()


def _refuse_shipped(path: Path) -> None:
    """The last guard for code that writes a table into a shipped zoo entry through the API
    (the CLI sends such writes to an output folder first)."""
    if is_shipped_entry(path):
        raise InterpError(
            f"{path} is a shipped zoo entry and is never written into; give the command an "
            "output folder (interp.runs.dir_kinds.outputs_dir, or --out on the command line)"
        )
