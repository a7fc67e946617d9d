"""Package attributes imported on first use (PEP 562's module ``__getattr__``).

A package ``__init__`` that imported its public names eagerly would load torch and
TransformerLens (about 5 s) for any import below it, including the command line's parser; a
table of name -> module, resolved on first access, keeps ``interp --help`` instant and still
lets ``from interp.core import InterpError`` work.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package`` that imports ``names[name]`` on first use.

    Args:
        package: the package's ``__name__``.
        names: public name -> the module that defines it.

    Returns:
        The function to assign to the package's ``__getattr__``; it caches each value in the
        package's namespace, so later accesses are plain attribute lookups.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            # an AttributeError also lets ``from package import submodule`` find the submodule
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
