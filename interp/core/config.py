"""Config dicts: one loader for spec files, one validator for their tables.

Every configuration in the package (a training spec's sections, the model config, a sweep
spec, an analysis table, a fine-tuning experiment, a zoo entry's spec) arrives as a dict parsed
from TOML or JSON and becomes a dataclass. Two things can go wrong on the way, and both must end
as one readable :class:`~interp.core.errors.InterpError` line instead of a traceback much later:

* **unknown keys** (a typo such as ``stepz = 3`` would otherwise be silently ignored):
  :func:`check_keys` names them and lists the valid ones;
* **wrong types** (``steps = "100"`` would pass construction and fail mid-training):
  :func:`check_type` compares a value with the type of the field's default.

:func:`check_fields` does both for a dataclass whose fields all have defaults.
:func:`read_config_file` reads a ``.toml`` or ``.json`` file (by suffix) into a dict.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from interp.core.errors import InterpError


def is_int(x: Any) -> bool:
    """An ``int`` that is not a ``bool`` (TOML and JSON give both)."""
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(x, int | float) and not isinstance(x, bool)


def read_config_file(
    path: str | Path, missing: str = "spec file not found", malformed: str = "malformed spec"
) -> dict[str, Any]:
    """A ``.json`` (by suffix) or TOML (anything else) file as a dict.

    Args:
        path: the file.
        missing: start of the error for a missing file (``"{missing}: {path}"``).
        malformed: start of the error for a file that does not parse
            (``"{malformed} {path}: {reason}"``).

    Raises:
        InterpError: for a missing file, malformed TOML/JSON, or a file that is not UTF-8.
    """
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"{missing}: {p}")
    try:
        text = p.read_text(encoding="utf-8")
        d = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InterpError(f"{malformed} {p}: {e}") from None
    return d


def check_keys(
    d: dict[str, Any],
    known: set[str],
    what: str,
    section: str | None = None,
    noun: str = "keys",
) -> None:
    """Refuse keys of ``d`` outside ``known``.

    The message reads ``"{what}: unknown {noun} [...] in [{section}]; valid keys: ..."``
    (without the ``in [...]`` part when ``section`` is ``None``), e.g. ``spec: unknown keys
    ['stepz'] in [train]; valid keys: ...``.
    """
    unknown = sorted(set(d) - set(known))
    if unknown:
        where = f" in [{section}]" if section else ""
        raise InterpError(
            f"{what}: unknown {noun} {unknown}{where}; valid keys: {', '.join(sorted(known))}"
        )


def check_type(where: str, key: str, value: Any, default: Any) -> None:
    """Refuse a value whose type does not match the field's ``default``.

    Integers, numbers, booleans, strings, fixed-length number tuples and lists (of integers or
    of strings, by the default's elements) are checked; a default of any other type (``None``,
    a dict) accepts anything, the dataclass validates it itself.

    Raises:
        InterpError: ``"{where} {key} must be {what it must be}, got {value!r}"``.
    """
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif is_int(default):
        ok, want = is_int(value), "an integer"
    elif isinstance(default, float):
        ok, want = is_number(value), "a number"
    elif isinstance(default, str):
        ok, want = isinstance(value, str), "a string"
    elif isinstance(default, tuple):
        ok = (
            isinstance(value, list | tuple)
            and len(value) == len(default)
            and all(map(is_number, value))
        )
        want = f"a list of {len(default)} numbers"
    elif isinstance(default, list):
        if default and all(isinstance(v, str) for v in default):
            elem, want = (lambda v: isinstance(v, str)), "a list of strings"
        else:
            elem, want = is_int, "a list of integers"
        ok = isinstance(value, list) and all(map(elem, value))
    else:
        return
    if not ok:
        raise InterpError(f"{where} {key} must be {want}, got {value!r}")


def check_fields(cls: type, d: dict[str, Any], what: str, section: str | None = None) -> None:
    """Unknown keys and value types of ``d`` against dataclass ``cls`` (whose fields all have
    defaults: ``cls()`` must construct).

    Errors read ``"{what}: unknown keys ..."`` and ``"{what}: [{section}] {key} must be ..."``.
    """
    check_keys(d, {f.name for f in fields(cls)}, what, section)
    defaults = cls()
    where = f"{what}: [{section}]" if section else f"{what}:"
    for key, value in d.items():
        check_type(where, key, value, getattr(defaults, key))
