"""The model zoo: small trained checkpoints shipped with the repository.

Every entry lives in ``models/zoo/<name>/`` and is a complete, loadable run directory (so
:func:`interp.runs.loader.load_run` and every analysis that takes a run directory work on it), plus
what a reader needs to trust it::

    models/zoo/<name>/
      spec.toml                   the spec it was trained from (models/zoo/specs/<name>.toml)
      config.json                 the resolved spec (what interp.runs.train wrote)
      metrics.parquet             training loss and periodic accuracy (float32 weights, as trained)
      checkpoints/step_NNNNNN.safetensors, checkpoints/index.json
                                  weights only, parameters in float16, SHA-256 in the index
      accuracy.parquet            exact-match accuracy of the *stored* float16 weights, per
                                  (step, task, length), on n_examples per length
      zoo.json                    description, source, wall time, evaluation settings
      card.md                     human-readable summary with the final accuracy table

Entries are made in two steps, so they can always be rebuilt from their spec::

    interp train models/zoo/specs/<name>.toml --out RUN_DIR
    interp zoo export RUN_DIR <name>          # or interp.zoo.registry.export_run(RUN_DIR, "<name>")

``accuracy.parquet`` is computed after the float16 round trip (the weights are written, loaded
back through :func:`load` and evaluated), so it describes exactly what :func:`load` returns; a
fresh :func:`evaluate` of the stored weights with the same ``n_examples`` and seed reproduces it.

Use::

    from interp.zoo import registry as zoo
    zoo.list_models()                                # one row per entry
    model, cfg = zoo.load("string_b")                # the final checkpoint
    model, cfg = zoo.load("string_b", checkpoint=500)
    zoo.accuracy("string_b")                         # the stored accuracy table
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from interp.core.config import read_config_file
from interp.core.errors import InterpError
from interp.core.io import read_json, read_parquet, write_json, write_parquet, write_text
from interp.core.resources import zoo_dir
from interp.models.architecture import ModelConfig
from interp.models.checkpoint import resolve_step, save_checkpoint
from interp.runs.dir_kinds import ZOO_KIND, claim_dir
from interp.runs.dirs import DONE, RunDir, ZooEntryDir
from interp.runs.loader import load_run
from interp.runs.spec import TrainSpec
from interp.scoring.evaluate import accuracy_table
from interp.zoo.model_card import describe, range_mean, render_card

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

ZOO_DIR = zoo_dir()
"""Default zoo root: ``models/zoo`` of the repository, or its copy in an installed package
(:mod:`interp.core.resources`)."""
SPEC_DIR = ZOO_DIR / "specs"
"""Where the specs that produce the entries live (``models/zoo/specs/<name>.toml``)."""

DEFAULT_EXAMPLES = 256
"""Examples per (task, length) behind ``accuracy.parquet``."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
LIST_COLUMNS = [
    "name",
    "group",
    "main",
    "aux",
    "condition",
    "seed",
    "steps",
    "final_step",
    "transfer_range",
    "transfer_acc",
    "description",
    "problem",
]


# --------------------------------------------------------------------------------------------
# Paths and lookup


def _root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else ZOO_DIR


def names(root: str | Path | None = None) -> list[str]:
    """Names of the zoo entries under ``root`` (default: ``models/zoo``), sorted."""
    r = _root(root)
    if not r.is_dir():
        return []
    return sorted(
        p.name
        for p in r.iterdir()
        if p.is_dir() and not p.name.startswith(".") and RunDir(p).is_run()
    )


