"""A zoo family analysed as a sweep: the run-level statistics, computed from the shipped weights.

The between-run test (:mod:`interp.stats.between`) needs one row per run: its head overlap and its
transfer, both *measured*, never read from a table someone shipped. The zoo's family of
conditions x seeds (:mod:`interp.zoo.family`) is exactly such a set of runs, but its entries live
in ``models/zoo/`` and carry up to ten checkpoints each. This module lays a family out as an
ordinary sweep directory, so that the one sweep analysis
(:func:`interp.runs.analysis.analyze_sweep`)
runs on it unchanged:

* ``OUT/runs/NAME/`` holds a copy of the entry's spec, config, training metrics and **final**
  checkpoint only (the zoo stays read-only: nothing is written under ``models/zoo``);
* ``OUT/cells.parquet`` has one metadata row per entry, with the pre-declared ``condition``
  (``both``, ``nocarry``, ``carry``, ``control1``, ``main``: the entry name's middle part), the
  ``kind`` the statistics use (``baseline`` for the main task alone, ``control`` for an
  unrelated auxiliary, else ``transfer``), and the main-only entry of the same seed as each
  run's ``baseline`` (else the first main-only entry);
* after the analysis, :func:`analyze_family` evaluates the main task again on more items
  (:func:`interp.zoo.family.family_accuracy`) for ``analysis/family``: one row per (entry, length)
  with Clopper-Pearson intervals, the table the demo's summary and report lead with.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from interp.core.errors import InterpError
from interp.core.io import write_json, write_parquet
from interp.models.checkpoint import CKPT_DIR, INDEX, read_index
from interp.runs.analysis import analyze_sweep
from interp.runs.analysis_spec import AnalysisConfig
from interp.runs.dirs import SweepDir, ZooEntryDir, meta_row
from interp.tasks import GROUPS
from interp.zoo import registry as zoo
from interp.zoo.family import family_accuracy

_NAME = re.compile(r"^(?P<prefix>.+?)_(?P<condition>[a-z0-9]+)_s(?P<seed>\d+)$")
INTERVENTIONS = ("disjoint", "shared")
"""Conditions that are training-time interventions (per-task head masks,
:mod:`interp.models.head_mask`),
not observations: they are analysed on their own, never pooled into the observational family."""


def family_names(
    prefix: str, root: str | Path | None = None, interventions: bool = False
) -> list[str]:
    """Zoo entries named ``PREFIX<condition>_s<seed>`` (e.g. ``a4_both_s0``), sorted.

    Args:
        prefix: the family's name prefix.
        root: zoo root (default: ``models/zoo``).
        interventions: also list the head-mask intervention entries (:data:`INTERVENTIONS`);
            off by default, so the observational family never pools them.

    Raises:
        InterpError: if none exist.
    """
    names = [n for n in zoo.names(root) if n.startswith(prefix) and _NAME.match(n)]
    if not interventions:
        names = [n for n in names if _NAME.match(n)["condition"] not in INTERVENTIONS]
    if not names:
        raise InterpError(f"no zoo entries named {prefix}<condition>_s<seed>")
    return sorted(names, key=lambda n: (condition_of(n), int(_NAME.match(n)["seed"])))


def condition_of(name: str) -> str:
    """The pre-declared condition in an entry name: ``a4_both_s0`` -> ``both``."""
    m = _NAME.match(name)
    return m["condition"] if m else name


def seed_of(name: str) -> int:
    """The pre-declared seed in an entry name: ``b4_both_s3`` -> 3 (-1 if it has none)."""
    m = _NAME.match(name)
    return int(m["seed"]) if m else -1


def kind_of(spec) -> str:  # noqa: ANN001  (a TrainSpec)
    """The statistics' kind of a run: ``baseline`` (no auxiliary), its group's kind, else
    ``transfer``."""
    if not spec.aux:
        return "baseline"
    for g in GROUPS.values():
        if g.main == spec.main and set(g.aux) == set(spec.aux):
            return g.kind
    return "transfer"


def entry_meta(name: str, spec) -> dict:  # noqa: ANN001  (a TrainSpec)
    """An entry's metadata row (:func:`interp.runs.dirs.meta_row`) with its ``condition`` from
    the name (``both``, ``nocarry``, ..., ``disjoint``, ``shared``)."""
    row = meta_row(spec, kind=kind_of(spec))
    row.update(run=name, condition=condition_of(name), preset="")
    return row


def with_baselines(meta: pd.DataFrame) -> pd.DataFrame:
    """``meta`` with each run's ``baseline``: the main-only entry of the same seed, else the
    first main-only entry ("" for the main-only entries themselves)."""
    mains = meta[meta["kind"] == "baseline"].sort_values("seed")
    by_seed = dict(zip(mains["seed"], mains["run"], strict=True))
    first = mains["run"].iloc[0] if len(mains) else ""
    meta = meta.copy()
    meta["baseline"] = [
        "" if k == "baseline" else by_seed.get(s, first)
        for k, s in zip(meta["kind"], meta["seed"], strict=True)
    ]
    return meta


def _copy_entry(name: str, dest: Path, root: str | Path | None) -> None:
    """Copy entry ``name`` to run directory ``dest`` with its final checkpoint only."""
    src = ZooEntryDir(zoo.entry_dir(name, root))
    index = read_index(src.path)
    if not index:
        raise InterpError(f"zoo entry {name} has no checkpoints")
    last = max(index, key=int)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / CKPT_DIR).mkdir(parents=True)
    for f in (src.config_path, src.metrics_path, src.spec_file()):
        if f is not None and f.is_file():
            shutil.copy2(f, tmp / f.name)
    shutil.copy2(src.path / CKPT_DIR / index[last]["file"], tmp / CKPT_DIR / index[last]["file"])
    write_json(tmp / CKPT_DIR / INDEX, {last: index[last]})
    (tmp / "DONE").write_text("copied from the zoo\n")
    tmp.rename(dest)


def materialize(names: Sequence[str], out: str | Path, root: str | Path | None = None) -> SweepDir:
    """Lay zoo entries out as a sweep directory ``out`` (module docstring).

    Entries already copied (an earlier call) are kept as they are.

    Returns:
        The sweep directory.
    """
    sweep = SweepDir(Path(out))
    sweep.runs_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        dest = sweep.run(name).path
        if not dest.is_dir():
            _copy_entry(name, dest, root)
        rows.append(entry_meta(name, sweep.run(name).spec()))
    cells = with_baselines(pd.DataFrame(rows))
    write_parquet(sweep.cells_path, cells)
    return sweep


def family_table(acc: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Label :func:`interp.zoo.family.family_accuracy` rows with the cells' condition and kind.

    Args:
        acc: ``family_accuracy`` rows (``name, seed, length, correct, n, accuracy, ci_lo,
            ci_hi, transfer_lo, transfer_hi``, ...) of the main task.
        meta: the family's cells (``run, condition, kind``).

    Returns:
        Rows ``run, condition, kind, seed, length, correct, n, accuracy, ci_lo, ci_hi,
        transfer_lo, transfer_hi``: the main task at the final checkpoint, with the 95%
        Clopper-Pearson interval from the test-set count.
    """
    m = meta.set_index("run")
    df = acc.rename(columns={"name": "run"}).drop(columns=["condition"], errors="ignore")
    df.insert(1, "condition", [m.loc[r, "condition"] for r in df["run"]])
    df.insert(2, "kind", [m.loc[r, "kind"] for r in df["run"]])
    cols = ["run", "condition", "kind", "seed", "length", "correct", "n", "accuracy"]
    return df[cols + ["ci_lo", "ci_hi", "transfer_lo", "transfer_hi"]].reset_index(drop=True)


def analyze_family(
    names: Sequence[str],
    out: str | Path,
    cfg: AnalysisConfig,
    n_accuracy: int = 512,
    root: str | Path | None = None,
    progress: bool = True,
    device: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Copy the entries (:func:`materialize`), analyse them as a sweep at their final
    checkpoints (``cfg``), and add the ``family`` table, the main task's accuracy on
    ``n_accuracy`` items per length (evaluation is cheap next to head scoring, so the table
    the reader sees first gets tighter intervals than ``cfg.n_examples`` would give).

    Returns:
        Every table (also written to ``OUT/analysis/``).
    """
    sweep = materialize(names, out, root)
    tables = analyze_sweep(sweep.path, cfg, progress=progress, device=device)
    acc = family_accuracy(
        names, n_examples=n_accuracy, root=sweep.runs_dir, progress=False, device=device
    )
    tables["family"] = family_table(acc, tables["meta"])
    sweep.write_table("family", tables["family"])
    return tables
