"""Pruning a zoo entry's stored checkpoints: keep the weights the zoo needs, keep every table.

An entry exported with every checkpoint (``interp zoo export RUN_DIR NAME`` without ``--steps``)
costs ~1.7 MB of float16 weights per step. Once a family's per-checkpoint tables ship beside
its entries, the intermediate weights are no longer needed, and the repository's size limit
(``models/`` <= 130 MB) asks for them back. :func:`prune` removes the weights of the steps not
kept and rewrites the index, ``zoo.json`` and the card, but loses no measurement: the accuracy
of the stored weights at every step, measured before pruning, moves to
``tables/accuracy_by_checkpoint.parquet``::

    interp zoo prune r4_main_s0              # keep the final checkpoint only
    interp zoo prune r4_main_s0 --keep 2000,4000

``accuracy.parquet`` keeps the rows of the steps still stored, so :func:`registry.accuracy` and
:func:`registry.load` agree on what exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from interp.core.errors import InterpError
from interp.core.io import read_parquet, write_json, write_parquet, write_text
from interp.models.checkpoint import CKPT_DIR, INDEX, read_index
from interp.runs.dirs import RunDir, ZooEntryDir
from interp.zoo.model_card import render_card
from interp.zoo.registry import entry_dir, info, spec

ACCURACY_TABLE = "accuracy_by_checkpoint.parquet"


def prune(
    name: str, keep: Sequence[int] | None = None, root: str | Path | None = None
) -> list[int]:
    """Remove the stored weights of every step of entry ``name`` but ``keep``.

    Args:
        name: zoo entry.
        keep: steps whose weights stay (default: the final step); each must be stored.
        root: zoo root (default ``models/zoo``).

    Returns:
        The steps whose weights were removed (empty when there was nothing to prune).

    Raises:
        InterpError: an unknown entry, or a step in ``keep`` that is not stored (with the list
            of stored steps).
    """
    d = entry_dir(name, root)
    stored = RunDir(d).checkpoints()
    wanted = sorted({stored[-1]} if keep is None else {int(s) for s in keep})
    missing = [s for s in wanted if s not in stored]
    if missing or not wanted:
        raise InterpError(
            f"zoo entry {name!r} stores no checkpoint at step(s) "
            f"{', '.join(map(str, missing)) or '(none given)'}; stored: "
            f"{', '.join(map(str, stored))}"
        )
    dropped = [s for s in stored if s not in wanted]
    if not dropped:
        return []
    entry = ZooEntryDir(d)
    acc = read_parquet(entry.accuracy_path)
    full = d / "tables" / ACCURACY_TABLE
    # The first prune keeps the complete table; a later one must not shrink it.
    if not full.is_file():
        write_parquet(full, acc)
    index = read_index(d)
    files = [d / CKPT_DIR / index[str(s)]["file"] for s in dropped]
    # The index goes first: from then on the dropped files are unreferenced, so an interrupted
    # prune leaves a loadable entry (stray files at worst), never an index naming missing files.
    write_json(d / CKPT_DIR / INDEX, {str(s): index[str(s)] for s in wanted})
    kept_acc = acc[acc["step"].isin(wanted)].reset_index(drop=True)
    write_parquet(entry.accuracy_path, kept_acc)
    meta = info(name, root)
    meta["steps"] = wanted
    before = set(meta.get("pruned", {}).get("dropped_steps", []))
    meta["pruned"] = {
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dropped_steps": sorted(before | set(dropped)),
        "accuracy_of_every_step": f"tables/{ACCURACY_TABLE}",
    }
    write_json(entry.info_path, meta)
    write_text(entry.card_path, render_card(spec(name, root), meta, kept_acc))
    for f in files:
        f.unlink(missing_ok=True)
    return dropped