def check_name(name: object) -> str:
    """Refuse anything but an entry name: lowercase letters, digits and ``_``, starting with a
    letter. A name is never a path (``../../x`` would reach outside the zoo)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InterpError(
            f"zoo name must be lowercase letters, digits and '_' (starting with a letter), "
            f"got {name!r}"
        )
    return name


def entry_dir(name: str, root: str | Path | None = None) -> Path:
    """The directory of zoo entry ``name``.

    Raises:
        InterpError: if there is no such entry (the message lists the available ones).
    """
    available = names(root)
    if name not in available:
        listed = ", ".join(available) if available else "none (the zoo is empty)"
        raise InterpError(f"unknown zoo model {name!r}; available: {listed}")
    return _root(root) / name


def spec_path(name: str, root: str | Path | None = None) -> Path:
    """The spec file stored beside entry ``name`` (``spec.toml``, or ``spec.json``)."""
    d = ZooEntryDir(entry_dir(name, root))
    found = d.spec_file()
    if found is None:
        raise InterpError(f"zoo model {name!r} has no spec file in {d.path}")
    return found


def spec(name: str, root: str | Path | None = None) -> TrainSpec:
    """The resolved training spec of entry ``name`` (the spec its run recorded)."""
    return RunDir(entry_dir(name, root)).spec()


def info(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """The entry's ``zoo.json``: description, source, wall time, evaluation settings.

    Raises:
        InterpError: a missing or malformed ``zoo.json`` (one that is not a JSON object).
    """
    path = ZooEntryDir(entry_dir(name, root)).info_path
    d = read_json(path)
    if not isinstance(d, dict):
        raise InterpError(f"corrupt {path}: expected a JSON object, got {type(d).__name__}")
    return d


def checkpoints(name: str, root: str | Path | None = None) -> list[int]:
    """Steps with a stored checkpoint, ascending."""
    return RunDir(entry_dir(name, root)).checkpoints()


def card(name: str, root: str | Path | None = None) -> str:
    """The entry's model card (markdown)."""
    return ZooEntryDir(entry_dir(name, root)).card_path.read_text(encoding="utf-8")


def metrics(name: str, root: str | Path | None = None) -> pd.DataFrame:
    """Training metrics of the run the entry came from (loss and periodic accuracy)."""
    return read_parquet(RunDir(entry_dir(name, root)).metrics_path)


def accuracy(
    name: str, checkpoint: int | None = None, root: str | Path | None = None
) -> pd.DataFrame:
    """Stored accuracy of the float16 weights at one checkpoint (default: the final one).

    Args:
        name: zoo entry.
        checkpoint: step, or ``None`` for the final checkpoint; ``-1`` returns every step.
        root: zoo root.

    Returns:
        Columns ``step, task, length, accuracy, n, logprob``.
    """
    d = entry_dir(name, root)
    path = ZooEntryDir(d).accuracy_path
    df = read_parquet(path)
    missing = {"step", "task", "length", "accuracy"} - set(df.columns)
    if missing:
        raise InterpError(f"corrupt table {path}: no column(s) {', '.join(sorted(missing))}")
    if checkpoint == -1:
        return df
    step = resolve_step(d, checkpoint)
    if step not in set(df["step"]):
        raise InterpError(
            f"zoo model {name!r} has no stored accuracy at step {step}; stored: "
            f"{', '.join(map(str, sorted(set(df['step']))))}"
        )
    return df[df["step"] == step].reset_index(drop=True)


def load(
    name: str,
    checkpoint: int | None = None,
    root: str | Path | None = None,
    device: str = "cpu",
) -> tuple[HookedTransformer, ModelConfig]:
    """Load a zoo model in eval mode.

    Args:
        name: zoo entry (see :func:`list_models`).
        checkpoint: step to load (default: the final checkpoint).
        root: zoo root (default: ``models/zoo``).
        device: where to load it (default ``cpu``: zoo models are small, and notebooks read
            their outputs as numpy arrays; ``auto``, ``cuda``... as for ``--device``).

    Returns:
        ``(model, config)``: the HookedTransformer (float32, holding the stored float16 values)
        and its :class:`~interp.models.architecture.ModelConfig`.

    Raises:
        InterpError: an unknown name (listing the available ones), a step without a checkpoint
            (listing those that exist), or a corrupt checkpoint.
    """
    run = load_run(entry_dir(name, root), checkpoint, device=device)
    return run.model, run.spec.model


