"""interp.

Importing the package sets ``CUBLAS_WORKSPACE_CONFIG`` (unless the user has): deterministic
cuBLAS needs it before the process creates its first cuBLAS handle, and the first ``import
interp`` of a process (the ``interp`` command, a sweep's worker, a Ray task) comes before any
CUDA work of the package (:func:`interp.core.device.deterministic`).
"""

import os as _os
import sys as _sys

_torch = _sys.modules.get("torch")
CUDA_BEFORE_IMPORT = bool(
    _torch is not None and hasattr(_torch, "cuda") and _torch.cuda.is_initialized()
)
"""Whether CUDA was already initialised when the package was first imported (then the cuBLAS
setting may have come too late for the handles that exist)."""
CUBLAS_SET_BY_USER = "CUBLAS_WORKSPACE_CONFIG" in _os.environ
_os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
