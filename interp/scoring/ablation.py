"""Knocking heads out: per-position reference means, and ablating a *set* of heads at once.

**Mean ablation** (the paper's) replaces a head's ``z`` (:mod:`interp.scoring.hooks`), at every
position, by its mean over a *reference* batch at that position. The mean is taken per layout
group (:func:`interp.tasks.batches.layout_groups`), so it averages like with like: the head's
typical
output at "the third operand digit", not a blur over different positions; within a group it is
a masked mean over the rows that have a real token at that position (:func:`mean_z`). **Zero
ablation** sets ``z`` to zero, a harsher, off-distribution knock-out.

:func:`interp.scoring.heads.score_heads` ablates one head at a time (its fast path shares these
means);
:func:`ablate_heads` ablates a whole set in one forward pass and scores every example, which is
what the causal tests (:mod:`interp.causal.top_k`, :mod:`interp.causal.head_sets`) need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from interp.core.device import default_batch_size, model_device
from interp.core.errors import InterpError, unknown_choice
from interp.models.architecture import check_head
from interp.scoring.evaluate import answer_logprob_from_logits, exact_match_from_logits
from interp.scoring.hooks import cached_run, z_names
from interp.tasks.batches import Batch, GroupKey, check_context, layout_groups, row_chunks

ABLATIONS: tuple[str, ...] = ("mean", "zero")


def accumulate_z(
    acc: tuple[Float[Tensor, "layer pos head d_head"], Float[Tensor, " pos"]] | None,
    cache: dict[str, Float[Tensor, "b ..."]],
    sub: Batch,
    width: int,
    n_layers: int,
) -> tuple[Float[Tensor, "layer pos head d_head"], Float[Tensor, " pos"]]:
    """Add one chunk's masked ``z`` sums (over real positions) to ``acc = (total, count)``."""
    z = torch.stack([cache[get_act_name("z", layer)] for layer in range(n_layers)])
    pos = torch.arange(sub.n_pos, device=z.device)
    real = pos[None, :] < sub.seq_len.to(z.device)[:, None]  # [b, pos]
    s = (z * real[None, :, :, None, None].to(z.dtype)).sum(1)  # [layer, pos, head, d_head]
    if acc is None:
        acc = (
            torch.zeros((n_layers, width, *s.shape[2:]), dtype=s.dtype, device=s.device),
            torch.zeros(width, dtype=torch.float64, device=s.device),
        )
    acc[0][:, : sub.n_pos] += s
    acc[1][: sub.n_pos] += real.sum(0).to(torch.float64)
    return acc


def finish_mean(
    acc: tuple[Float[Tensor, "layer pos head d_head"], Float[Tensor, " pos"]],
) -> tuple[Float[Tensor, "layer pos head d_head"], Float[Tensor, " pos"]]:
    """The per-position means of :func:`accumulate_z`'s sums, and the row count behind each."""
    total, count = acc
    return total / count.clamp_min(1).to(total.dtype)[None, :, None, None], count


@torch.no_grad()
def mean_z(
    model: HookedTransformer, batch: Batch, batch_size: int = 512
) -> tuple[Float[Tensor, "layer pos head d_head"], Float[Tensor, " pos"]]:
    """Per-position mean of every head's ``z`` over the rows of ``batch``.

    The mean at position ``p`` is over the rows that have a real token there (``p < seq_len``),
    so right padding never enters it. Meant for one layout group.

    Returns:
        The means (zero where no row reaches ``p``) and the number of rows behind each position.
    """
    n_layers = model.cfg.n_layers
    acc = None
    for rows in row_chunks(len(batch), batch_size):
        sub = batch.select(rows)
        _, cache = cached_run(model, sub, z_names(n_layers))
        acc = accumulate_z(acc, cache, sub, batch.n_pos, n_layers)
    assert acc is not None
    return finish_mean(acc)


