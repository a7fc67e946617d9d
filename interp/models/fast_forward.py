"""A lean, inference-only forward through a model's upper layers, for the head scorers.

The single-head scorer (:func:`interp.scoring.heads.score_heads`) reruns the layers above an
ablated head
once per head. Those reruns need no hooks, no cache and no gradients, so this module computes
the same blocks with fewer, fused kernels:

* the norms are ``F.layer_norm`` / ``F.rms_norm`` (TransformerLens spells them out in five ops);
* Q, K and V come from one matrix product against the three weights stacked (``W_QKV``);
* RoPE rotates with one ``cat`` instead of a clone and two strided writes;
* attention is ``F.scaled_dot_product_attention``;
* at the last layer only the query positions the scorer reads are projected (``q_start``): the
  keys and values still come from every position, since each query attends to all before it.

It is the same function as the model's own blocks, up to float rounding (the tests compare the
two, and the scorer's results with TransformerLens's patching loop). :func:`lean_ok` says which
models it covers: every model :func:`interp.models.factory.build_model` makes (pre-norm blocks,
causal
attention, RoPE or additive positions, LayerNorm or RMSNorm, a GELU or gated-SiLU MLP); other
models keep the TransformerLens forward.

A model trained with per-task head masks (:mod:`interp.models.head_mask`) keeps them here: the lean
attention zeroes the masked heads' ``z`` exactly as the model's own ``hook_z`` hook does, with the
mask of the model's last token forward (one task; the scorers rerun one layout group at a time).
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.components import LayerNorm, RMSNorm
from transformer_lens.components.mlps.gated_mlp import GatedMLP
from transformer_lens.components.mlps.mlp import MLP

from interp.models.head_mask import get_mask

_ATTN_FLAGS_OFF = (
    "use_local_attn",
    "use_logn_attn",
    "use_attention_sinks",
    "use_attn_result",
    "use_split_qkv_input",
    "use_attn_in",
    "use_qk_norm",
    "load_in_4bit",
    "use_dynamic_ntk_rope",
)


def lean_ok(model: HookedTransformer) -> bool:
    """Whether :class:`LeanStack` reproduces this model's blocks (see the module docstring)."""
    c = model.cfg
    if any(getattr(c, f, False) for f in _ATTN_FLAGS_OFF):
        return False
    if c.positional_embedding_type not in ("rotary", "standard"):
        return False
    if c.attention_dir != "causal" or c.n_key_value_heads not in (None, c.n_heads):
        return False
    if c.attn_scores_soft_cap not in (None, -1.0, 0.0) or getattr(c, "clip_qkv", None) is not None:
        return False
    if c.original_architecture not in (None, "", "interp"):
        return False
    if c.positional_embedding_type == "rotary" and (
        c.rotary_dim is None or c.rotary_dim % 2 or getattr(c, "rotary_scaling_factor", 1.0) != 1.0
    ):
        return False
    if type(model.ln_final) not in (LayerNorm, RMSNorm):
        return False
    for block in model.blocks:
        if type(block.ln1) is not type(block.ln2) or type(block.ln1) not in (LayerNorm, RMSNorm):
            return False
        if type(block.mlp) not in (MLP, GatedMLP) or getattr(block.mlp, "ln", None) is not None:
            return False
    return True


