"""interp.

Importing the package sets ``CUBLAS_WORKSPACE_CONFIG`` (unless the user has), through
:mod:`interp.core.startup`, imported first: deterministic cuBLAS needs it before the process
creates its first cuBLAS handle, and the first ``import interp`` of a process (the ``interp``
command, a sweep's worker, a Ray task) comes before any CUDA work of the package
(:func:`interp.core.device.deterministic`).
"""

from interp.core.lazy import lazy_getattr
from interp.core.startup import CUBLAS_SET_BY_USER, CUDA_BEFORE_IMPORT  # noqa: F401

# The entry points a notebook needs, imported on first use (importing them here would load torch
# and TransformerLens on every ``import interp``, before the setting above could matter).
_ENTRY_POINTS = {
    "load_run": "interp.runs.loader",
    "eval_run": "interp.runs.loader",
    "load_spec": "interp.runs.spec",
    "train": "interp.runs.train",
    "build_model": "interp.models.factory",
    "accuracy_table": "interp.scoring.evaluate",
    "score_heads": "interp.scoring.heads",
    "overlap_table": "interp.scoring.overlap",
    "attention_table": "interp.scoring.attention",
    "causal_test": "interp.causal.top_k",
    "get_task": "interp.tasks",
}
__all__ = sorted(_ENTRY_POINTS)


# also lets ``from interp import zoo`` find the subpackage (an unknown name is an AttributeError)
__getattr__ = lazy_getattr(__name__, _ENTRY_POINTS)
