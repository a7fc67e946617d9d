"""The foundation every other subpackage stands on: errors, file IO, config checks, devices,
packaged resources and stage progress. Imports nothing else of the package.

The names below are imported on first use: importing a light module of this floor (the CLI's
parser needs only :mod:`interp.core.resources` and :mod:`interp.core.errors`) must not load torch
and TransformerLens, which take about 5 s, so that ``interp --help`` and a mistyped argument
answer at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from interp.core.device import resolve_device
    from interp.core.errors import InterpError
    from interp.core.io import read_json, read_parquet, write_json, write_parquet
    from interp.core.resources import presets_dir, zoo_dir

_PUBLIC = {
    "InterpError": "interp.core.errors",
    "presets_dir": "interp.core.resources",
    "read_json": "interp.core.io",
    "read_parquet": "interp.core.io",
    "resolve_device": "interp.core.device",
    "write_json": "interp.core.io",
    "write_parquet": "interp.core.io",
    "zoo_dir": "interp.core.resources",
}

__all__ = [
    "InterpError",
    "presets_dir",
    "read_json",
    "read_parquet",
    "resolve_device",
    "write_json",
    "write_parquet",
    "zoo_dir",
]


__getattr__ = lazy_getattr(__name__, _PUBLIC)
