"""The trie walk behind :func:`interp.causal.head_sets.ablate_sets` (its module docstring, "Speed").

A node at layer ``l`` is a distinct non-empty set of heads in layers ``<= l``; its output, the
stream entering ``l + 1``, is one pass of layer ``l`` on its parent's output. :class:`TrieWalk`
computes that pass in one of two ways:

* the **layer pass** (any model): ``model.run_with_hooks`` on layer ``l`` alone, with the
  children's head masks on ``hook_z``;
* the **fast path** (:func:`fast_path_ok`: a plain pre-norm block, ``resid_pre -> + attn ->
  + mlp``): the attention pattern and every head's ``z`` depend only on the layer's input, which
  all children of one node share, so ``z`` is computed once per parent and each child only
  redoes what follows its masked ``z``: the output projection, ``ln2`` and the MLP. At the last
  layer only the positions the scorers read (those predicting an answer token) are carried on
  through the MLP and the unembedding.

Both give the same numbers up to float rounding (the test suite compares them set by set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.components import TransformerBlock
from transformer_lens.utilities import apply_softcap, get_act_name
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

from interp.models.head_mask import other_hooks
from interp.scoring.evaluate import answer_logprob_from_logits, exact_match_from_logits
from interp.tasks.batches import Batch, repeat_batch, row_chunks

Head = tuple[int, int]
Node = tuple[float | None, tuple[Head, ...]]
"""A trie node: ``(alpha, heads)``, the heads of a set in the layers so far and its strength."""
CLEAN: Node = (None, ())
"""The parent of every node whose heads all lie in its own layer: the clean model."""

_FORCE_LAYER_PASS = False
"""Tests set this to run the layer pass on models the fast path handles too."""


def plan_trie(
    sets: Sequence[tuple[Head, ...]],
    n_layers: int,
    alpha: Sequence[float] | None = None,
) -> tuple[list[dict[Node, list[Node]]], dict[Node, list[int]]]:
    """The trie of :func:`interp.causal.head_sets.ablate_sets`.

    Args:
        sets: head sets (any order, duplicates allowed; empty sets are the clean model and get
            no node).
        n_layers: layers of the model.
        alpha: one strength per set, or None (plain mean ablation).

    Returns:
        ``(children, leaves)``: ``children[l][parent]`` lists the layer-``l`` nodes under
        ``parent`` (a layer ``l - 1`` node, or ``CLEAN``) in order of first appearance, and
        ``leaves`` maps each last-layer node to the indices of the sets it scores.
    """
    children: list[dict[Node, dict[Node, None]]] = [{} for _ in range(n_layers)]
    leaves: dict[Node, list[int]] = {}
    for i, s in enumerate(sets):
        heads = tuple(sorted(set(s)))
        if not heads:
            continue
        a = None if alpha is None else float(alpha[i])
        parent = CLEAN
        for layer in range(heads[0][0], n_layers):
            node = (a, tuple(h for h in heads if h[0] <= layer))
            children[layer].setdefault(parent, {})[node] = None
            parent = node
        leaves.setdefault(parent, []).append(i)
    return [{k: list(v) for k, v in c.items()} for c in children], leaves


def trie_sizes(
    sets: Sequence[tuple[Head, ...]], n_layers: int, alpha: Sequence[float] | None = None
) -> list[int]:
    """Nodes per layer of :func:`plan_trie`: the single-layer passes per example that
    :func:`interp.causal.head_sets.ablate_sets` runs in each layer (``[14, 92, 298, 696]`` for
    every set
    of 1-3 of 16 heads in 4 layers)."""
    children, _ = plan_trie(sets, n_layers, alpha)
    return [sum(len(v) for v in c.values()) for c in children]


def fast_path_ok(model: HookedTransformer) -> bool:
    """Whether every block of ``model`` is the plain pre-norm wiring the fast path rebuilds
    (``resid_mid = resid_pre + attn_out``, ``resid_post = resid_mid + mlp(ln2(resid_mid))``,
    ``attn_out = z @ W_O + b_O``, the attention reading ``ln1(resid_pre)``) and no hook is
    attached (the fast path calls the block's parts directly, past most of its hook points) but
    per-task head masks (:mod:`interp.models.head_mask`), which act on the ``z`` it reads."""
    cfg = model.cfg
    plain = not (
        cfg.attn_only
        or cfg.parallel_attn_mlp
        or cfg.use_normalization_before_and_after
        or cfg.original_architecture in POST_NORM_ARCHITECTURES
        or cfg.use_attn_result
        or cfg.use_attn_in
        or cfg.use_split_qkv_input
        or cfg.load_in_4bit
        or cfg.positional_embedding_type == "shortformer"
        or cfg.n_devices != 1
    )
    blocks = all(type(b) is TransformerBlock for b in model.blocks)
    hooked = other_hooks(model)
    return plain and blocks and not hooked


def blend_z(
    z: Float[Tensor, "r b pos head d_head"],
    mask: Bool[Tensor, "set head"],
    mean: Float[Tensor, "mpos head d_head"],
    alpha: Float[Tensor, " set"] | None = None,
) -> Float[Tensor, "set b pos head d_head"]:
    """Set ``i``'s ``z``: the heads in ``mask[i]`` replaced by their reference means, or with
    ``alpha`` moved the fraction ``alpha[i]`` of the way there: ``(1 - a) z + a mean`` (exactly
    ``z`` at ``a = 0`` and exactly the mean at ``a = 1``). ``z`` holds one replica per set
    (``r = set``) or one shared by all (``r = 1``); ``mean`` covers at least ``pos``."""
    m = mask.to(z.device)[:, None, None, :, None]
    rep = mean[None, None, : z.shape[2]].to(z.dtype)
    if alpha is not None:
        a = alpha.to(z.device, z.dtype)[:, None, None, None, None]
        rep = (1 - a) * z + a * rep
    return torch.where(m, rep, z)


def _mask_hook(
    mask: Bool[Tensor, "set head"],
    mean: Float[Tensor, "pos head d_head"],
    b: int,
    alpha: Float[Tensor, " set"] | None = None,
) -> Callable[[Float[Tensor, "rb pos head d_head"], object], Float[Tensor, "rb pos head d_head"]]:
    """Hook on one layer's ``hook_z`` for a batch of ``b`` rows stacked once per set
    (:func:`blend_z` on each replica)."""

    def hook(
        z: Float[Tensor, "rb pos head d_head"], hook: object
    ) -> Float[Tensor, "rb pos head d_head"]:
        zz = z.view(mask.shape[0], b, *z.shape[1:])
        return blend_z(zz, mask, mean, alpha).view_as(z)

    return hook


class TrieWalk:
    """Depth-first evaluation of one layout group's trie (module docstring); writes each set's
    scores into ``em`` and ``lp`` at the group's ``rows``.

    ``sub``, ``rows``, ``em`` and ``lp`` must be on the model's device (where ``mean`` is): the
    scores are written there by index-put, which moves a value across devices only when it is
    a scalar."""

    def __init__(
        self,
        model: HookedTransformer,
        sub: Batch,
        rows: Int[Tensor, " b"],
        mean: Float[Tensor, "layer pos head d_head"],
        children: list[dict[Node, list[Node]]],
        leaves: dict[Node, list[int]],
        batch_size: int,
        em: Bool[Tensor, "set batch"],
        lp: Float[Tensor, "set batch"],
    ) -> None:
        self.model, self.sub, self.rows, self.mean = model, sub, rows, mean
        self.children, self.leaves, self.em, self.lp = children, leaves, em, lp
        self.dev = mean.device
        self.b = len(sub)
        self.per_pass = max(1, batch_size // self.b)
        self.last = model.cfg.n_layers - 1
        self.reps: dict[int, Batch] = {}
        self.fast = not _FORCE_LAYER_PASS and fast_path_ok(model)
        # positions whose logits the scorers read: those predicting an answer token
        cols = sub.answer_mask[:, 1:].any(0).nonzero()[:, 0]
        self.cols: Int[Tensor, " k"] = cols.to(mean.device)

    def expand(self, layer: int, parent: Node, x: Float[Tensor, "b pos d_model"]) -> None:
        """Evaluate the layer-``layer`` children of ``parent`` (whose output, the stream
        entering ``layer``, is ``x``), then their subtrees; at the last layer, score them."""
        kids = self.children[layer].get(parent, [])
        if not kids:
            return
        z = self._clean_z(layer, x) if self.fast else None  # once for all the children
        for c in row_chunks(len(kids), self.per_pass):
            chunk = [kids[i] for i in c.tolist()]
            S, b = len(chunk), self.b
            mask = torch.tensor(
                [
                    [(layer, h) in heads for h in range(self.model.cfg.n_heads)]
                    for _, heads in chunk
                ],
                device=self.dev,
            )  # [S, head]
            alpha = (
                None
                if chunk[0][0] is None
                else torch.tensor([a for a, _ in chunk], device=self.dev)
            )
            if layer < self.last:
                out = (
                    self._fast_layer(layer, x, z, mask, alpha, self.mean[layer])
                    if z is not None
                    else self._layer_pass(layer, x, mask, alpha)
                )
                for j, node in enumerate(chunk):
                    self.expand(layer + 1, node, out[j * b : (j + 1) * b])
                continue
            logits = (
                self._fast_logits(layer, x, z, mask, alpha)
                if z is not None
                else self._layer_pass(layer, x, mask, alpha)
            )
            rep = self.reps.setdefault(S, repeat_batch(self.sub, S))
            e = exact_match_from_logits(logits, rep).view(S, b)
            p = answer_logprob_from_logits(logits, rep).float().view(S, b)
            for j, node in enumerate(chunk):
                idx = torch.tensor(self.leaves[node], dtype=torch.long, device=self.em.device)
                self.em[idx[:, None], self.rows[None]] = e[j]
                self.lp[idx[:, None], self.rows[None]] = p[j]

    def _layer_pass(
        self,
        layer: int,
        x: Float[Tensor, "b pos d_model"],
        mask: Bool[Tensor, "set head"],
        alpha: Float[Tensor, " set"] | None,
    ) -> Float[Tensor, "sb pos d_out"]:
        """Layer ``layer`` on ``x`` stacked once per set, each replica with its head mask on
        ``hook_z``: the stream entering the next layer, or the logits after the last."""
        hooks = []
        if bool(mask.any()):
            hook = _mask_hook(mask, self.mean[layer], self.b, alpha)
            hooks.append((get_act_name("z", layer), hook))
        xs: Float[Tensor, "sb pos d_model"] = x.repeat(mask.shape[0], 1, 1)
        stop = layer + 1 if layer < self.last else None
        return self.model.run_with_hooks(
            xs, start_at_layer=layer, stop_at_layer=stop, fwd_hooks=hooks
        )

    def _clean_z(
        self, layer: int, x: Float[Tensor, "b pos d_model"]
    ) -> Float[Tensor, "b pos head d_head"]:
        """Every head's unablated ``z`` at ``layer`` on input ``x`` (the block's own ``ln1`` and
        attention, as :class:`~transformer_lens.components.TransformerBlock` calls them)."""
        block = self.model.blocks[layer]
        got: dict[str, Tensor] = {}

        def grab(z: Float[Tensor, "b pos head d_head"], hook: object) -> None:
            got["z"] = z

        with self.model.hooks(fwd_hooks=[(get_act_name("z", layer), grab)]):
            h = block.ln1(x)
            block.attn(query_input=h, key_input=h, value_input=h)
        return got["z"]

    def _fast_layer(
        self,
        layer: int,
        x: Float[Tensor, "b pos d_model"],
        z: Float[Tensor, "b pos head d_head"],
        mask: Bool[Tensor, "set head"],
        alpha: Float[Tensor, " set"] | None,
        mean: Float[Tensor, "mpos head d_head"],
    ) -> Float[Tensor, "sb pos d_model"]:
        """The fast path's stream leaving ``layer`` for each set (stacked set-major):
        ``resid_mid = resid_pre + attn_out``, the attention output from the set's masked ``z``
        exactly as TransformerLens's attention computes it (``use_attn_result=False``), then
        ``resid_mid + mlp(ln2(resid_mid))``."""
        block = self.model.blocks[layer]
        attn = block.attn
        zs = blend_z(z[None], mask, mean, alpha)  # [S, b, pos, head, d_head]
        S, b, pos = zs.shape[:3]
        w = einops.rearrange(attn.W_O, "head d_head d_model -> d_model (head d_head)").contiguous()
        zs = zs.to(w.dtype).reshape(S * b, pos, -1)
        attn_out: Float[Tensor, "sb pos d_model"] = F.linear(zs, w, attn.b_O)
        mid = (x[None] + attn_out.view(S, b, pos, -1)).view(S * b, pos, -1)
        return mid + block.mlp(block.ln2(mid))

    def _fast_logits(
        self,
        layer: int,
        x: Float[Tensor, "b pos d_model"],
        z: Float[Tensor, "b pos head d_head"],
        mask: Bool[Tensor, "set head"],
        alpha: Float[Tensor, " set"] | None,
    ) -> Float[Tensor, "sb pos d_vocab"]:
        """The fast path through the last layer to the logits, computed only at the positions the
        scorers read (every position acts alone after the attention) and zero elsewhere."""
        model, cols = self.model, self.cols
        resid = self._fast_layer(layer, x[:, cols], z[:, cols], mask, alpha, self.mean[layer][cols])
        if model.cfg.normalization_type is not None:
            resid = model.ln_final(resid)
        part = apply_softcap(model.unembed(resid), model.cfg.output_logits_soft_cap)
        logits = part.new_zeros((part.shape[0], x.shape[1], part.shape[2]))
        logits[:, cols] = part
        return logits
