"""The one place a ``HookedTransformer`` is instantiated, for fresh and pretrained models alike.

:mod:`interp.models.architecture` (the factory: fresh models from a
:class:`~interp.models.architecture.ModelConfig`) and
:mod:`interp.models.pretrained` (Hugging Face checkpoints) both end here, so the factory can
dispatch to
the pretrained loader without the two importing each other. Construction never reseeds the
caller's global random generators (:func:`global_rng_preserved`).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig


@contextmanager
def global_rng_preserved() -> Iterator[None]:
    """Restore the global ``torch`` (CPU), ``random`` and ``numpy`` generators on exit.

    ``HookedTransformerConfig(seed=...)`` calls ``torch.manual_seed``, ``random.seed`` and
    ``np.random.seed``, so without this every model construction would silently reseed the
    caller's global generators (two callers with different seeds would then draw the same
    "random" numbers after building a model). The initial weights still depend only on
    ``init_seed``: the seeding happens inside the block.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def construct(
    hcfg: HookedTransformerConfig,
    state_dict: dict[str, Tensor] | None = None,
) -> HookedTransformer:
    """The one place a ``HookedTransformer`` is instantiated.

    Args:
        hcfg: TransformerLens's config (from :func:`interp.models.architecture.hooked_config`,
            or converted from a pretrained checkpoint by :mod:`interp.models.pretrained`).
        state_dict: weights in TransformerLens's naming, loaded as they are (no layer-norm
            folding or centring, so the model computes exactly what the source model did and
            a fine-tuned state dict means the same thing as the original); ``None`` keeps the
            fresh initialisation.

    Returns:
        The model on ``hcfg.device``.
    """
    with warnings.catch_warnings(), global_rng_preserved():
        # TransformerLens 3.9 emits a DeprecationWarning on every HookedTransformer construction
        # (pointing at 4.x's TransformerBridge). The package pins 3.x on purpose and builds
        # models in loops (sweeps, tests), so the warning is pure noise here; it is silenced
        # only around construction, leaving every other warning visible.
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(hcfg, move_to_device=False)
    if state_dict is not None:
        model.load_and_process_state_dict(
            state_dict,
            fold_ln=False,
            center_writing_weights=False,
            center_unembed=False,
            fold_value_biases=False,
            refactor_factored_attn_matrices=False,
        )
    return model.to(hcfg.device, print_details=False)
