"""Atomic file writes.

Every artifact the package writes (configs, checkpoints, parquet tables, HTML figures) goes to a
temporary file in the destination folder first and is then renamed over the final path. A rename
within one filesystem is atomic, so a killed process never leaves a half-written file behind: the
reader sees either the old complete file or the new complete one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def _default_mode() -> int:
    # mkstemp (and safetensors) create files with mode 0600; renaming one into place would leave
    # every artifact unreadable to other users (a shared run directory, a served model zoo).
    # Files get the mode ``open()`` would give them instead. The umask can only be read by
    # setting it, so it is read once, at import, before any worker threads exist.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_mode()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # After the writer: some (safetensors) recreate the file with a private mode themselves.
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write a text file."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_parquet(path: str | os.PathLike[str], df: pd.DataFrame) -> Path:
    """Atomically write a DataFrame as Parquet (without the index)."""
    return atomic_write(path, lambda p: df.to_parquet(p, index=False))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, turning a missing or malformed file into an :class:`InterpError`."""
    from interp.errors import InterpError

    p = Path(path)
    if not p.is_file():
        raise InterpError(f"missing file: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InterpError(f"malformed JSON in {p}: {e}") from None