class LeanStack:
    """Fused weights of every block, and the lean forward through a range of them.

    Args:
        model: a model :func:`lean_ok` accepts (checked by the caller).
    """

    def __init__(self, model: HookedTransformer) -> None:
        c = model.cfg
        self.model = model
        self.n_heads, self.d_head = c.n_heads, c.d_head
        self.rotary = c.positional_embedding_type == "rotary"
        self.rotary_dim = c.rotary_dim or 0
        self.adjacent = bool(getattr(c, "rotary_adjacent_pairs", False))
        self.mask = get_mask(model)
        self.layers = []
        for block in model.blocks:
            a = block.attn
            w_qkv = torch.cat(
                [einops.rearrange(w, "h m e -> (h e) m") for w in (a.W_Q, a.W_K, a.W_V)]
            ).contiguous()
            b_qkv = torch.cat([a.b_Q.flatten(), a.b_K.flatten(), a.b_V.flatten()])
            w_o = einops.rearrange(a.W_O, "h e m -> m (h e)").contiguous()
            self.layers.append((block, w_qkv, b_qkv, w_o, 1.0 / float(a.attn_scale)))

    @staticmethod
    def _norm(ln: torch.nn.Module, x: Float[Tensor, "b pos d_model"]) -> Tensor:
        d = x.shape[-1]
        if isinstance(ln, RMSNorm):
            return F.rms_norm(x, (d,), ln.w, ln.eps)
        return F.layer_norm(x, (d,), ln.w, ln.b, ln.eps)

    def _rope(
        self, x: Float[Tensor, "b pos head d_head"], attn: torch.nn.Module, offset: int
    ) -> Float[Tensor, "b pos head d_head"]:
        """RoPE as TransformerLens applies it (its ``rotary_cos``/``rotary_sin`` tables), for the
        positions ``offset .. offset + pos - 1``."""
        r, p = self.rotary_dim, x.shape[1]
        cos = attn.rotary_cos[None, offset : offset + p, None, :]
        sin = attn.rotary_sin[None, offset : offset + p, None, :]
        xr = x[..., :r]
        if self.adjacent:
            flip = torch.stack([-xr[..., 1::2], xr[..., ::2]], dim=-1).flatten(-2)
        else:
            flip = torch.cat([-xr[..., r // 2 :], xr[..., : r // 2]], dim=-1)
        rot = xr * cos + flip * sin
        return rot if r == x.shape[-1] else torch.cat([rot, x[..., r:]], dim=-1)

    def attn(
        self, layer: int, x: Float[Tensor, "b pos d_model"], q_start: int = 0
    ) -> Float[Tensor, "b q_pos d_model"]:
        """Layer ``layer``'s attention output (``b_O`` included) at query positions
        ``q_start ..``, reading ``ln1(x)`` at every position."""
        block, w_qkv, b_qkv, w_o, scale = self.layers[layer]
        b, p, _ = x.shape
        h, e = self.n_heads, self.d_head
        qkv = F.linear(self._norm(block.ln1, x), w_qkv, b_qkv).view(b, p, 3, h, e)
        q, k, v = qkv[:, q_start:, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.rotary:
            q, k = self._rope(q, block.attn, q_start), self._rope(k, block.attn, 0)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if q_start:
            # Query i (absolute position q_start + i) sees keys 0 .. q_start + i.
            mask = torch.ones(p - q_start, p, dtype=torch.bool, device=x.device).tril(q_start)
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        else:
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        z = z.transpose(1, 2)
        if self.mask is not None:
            z = self.mask.apply(z)  # what the model's hook_z hook does (interp.models.head_mask)
        z = z.reshape(b, p - q_start, h * e)
        return F.linear(z, w_o, block.attn.b_O)

    def mlp(self, layer: int, x: Float[Tensor, "b pos d_model"]) -> Float[Tensor, "b pos d_model"]:
        """``mlp(ln2(x))`` of layer ``layer`` (the residual is not added)."""
        block = self.layers[layer][0]
        m = block.mlp
        shape = x.shape
        xn = self._norm(block.ln2, x).reshape(-1, shape[-1])
        if isinstance(m, GatedMLP):
            hidden = m.act_fn(xn @ m.W_gate) * (xn @ m.W_in) + m.b_in
        else:
            hidden = m.act_fn(torch.addmm(m.b_in, xn, m.W_in))
        return torch.addmm(m.b_out, hidden, m.W_out).view(shape)

    def block(
        self, layer: int, x: Float[Tensor, "b pos d_model"], q_start: int = 0
    ) -> Float[Tensor, "b q_pos d_model"]:
        """One whole block on ``x``, output at positions ``q_start ..`` only."""
        mid = x[:, q_start:] + self.attn(layer, x, q_start)
        return mid + self.mlp(layer, mid)

    def logits(self, x: Float[Tensor, "b pos d_model"]) -> Float[Tensor, "b pos d_vocab"]:
        """``unembed(ln_final(x))``."""
        m = self.model
        shape = x.shape
        xn = self._norm(m.ln_final, x).reshape(-1, shape[-1])
        return torch.addmm(m.unembed.b_U, xn, m.unembed.W_U).view(*shape[:-1], -1)

    @torch.no_grad()
    def run(
        self, x: Float[Tensor, "b pos d_model"], start: int, stop: int
    ) -> Float[Tensor, "b pos d_model"]:
        """Blocks ``start .. stop - 1`` on the residual stream ``x`` entering ``start``."""
        for layer in range(start, stop):
            x = self.block(layer, x)
        return x


class BlockStack:
    """:class:`LeanStack`'s interface through TransformerLens's own modules: the fallback for
    models :func:`lean_ok` refuses (any plain pre-norm model)."""

    def __init__(self, model: HookedTransformer) -> None:
        self.model = model

    def mlp(self, layer: int, x: Float[Tensor, "b pos d_model"]) -> Float[Tensor, "b pos d_model"]:
        block = self.model.blocks[layer]
        return block.apply_mlp(block.ln2(x))

    def block(
        self, layer: int, x: Float[Tensor, "b pos d_model"], q_start: int = 0
    ) -> Float[Tensor, "b q_pos d_model"]:
        b = self.model.blocks[layer]
        xn = b.ln1(x)
        mid = (x + b.attn(xn, xn, xn))[:, q_start:]
        return mid + self.mlp(layer, mid)

    def logits(self, x: Float[Tensor, "b pos d_model"]) -> Float[Tensor, "b pos d_vocab"]:
        return self.model.unembed(self.model.ln_final(x))

    def run(
        self, x: Float[Tensor, "b pos d_model"], start: int, stop: int
    ) -> Float[Tensor, "b pos d_model"]:
        return self.model(x, start_at_layer=start, stop_at_layer=stop)


def upper_stack(model: HookedTransformer) -> LeanStack | BlockStack:
    """The lean forward where :func:`lean_ok` allows it, TransformerLens's otherwise."""
    return LeanStack(model) if lean_ok(model) else BlockStack(model)
