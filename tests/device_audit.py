"""Test helper: find tensors that ``interp`` creates without naming their device.

A tensor made by ``torch.zeros(n)`` lands on the *default* device, which is the CPU in every test
but is whatever ``torch.set_default_device`` (or a library) made it in a user's process; and
mixed with a model's output on a GPU, a CPU tensor fails (or, as the value of an index-put, fails
only when it is not a scalar). A test machine has no GPU to show this, so :class:`FactoryAudit`
shows the cause instead: it is a ``TorchFunctionMode`` that sees every tensor factory call
(``torch.tensor``, ``zeros``, ``arange``, ``full``, ``as_tensor``, ...: the functions
``torch.set_default_device`` redirects) and records those without a ``device=`` whose caller is a
frame of the ``interp`` package. Calls from torch, TransformerLens, einops and the tests
themselves are not recorded: the package can only vouch for its own code.

Running a stage under the audit with the model on the CPU is therefore equivalent to running it
with a different default device (``torch.set_default_device("meta")``), where every such tensor
would be on the wrong device, except that it lists every offending line at once instead of
failing at the first, and that TransformerLens's own internals (which place their tensors from
``cfg.device``) stay out of the verdict.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.utils._device as _torch_device
from torch.overrides import TorchFunctionMode

import interp

INTERP_DIR = str(Path(interp.__file__).resolve().parent)
TORCH_DIR = str(Path(torch.__file__).resolve().parent)
CONSTRUCTORS = _torch_device._device_constructors()


def _interp_site() -> str | None:
    """``file:line`` of the nearest caller outside torch if it is in ``interp``, else None."""
    f = sys._getframe(2)
    while f is not None and (
        f.f_code.co_filename.startswith(TORCH_DIR) or f.f_code.co_filename == __file__
    ):
        f = f.f_back
    if f is None:
        return None
    name = f.f_code.co_filename
    if not name.startswith(INTERP_DIR):
        return None
    return f"interp/{Path(name).relative_to(INTERP_DIR)}:{f.f_lineno}"


class FactoryAudit(TorchFunctionMode):
    """Record ``interp`` lines that create a tensor without ``device=`` (module docstring).

    Use as a context manager; ``sites`` counts the calls per ``interp/FILE.py:LINE``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sites: Counter[str] = Counter()

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in CONSTRUCTORS and kwargs.get("device") is None:
            site = _interp_site()
            if site is not None:
                self.sites[site] += 1
        return func(*args, **kwargs)

    def report(self) -> str:
        """One line per offending site, most frequent first."""
        return "\n".join(f"{site} ({n} calls)" for site, n in self.sites.most_common())