def list_models(root: str | Path | None = None) -> pd.DataFrame:
    """One row per zoo entry; a damaged entry gets a row too, naming what is wrong.

    Returns:
        Columns ``name, group, main, aux`` (comma-separated), ``condition`` (auxiliaries joined
        by ``+``, or ``none``), ``seed``, ``steps`` (list of stored checkpoint steps),
        ``final_step``, ``transfer_range`` (``"A-B"``, see :func:`transfer_range`),
        ``transfer_acc`` (the main task's stored accuracy at the final step, mean over the
        transfer range), ``description`` and ``problem``: ``""`` for a sound entry, else why
        it could not be read (a corrupt ``zoo.json``, ``accuracy.parquet``, config or
        checkpoint index); such a row has only its name besides.
    """
    rows = []
    for n in names(root):
        try:
            rows.append(_list_row(n, root))
        # One damaged entry must not take the listing of the others down with it.
        except (InterpError, OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            problem = str(e) if isinstance(e, InterpError) else f"{type(e).__name__}: {e}"
            first = problem.splitlines()[0] if problem else "unreadable"
            rows.append({"name": n, "steps": [], "transfer_acc": float("nan"), "problem": first})
    return pd.DataFrame(rows, columns=LIST_COLUMNS)


def _list_row(n: str, root: str | Path | None) -> dict[str, Any]:
    s = spec(n, root)
    steps = checkpoints(n, root)
    desc = info(n, root).get("description", "")
    lo, hi = s.transfer_range()
    transfer_acc = range_mean(accuracy(n, None, root), s.main, lo, hi)
    return {
        "name": n,
        "group": s.group,
        "main": s.main,
        "aux": ",".join(s.aux),
        "condition": s.condition(),
        "seed": s.seed,
        "steps": steps,
        "final_step": steps[-1] if steps else None,
        "transfer_range": f"{lo}-{hi}",
        "transfer_acc": transfer_acc,
        "description": desc if isinstance(desc, str) else str(desc),
        "problem": "",
    }


# --------------------------------------------------------------------------------------------
# Evaluation and export


def evaluate(
    model: HookedTransformer,
    train_spec: TrainSpec,
    n_examples: int = DEFAULT_EXAMPLES,
    seed: int | None = None,
    **labels: object,
) -> pd.DataFrame:
    """Accuracy per (task, length) over the spec's evaluation range, as stored in the zoo.

    Args:
        model: the model (e.g. from :func:`load`).
        train_spec: its spec (tasks and ``eval.max_length`` give the lengths).
        n_examples: examples per (task, length).
        seed: evaluation-set seed (default: the spec's ``eval.seed``).
        **labels: constant columns (``step=...``).

    Returns:
        :func:`interp.scoring.evaluate.accuracy_table`'s frame.
    """
    return accuracy_table(
        model,
        train_spec.task_names,
        {t: train_spec.eval_lengths(t) for t in train_spec.task_names},
        n_examples=n_examples,
        seed=train_spec.eval.seed if seed is None else seed,
        **labels,
    )


def _load_spec_dict(path: Path) -> dict[str, Any]:
    return read_config_file(path)


def _display_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else absolute."""
    repo = ZOO_DIR.parent.parent
    try:
        return str(path.resolve().relative_to(repo))
    except ValueError:
        return str(path.resolve())


def _n_params(model: HookedTransformer) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def export_run(
    run_dir: str | Path,
    name: str,
    steps: Sequence[int] | None = None,
    *,
    n_examples: int = DEFAULT_EXAMPLES,
    spec_file: str | Path | None = None,
    description: str | None = None,
    wall_time_s: float | None = None,
    notes: str | None = None,
    root: str | Path | None = None,
    overwrite: bool = True,
) -> Path:
    """Turn a finished training run into zoo entry ``name``.

    Writes weights-only float16 checkpoints of ``steps``, copies the run's ``config.json`` and
    ``metrics.parquet`` and the spec file, evaluates the *stored* weights at every exported step
    and writes ``accuracy.parquet``, ``zoo.json`` and ``card.md``. The entry is assembled in a
    temporary folder beside it and renamed into place, so a failed export leaves any previous
    entry untouched.

    Args:
        run_dir: a finished run directory (``interp train ... --out RUN_DIR``).
        name: entry name (lowercase letters, digits and ``_``).
        steps: checkpoint steps to export (default: all of the run's checkpoints).
        n_examples: examples per (task, length) for ``accuracy.parquet``.
        spec_file: the spec the run was trained from (default:
            ``models/zoo/specs/<name>.toml``); it must resolve to the run's ``config.json``.
        description: one line for :func:`list_models` (default: built from the spec).
        wall_time_s: training wall time in seconds (default: time from the run's
            ``config.json`` to its ``DONE`` marker).
        root: zoo root (default: ``models/zoo``).
        notes: free text for the card's "Notes" section (caveats, the machine's load, ...).
        overwrite: replace an existing entry of that name.

    Returns:
        The entry directory.

    Raises:
        InterpError: a bad name, an unfinished run, a missing or mismatching spec file, steps
            without a checkpoint (listing those that exist), or an existing entry with
            ``overwrite=False``.
    """
    run = RunDir(run_dir)
    run_dir = run.path
    check_name(name)
    train_spec = run.spec()
    if not run.is_done():
        raise InterpError(f"{run_dir} is not a finished run (no {DONE} marker); train it first")
    available = run.checkpoints()
    wanted = sorted(set(available if steps is None else (int(s) for s in steps)))
    if not wanted:
        raise InterpError("no steps to export")
    for s in wanted:
        resolve_step(run_dir, s)  # raises with the list of available steps

    spec_src = Path(spec_file) if spec_file is not None else SPEC_DIR / f"{name}.toml"
    if not spec_src.is_file():
        raise InterpError(f"spec file not found: {spec_src} (pass spec_file=...)")
    if TrainSpec.from_dict(_load_spec_dict(spec_src)).to_dict() != train_spec.to_dict():
        raise InterpError(
            f"{spec_src} does not resolve to the config of {run_dir}: the entry would not be "
            "reproducible from its spec"
        )

    root_dir = _root(root)
    final = root_dir / name
    if final.exists() and not overwrite:
        raise InterpError(f"zoo entry {name!r} already exists in {root_dir}")
    claim_dir(final, ZOO_KIND)  # an entry replaces an entry, never a run or sweep beside it
    root_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; the entry is meant to be shared
    try:
        t0 = time.perf_counter()
        entry = ZooEntryDir(tmp)
        shutil.copyfile(run.config_path, entry.config_path)
        shutil.copyfile(spec_src, entry.spec_file_path(spec_src.suffix))
        if run.metrics_path.is_file():
            shutil.copyfile(run.metrics_path, entry.metrics_path)
        n_params = 0
        for s in wanted:
            loaded = load_run(run_dir, s, spec=train_spec)
            n_params = _n_params(loaded.model)
            save_checkpoint(
                tmp, s, loaded.model, optimizer=None, half=True, extra={"source_step": s}
            )
        acc = pd.concat(
            [
                evaluate(load_run(tmp, s, spec=train_spec).model, train_spec, n_examples, step=s)
                for s in wanted
            ],
            ignore_index=True,
        )
        write_parquet(entry.accuracy_path, acc)
        meta = {
            "name": name,
            "description": description or describe(train_spec),
            "source_run": str(run_dir),
            "spec_file": _display_path(spec_src),
            "exported_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "train_wall_time_s": wall_time_s if wall_time_s is not None else run.wall_time(),
            "export_eval_s": round(time.perf_counter() - t0, 1),
            "steps": wanted,
            "final_step": wanted[-1],
            "dtype": "float16 parameters (buffers exact)",
            "n_params": n_params,
            "cpu_count": os.cpu_count(),
            "notes": notes or "",
            "accuracy": {"n_examples": n_examples, "seed": train_spec.eval.seed},
        }
        write_json(entry.info_path, meta)
        write_text(entry.card_path, render_card(train_spec, meta, acc))
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=root_dir))
            final.rename(old / name)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def train_entry(
    name: str,
    out: str | Path,
    *,
    export: bool = False,
    steps: Sequence[int] | None = None,
    n_examples: int = DEFAULT_EXAMPLES,
    progress: bool = True,
    root: str | Path | None = None,
) -> Path:
    """Retrain zoo entry ``name`` from its spec (``models/zoo/specs/<name>.toml``).

    Training is :func:`interp.runs.train.train` on that spec, so it resumes an interrupted ``out``
    and,
    on the machine and thread count the entry was made with, reproduces its weights exactly.

    Args:
        name: the entry (its spec must exist in ``models/zoo/specs``).
        out: run directory to train into.
        export: then export the run into the zoo (replacing the entry of that name).
        steps: checkpoint steps to export (default: the existing entry's steps, else all).
        n_examples: examples per (task, length) for the export's ``accuracy.parquet``.
        progress: show the training progress bar.
        root: zoo root for the export (default: ``models/zoo``).

    Returns:
        The run directory, or the entry directory when ``export`` is set.
    """
    from interp.runs.spec import load_spec
    from interp.runs.train import train

    check_name(name)
    src = SPEC_DIR / f"{name}.toml"
    if not src.is_file():
        known = sorted(p.stem for p in SPEC_DIR.glob("*.toml"))
        raise InterpError(f"no zoo spec {name!r}; available: {', '.join(known)}")
    out = Path(out)
    train(load_spec(src), out, resume=True, progress=progress)
    if not export:
        return out
    if steps is None and name in names(root):
        steps = info(name, root)["steps"]
    return export_run(out, name, steps, n_examples=n_examples, spec_file=src, root=root)
