"""Where a head is intervened on: ``hook_z``, and the small helpers every intervention shares.

Every method of :mod:`interp.scoring.heads`, :mod:`interp.scoring.ablation` and
:mod:`interp.scoring.patching` edits the
per-head attention output ``hook_z`` (``blocks.{l}.attn.hook_z``, shape ``[batch, pos, head,
d_head]``): the attention-weighted values of each head *before* ``W_O`` mixes the heads into the
residual stream. Because the head dimension is explicit there, one head can be replaced without
asking TransformerLens to materialise the per-head residual contributions
(``use_attn_result=True``, an extra ``[batch, pos, head, d_model]`` tensor per layer). Replacing
``z`` of head ``h`` replaces exactly head ``h``'s contribution ``z_h @ W_O[h]`` to the residual
stream; ``b_O`` is shared and left alone.

``get_act_name`` is imported from ``transformer_lens.utilities``: ``transformer_lens.utils`` is
the same function behind a deprecated alias in TransformerLens 3.9.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from interp.scoring.evaluate import answer_logprob_from_logits, exact_match_from_logits
from interp.tasks.batches import Batch, repeat_batch


def resid_names(n_layers: int) -> set[str]:
    """Hook names of every layer's residual stream input (``hook_resid_pre``)."""
    return {get_act_name("resid_pre", layer) for layer in range(n_layers)}


def z_names(n_layers: int) -> set[str]:
    """Hook names of every layer's per-head attention output ``hook_z``."""
    return {get_act_name("z", layer) for layer in range(n_layers)}


def metric_values(
    logits: Float[Tensor, "batch pos d_vocab"], batch: Batch, metric: str
) -> Float[Tensor, " batch"]:
    """Per-example ``exact_match`` (as floats) or mean answer ``logprob`` from teacher-forced
    logits."""
    if metric == "exact_match":
        return exact_match_from_logits(logits, batch).to(logits.dtype)
    return answer_logprob_from_logits(logits, batch)


@torch.no_grad()
def cached_run(
    model: HookedTransformer, sub: Batch, names: set[str]
) -> tuple[Float[Tensor, "b pos d_vocab"], dict[str, Tensor]]:
    """Logits of ``sub`` and the activations named in ``names`` (on the model's device)."""
    logits, cache = model.run_with_cache(sub.tokens, names_filter=lambda n: n in names)
    return logits, dict(cache.items())


def replica_hook(
    n_heads: int, replacement: Float[Tensor, "#b pos head d_head"] | None
) -> Callable[[Float[Tensor, "rb pos head d_head"], HookPoint], Tensor]:
    """Hook on ``hook_z`` of a batch stacked ``n_heads`` times: replica ``h`` gets head ``h``
    replaced by ``replacement`` (broadcastable to ``[b, pos, head, d_head]``; None = zero)."""

    def hook(
        z: Float[Tensor, "rb pos head d_head"], hook: HookPoint
    ) -> Float[Tensor, "rb pos head d_head"]:
        rb, pos, nh, dh = z.shape
        z = z.view(n_heads, rb // n_heads, pos, nh, dh)
        eye = torch.eye(n_heads, dtype=torch.bool, device=z.device).view(n_heads, 1, 1, nh, 1)
        if replacement is None:
            out = z.masked_fill(eye, 0.0)
        else:
            out = torch.where(eye, replacement[None, :, :pos].to(z.dtype), z)
        return out.reshape(rb, pos, nh, dh)

    return hook


@torch.no_grad()
def layer_sweep(
    model: HookedTransformer,
    sub: Batch,
    resid: dict[int, Float[Tensor, "b pos d_model"]],
    replacement: Callable[[int], Float[Tensor, "#b pos head d_head"] | None],
    metric: str,
) -> Float[Tensor, "layer head b"]:
    """Metric per (layer, head, row) with head ``(layer, h)`` replaced, from cached residuals.

    The general path: every layer from ``layer`` on is rerun by ``model(x, start_at_layer=...)``
    on the batch stacked ``n_heads`` times, and one ``hook_z`` hook edits replica ``h``'s head
    ``h`` (:func:`replica_hook`). Any TransformerLens architecture supports it.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    rep = repeat_batch(sub, n_heads)
    out = torch.empty((n_layers, n_heads, len(sub)), dtype=torch.float64, device=resid[0].device)
    for layer in range(n_layers):
        x = resid[layer].repeat(n_heads, 1, 1)
        hook = replica_hook(n_heads, replacement(layer))
        logits = model.run_with_hooks(
            x, start_at_layer=layer, fwd_hooks=[(get_act_name("z", layer), hook)]
        )
        out[layer] = metric_values(logits, rep, metric).view(n_heads, len(sub)).double()
    return out
