"""The foundation every other subpackage stands on: errors, file IO, config checks, devices,
packaged resources and stage progress. Imports nothing else of the package.
"""

from __future__ import annotations

from interp.core.device import resolve_device
from interp.core.errors import InterpError
from interp.core.io import read_json, read_parquet, write_json, write_parquet
from interp.core.resources import presets_dir, zoo_dir

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
