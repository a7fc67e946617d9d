"""Where the package's data live: model presets, the model zoo and the analysis specs.

They are kept at the top of the repository (``models/presets``, ``models/zoo``, ``analyses``),
where people edit them and the training queue writes zoo entries. A built wheel carries copies
inside the package (``pyproject.toml`` maps ``models/`` to ``interp/_models/`` and ``analyses/``
to ``interp/_analyses/``), so a plain ``pip install .`` finds them without a checkout.

Lookup, first match wins:

1. ``$INTERP_DATA`` when set: a folder laid out like the repository (``models/``,
   ``analyses/``), e.g. a checkout used from an installed package;
2. the copies inside an installed package (``interp/_models``, ``interp/_analyses``);
3. the repository around this file (a source checkout, ``pip install -e .``, or
   ``PYTHONPATH=.``).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "INTERP_DATA"

ZOO_FAMILY = "b4_"
"""The name prefix of the zoo family built on the `cpu` preset (conditions x seeds of arithmetic
group A; bfloat16 + ``torch.compile``, issue 21): the demo analyses its first
:data:`ZOO_DEMO_SEEDS` seeds live and ``interp zoo results`` tabulates it by default. The
float32 family before it, ``r4_*``, keeps its specs and tables (``analyses/zoo/results.md``);
its weights were retired to keep ``models/`` within 130 MB."""
ZOO_DEMO_SEEDS = 3
"""Seeds per condition (``s0`` .. ``s2``) whose weights the demo analyses live: 15 entries, which
fit its budget on two cores; the whole family's verdicts come from its shipped tables."""
_PACKAGE = Path(__file__).resolve().parent.parent  # interp/ (this file is interp/core/)
_CHECKOUT = _PACKAGE.parent


def _find(packaged: str, *checkout: str) -> Path:
    override = os.environ.get(ENV)
    if override:
        return Path(override).joinpath(*checkout)
    inside = _PACKAGE / packaged
    if inside.is_dir():
        return inside.joinpath(*checkout[1:])
    return _CHECKOUT.joinpath(*checkout)


def models_dir() -> Path:
    """``models/``: presets and the zoo."""
    return _find("_models", "models")


def presets_dir() -> Path:
    """``models/presets``: model presets, one ``NAME.json`` each."""
    return models_dir() / "presets"


def zoo_dir() -> Path:
    """``models/zoo``: the model zoo (and ``specs/``, the specs its entries are trained from)."""
    return models_dir() / "zoo"


def analyses_dir() -> Path:
    """``analyses/``: the analysis specs (one per paper figure, the demo's)."""
    return _find("_analyses", "analyses")
