"""The process as the package first found it, and the one setting that must precede CUDA work.

``import interp`` imports this module before anything else, so it runs once per process and
before any CUDA work of the package (the ``interp`` command, a sweep's worker and a Ray task all
import the package first). Deterministic cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` before the
process creates its first cuBLAS handle (:func:`interp.core.device.deterministic`), so it is set
here unless the user has set it.
"""

from __future__ import annotations

import os
import sys

_torch = sys.modules.get("torch")
CUDA_BEFORE_IMPORT = bool(
    _torch is not None and hasattr(_torch, "cuda") and _torch.cuda.is_initialized()
)
"""Whether CUDA was already initialised when the package was first imported (then the cuBLAS
setting may have come too late for the handles that exist)."""
CUBLAS_SET_BY_USER = "CUBLAS_WORKSPACE_CONFIG" in os.environ
"""Whether the user had set ``CUBLAS_WORKSPACE_CONFIG`` themselves (then no warning is due)."""
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
