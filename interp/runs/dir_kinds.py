"""What kind of output folder a path is (run, sweep, zoo entry, fine-tuning experiment, output
folder), claiming a folder for one kind, and where outputs of a shipped zoo entry go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interp.core.errors import InterpError
from interp.core.io import read_json, write_json
from interp.models.checkpoint import CKPT_DIR
from interp.runs.dirs import (
    CELLS,
    CONFIG,
    DONE,
    EXPERIMENT_JSON,
    METRICS,
    OUTPUTS_JSON,
    SWEEP_JSON,
    ZOO_INFO,
    RunDir,
    is_shipped_entry,
)

# --------------------------------------------------------------------------------------------
# Directory kinds (see the module docstring)

RUN_KIND = "run"
SWEEP_KIND = "sweep"
ZOO_KIND = "zoo entry"
EXPERIMENT_KIND = "fine-tuning experiment"
OUTPUTS_KIND = "output folder"

# Most specific first: a zoo entry and an output folder also hold a config.json.
_KIND_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (EXPERIMENT_KIND, (EXPERIMENT_JSON,)),
    (ZOO_KIND, (ZOO_INFO,)),
    (SWEEP_KIND, (SWEEP_JSON, CELLS)),
    (OUTPUTS_KIND, (OUTPUTS_JSON,)),
    (RUN_KIND, (CONFIG,)),
)


def dir_kind(path: str | Path) -> str | None:
    """What ``path`` holds: one of the ``*_KIND`` names, or ``None`` (missing, empty, other)."""
    p = Path(path)
    if not p.is_dir():
        return None
    for kind, markers in _KIND_MARKERS:
        if any((p / m).is_file() for m in markers):
            return kind
    return None


def claim_dir(path: str | Path, kind: str) -> None:
    """Refuse to write a ``kind`` into a directory that holds another kind.

    Called by every writer before it touches the directory: ``interp train --out`` an existing
    sweep, ``interp sweep --out`` an existing run, anything into a zoo entry would otherwise mix
    their files.

    Raises:
        InterpError: if ``path`` holds a different kind of directory.
    """
    found = dir_kind(path)
    if found is not None and found != kind:
        raise InterpError(
            f"{path} holds {_a(found)}, not {_a(kind)}; give a new or empty --out directory"
        )


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


# --------------------------------------------------------------------------------------------
# Output folders: commands on a zoo entry never write inside it

ZOO_OUTPUTS = Path("runs") / "zoo_outputs"
"""Where ``interp eval/score/overlap/analyze/report`` on a zoo entry write when no ``--out`` is
given: ``runs/zoo_outputs/<entry name>/`` (relative to the current directory), never the entry
itself (a shipped entry is part of the checkout, and its tables describe its stored weights)."""


def outputs_dir(source: str | Path, out: str | Path | None = None) -> RunDir:
    """The run directory a reading command writes its tables and figures into.

    A run writes into itself unless ``out`` is given. An entry of the shipped zoo
    (:func:`is_shipped_entry`) never does: its outputs go to ``out``, default
    ``runs/zoo_outputs/<name>`` (:data:`ZOO_OUTPUTS`). Such an *output folder*
    is an ordinary run directory made from the source (copies of its ``config.json`` and
    ``metrics.parquet``, its checkpoints hard-linked where the file system allows) plus
    ``outputs.json`` naming the source, so every command that reads a run reads it unchanged
    and writes ``eval/`` and ``analysis/`` there. It is reused while the source is the same;
    one made from another source, or from an older version of this one (a re-exported entry),
    is refused rather than mixed.

    Raises:
        InterpError: ``source`` is not a run directory or zoo entry, or ``out`` holds another
            kind of directory or the outputs of another source.
    """
    src = RunDir(source).check()
    shipped = is_shipped_entry(src.path)
    if out is None:
        if not shipped:
            return src
        out = ZOO_OUTPUTS / src.path.resolve().name
    dest = RunDir(out)
    if dest.path.resolve() == src.path.resolve():
        if shipped:
            raise InterpError(f"--out must not be the zoo entry {src.path} itself")
        return src
    claim_dir(dest.path, OUTPUTS_KIND)
    marker = dest.path / OUTPUTS_JSON
    record = {"source": str(src.path.resolve())}
    files = [CONFIG, f"{CKPT_DIR}/index.json"]
    files += [f"{CKPT_DIR}/{e['file']}" for e in _index_entries(src.path)]
    files += [n for n in (METRICS, DONE) if (src.path / n).is_file()]
    if marker.is_file():
        old = read_json(marker)
        if not isinstance(old, dict) or old.get("source") != record["source"]:
            got = old.get("source") if isinstance(old, dict) else old
            raise InterpError(
                f"{dest.path} holds the outputs of {got}, not of {src.path}; give another --out"
            )
        for f in (CONFIG, f"{CKPT_DIR}/index.json"):
            have = dest.path / f
            if have.is_file() and have.read_bytes() != (src.path / f).read_bytes():
                raise InterpError(
                    f"{dest.path} holds the outputs of an older version of {src.path} (its "
                    f"{f} differs); delete that folder or give another --out"
                )
    else:
        from interp.core.io import output_dir

        output_dir(dest.path)
        write_json(marker, record)  # first: the folder is an output folder from then on
    for f in files:  # (the missing ones only: an interrupted first call is completed here)
        if not (dest.path / f).is_file():
            _link_or_copy(src.path / f, dest.path / f, link=f.endswith(".safetensors"))
    return dest


def _index_entries(run: Path) -> list[dict[str, Any]]:
    from interp.models.checkpoint import read_index

    return list(read_index(run).values())


def _link_or_copy(src: Path, dst: Path, link: bool) -> None:
    """Copy ``src`` to ``dst`` atomically, or with ``link`` hard-link it (checkpoints: large, and
    only ever replaced by a rename, never changed in place, so a link cannot change under either
    side), falling back to a copy across file systems. Small files are copied, so that editing
    one by hand in the output folder can never change the source."""
    import os
    import shutil

    from interp.core.io import atomic_write

    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