def reference_mean(
    model: HookedTransformer,
    key: GroupKey,
    need: int,
    reference: Batch,
    batch_size: int = 512,
) -> Float[Tensor, "layer pos head d_head"]:
    """Mean ``z`` of the rows of ``reference`` in layout group ``key``, covering ``need``
    positions (a row of ``seq_len`` tokens reads logits up to ``seq_len - 2``, so it needs
    ``z`` at its first ``seq_len - 1`` positions).

    Raises:
        InterpError: if ``reference`` has no such rows or they are too short.
    """
    ref_rows = layout_groups(reference).get(key)
    if ref_rows is None:
        raise InterpError(
            f"the reference batch has no examples of task {key[0]!r} at length {key[1]} "
            f"(prompt of {key[2]} tokens); mean ablation needs a reference with the same "
            "layouts as the scored batch"
        )
    mean, count = mean_z(model, reference.select(ref_rows), batch_size)
    if mean.shape[1] < need or bool((count[:need] == 0).any()):
        raise InterpError(
            f"the reference rows of task {key[0]!r} at length {key[1]} are shorter than the "
            f"scored rows ({need} positions needed); use a reference that covers them"
        )
    return mean


def ablate_heads(
    model: HookedTransformer,
    batch: Batch,
    heads: Sequence[tuple[int, int]],
    method: str = "mean",
    reference: Batch | None = None,
    batch_size: int | None = None,
) -> tuple[Bool[Tensor, " batch"], Float[Tensor, " batch"]]:
    """Ablate a *set* of heads at once and score every example.

    Each listed head's ``z`` is replaced (at every position) by its per-position mean over the
    matching layout group of ``reference`` (default: ``batch`` itself) for ``method="mean"``, or
    by zero for ``method="zero"``; all listed heads are ablated in the same forward pass.

    Args:
        model: the model.
        batch: examples to score (any tasks and lengths).
        heads: ``(layer, head)`` pairs; an empty list gives the clean model's results.
        method: ``mean`` or ``zero`` (``mean_ablation``/``zero_ablation`` are accepted too).
        reference: batch for the means (mean ablation only).
        batch_size: most rows in one forward pass (default: the device's).

    Returns:
        Per-example teacher-forced exact match and mean answer log-probability, in ``batch``'s
        row order, on the CPU.

    Raises:
        InterpError: an unknown method, a head outside the model, or a mismatched reference.
    """
    method = {"mean_ablation": "mean", "zero_ablation": "zero"}.get(method, method)
    if method not in ABLATIONS:
        raise unknown_choice("ablation method", method, ABLATIONS)
    head_set: dict[int, list[int]] = {}
    for lh in heads:
        if len(lh) != 2:
            raise InterpError(f"heads must be (layer, head) pairs, got {lh!r}")
        layer, h = check_head(model.cfg, lh[0], lh[1])
        head_set.setdefault(layer, []).append(h)
    if len(batch) == 0:
        raise InterpError("cannot ablate heads on an empty batch")
    check_context(model, batch.n_pos, f"a batch of {sorted(set(batch.tasks))}")
    if method == "zero" and reference is not None:
        raise InterpError("zero ablation takes no reference batch")

    ref = batch if reference is None else reference
    batch_size = batch_size or default_batch_size(model_device(model))
    em = torch.empty(len(batch), dtype=torch.bool, device="cpu")  # filled from .cpu() scores
    lp = torch.empty(len(batch), device="cpu")
    for key, group_rows in layout_groups(batch).items():
        mean = None
        if method == "mean" and heads:
            need = int(batch.seq_len[group_rows].max()) - 1
            mean = reference_mean(model, key, need, ref, batch_size)
        for c in row_chunks(len(group_rows), batch_size):
            rows = group_rows[c]
            sub = batch.select(rows)
            hooks = []
            for layer, hs in head_set.items():
                idx = torch.tensor(sorted(set(hs)), device=model_device(model))
                m_l = None if mean is None else mean[layer]
                hooks.append((get_act_name("z", layer), _set_heads_hook(idx, m_l)))
            with torch.no_grad():
                logits = model.run_with_hooks(sub.tokens, fwd_hooks=hooks)
            em[rows] = exact_match_from_logits(logits, sub).cpu()
            lp[rows] = answer_logprob_from_logits(logits, sub).float().cpu()
    return em, lp


def _set_heads_hook(
    idx: Tensor, mean: Float[Tensor, "pos head d_head"] | None
) -> Callable[[Float[Tensor, "b pos head d_head"], HookPoint], Float[Tensor, "b pos head d_head"]]:
    def hook(
        z: Float[Tensor, "b pos head d_head"], hook: HookPoint
    ) -> Float[Tensor, "b pos head d_head"]:
        z = z.clone()
        i = idx.to(z.device)
        if mean is None:
            z[:, :, i] = 0.0
        else:
            z[:, :, i] = mean[None, : z.shape[1], i].to(z.dtype)
        return z

    return hook
