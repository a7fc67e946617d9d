"""The model factory: every ``HookedTransformer`` in the package is built by :func:`build_model`.

Keeping construction in one place means a later move from TransformerLens 3.x
(``HookedTransformer``) to 4.x (``TransformerBridge``) touches few files: the
``HookedTransformer(...)`` call itself lives in :mod:`interp.models.construct`, which this factory
and :mod:`interp.models.pretrained` both use.

A freshly initialised model comes from :mod:`interp.models.construct` with the architecture
of :class:`interp.models.architecture.ModelConfig`; a ``pretrained`` config is loaded by
:mod:`interp.models.pretrained`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from transformer_lens import HookedTransformer

from interp.core.device import place_model
from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig, hooked_config
from interp.models.construct import construct, global_rng_preserved
from interp.models.head_mask import install
from interp.models.pretrained import load_for_config

__all__ = ["build_model"]


def build_model(
    cfg: ModelConfig,
    device: str | torch.device = "cpu",
    task_heads: Mapping[str, Sequence[int]] | None = None,
) -> HookedTransformer:
    """Build the ``HookedTransformer`` for ``cfg``: freshly initialised, or, with
    ``cfg.pretrained`` set, loaded from that checkpoint directory (its tokenizer attached as
    ``model.tokenizer``; see :mod:`interp.models.pretrained`).

    Args:
        cfg: the architecture.
        device: where the model lives.
        task_heads: per-task head masks (:mod:`interp.models.head_mask`; a run's
            :attr:`interp.runs.spec.TrainSpec.task_heads`): each listed task's rows use only these
            heads, in every layer. None or empty: no mask and no hook, the plain model.

    Returns:
        The model, with ``W_pos`` zeroed and frozen for ``nope``.
    """
    cfg.validate()
    if cfg.pretrained:
        if task_heads:
            raise InterpError("per-task head masks are not supported on a pretrained model")
        return load_for_config(cfg, device)
    with global_rng_preserved():  # HookedTransformerConfig(seed=...) seeds globally
        hcfg = hooked_config(cfg, device)
    if task_heads:
        # The masks read each row's task token; the hook point adds no parameter and leaves
        # the initial weights unchanged.
        hcfg.use_hook_tokens = True
    model = construct(hcfg)
    if cfg.positional == "nope":
        with torch.no_grad():
            model.W_pos.zero_()
        model.W_pos.requires_grad_(False)
    if task_heads:
        install(model, task_heads)
    return place_model(model, device)  # keeps cuda:N, not just cuda, in model.cfg
