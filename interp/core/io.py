"""Atomic file writes.

Every artifact the package writes (configs, checkpoints, parquet tables, HTML figures) goes to a
temporary file in the destination folder first and is then renamed over the final path. A rename
within one filesystem is atomic, so a killed process never leaves a half-written file behind: the
reader sees either the old complete file or the new complete one.
"""

from __future__ import annotations

import json
import os
import socket
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
    from interp.core.errors import InterpError

    p = Path(path)
    if not p.is_file():
        raise InterpError(f"missing file: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:  # (a binary file is no JSON either)
        raise InterpError(f"malformed JSON in {p}: {e}") from None


def read_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a Parquet table, turning a missing or unreadable file into an :class:`InterpError`."""
    from interp.core.errors import InterpError

    p = Path(path)
    if not p.is_file():
        raise InterpError(f"missing file: {p}")
    try:
        return pd.read_parquet(p)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        # (pyarrow's messages can span lines; the CLI prints one)
        why = " ".join(str(e).split())
        raise InterpError(f"corrupt table {p}: {type(e).__name__}: {why}") from None


def output_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Check that ``path`` can be an output directory, and create it.

    Raises:
        InterpError: for an empty path, a path naming a file, or a directory that cannot be
            created (an unwritable or missing parent, a read-only file system).
    """
    from interp.core.errors import InterpError

    if not str(path).strip():
        raise InterpError(f"{what} must name a directory, got an empty path")
    p = Path(path)
    try:
        # Even asking can fail: a component longer than the file system allows (ENAMETOOLONG).
        if p.exists() and not p.is_dir():
            raise InterpError(f"{what} {p} exists and is not a directory")
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InterpError(f"cannot create directory {p}: {e.strerror or e}") from None
    return p


# A temporary file left by a killed writer: ``.NAME.RANDOM.tmp`` (see atomic_path).
_TEMP_GLOB = ".*.tmp"


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files that killed writers left in ``directory`` (not recursive).

    Call it only while holding the directory's :func:`dir_lock`: a live writer's temporary
    file would otherwise be deleted under it.
    """
    removed = []
    d = Path(directory)
    if d.is_dir():
        for p in d.glob(_TEMP_GLOB):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


LOCK = ".lock"


# Linux caps pids at 2**22; anything outside 1..2**31-1 is no pid of any system (os.kill would
# raise OverflowError for it), so such a lock was not written by interp and counts as unreadable.
_PID_MAX = 2**31 - 1


def _holder(path: Path) -> tuple[int, str]:
    """``(pid, host)`` written in a lock file (``(0, "")`` if unreadable or not a real pid)."""
    try:
        pid, host = path.read_text().split()
        pid_int = int(pid)
    except (OSError, ValueError, UnicodeDecodeError):
        return 0, ""
    return (pid_int, host) if 0 < pid_int <= _PID_MAX else (0, "")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextmanager
def dir_lock(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``DIRECTORY/.lock`` (created atomically, holding this process's pid) while inside.

    A second writer to the same directory gets a clear error instead of silently interleaving
    its files with the first one's. A lock whose pid is no longer running on this host (a
    killed process) is stale and is taken over; one held from another host (a shared file
    system) cannot be checked and is treated as live.

    Raises:
        InterpError: if a live process holds the lock.
    """
    from interp.core.errors import InterpError

    path = Path(directory) / LOCK
    # The pid is written to a private file first and then hard-linked to the lock name: link()
    # is atomic and fails if the name exists, so no reader ever sees an empty lock file.
    mine = Path(directory) / f"{LOCK}-{os.getpid()}"
    try:
        mine.write_text(f"{os.getpid()} {socket.gethostname()}\n")
    except OSError as e:
        raise InterpError(f"cannot write to {directory}: {e.strerror or e}") from None
    try:
        for _ in range(3):
            try:
                os.link(mine, path)
                break
            except FileExistsError:
                pid, host = _holder(path)
                here = host == socket.gethostname()
                if pid and (not here or (pid != os.getpid() and _pid_alive(pid))):
                    where = "" if here else f" on {host}"
                    raise InterpError(
                        f"{directory} is in use by another interp process (pid {pid}{where}); "
                        f"wait for it to finish, or delete {path} if that process is gone"
                    ) from None
                path.unlink(missing_ok=True)  # stale: its owner is gone
        else:
            raise InterpError(f"cannot take the lock {path}; delete it if no interp process runs")
    finally:
        mine.unlink(missing_ok=True)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
