"""Patching: put a head's clean activation into a corrupted run, exactly or to first order.

**The corruption** resamples the prompt (:func:`corrupt_batch`): each clean example gets the
prompt (operands, string, maze) of another example of the same task at the same length, while
the teacher-forced answer tokens stay the clean ones, so a metric on the corrupted run always
asks "does the model produce the *clean* answer?". The corrupted prompts come from a source
batch with the same layouts when one is given (:func:`interp.scoring.heads.score_heads` draws one
for a
task name with seed ``seed + CORRUPT_SEED_OFFSET``, a disjoint draw of the same task and
length); otherwise from a random derangement of the batch's own prompts within each layout group
(so a group needs at least two examples).

**Activation patching** (in :func:`interp.scoring.heads.score_heads`, which shares the ablation's
fast
path) runs the corrupted input with head ``h``'s ``z`` taken from the clean run.

**Attribution patching** (Nanda, "Attribution patching", 2023; :func:`attribution_scores`) is
its first-order Taylor estimate: ``score_h ~= grad_z L(corrupted) . (z_clean - z_corrupted)``
summed over positions and ``d_head``, for all heads of all layers from one forward and one
backward pass of the corrupted run (plus one clean forward to read ``z_clean``). ``L`` is the
answer log-probability, because exact match is piecewise constant and has no useful gradient.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from interp.core.errors import InterpError
from interp.scoring.evaluate import answer_logprob_from_logits
from interp.scoring.hooks import cached_run, z_names
from interp.tasks.batches import Batch, layout_groups

CORRUPT_SEED_OFFSET = 104_729
"""Added to ``seed`` to draw the corrupted prompts of a task-name input (a disjoint eval set)."""


def corrupt_batch(batch: Batch, source: Batch | None = None, seed: int = 0) -> Batch:
    """Resample the prompts: every row gets another example's prompt, keeping its own answer.

    Row ``i``'s prompt tokens (positions ``1 .. prompt_len - 1``) are replaced by those of a row
    of ``source`` with the same ``(task, length, prompt_len)``; the ``<bos>`` and the
    teacher-forced answer tokens stay, so a metric on the corrupted batch still scores the *clean*
    answer. Without a ``source``, prompts are permuted within each layout group of ``batch`` by a
    random derangement (no row keeps its own prompt).

    Args:
        batch: the clean batch.
        source: where corrupted prompts come from (cycled if it has fewer rows than needed).
        seed: seed of the random assignment.

    Raises:
        InterpError: if a group has no matching source rows, or (without ``source``) a single row.
    """
    g = torch.Generator().manual_seed(int(seed))
    tokens = batch.tokens.clone()
    src_groups = layout_groups(source) if source is not None else None
    for key, rows in layout_groups(batch).items():
        p = key[2]
        if src_groups is None:
            if len(rows) < 2:
                raise InterpError(
                    f"cannot corrupt task {key[0]!r} at length {key[1]}: resampling prompts "
                    "within the batch needs at least two examples per (task, length); pass a "
                    "reference batch or more examples"
                )
            perm = rows[torch.randperm(len(rows), generator=g, device=g.device)]
            # Shifting a random permutation by one is a random derangement (a single cycle).
            donors, src_tokens = torch.roll(perm, -1), batch.tokens
            tokens[perm, 1:p] = src_tokens[donors, 1:p]
        else:
            assert source is not None
            if key not in src_groups:
                raise InterpError(
                    f"the corruption source has no examples of task {key[0]!r} at length "
                    f"{key[1]} with a {p}-token prompt"
                )
            src = src_groups[key]
            src = src[torch.randperm(len(src), generator=g, device=g.device)]
            donors = src[torch.arange(len(rows), device=src.device) % len(src)]
            tokens[rows, 1:p] = source.tokens[donors, 1:p]
    return Batch(
        tokens, batch.answer_mask, batch.prompt_len, batch.seq_len, batch.lengths, batch.tasks
    )


def attribution_scores(
    model: HookedTransformer, clean: Batch, corrupted: Batch
) -> tuple[Float[Tensor, "layer head batch"], Float[Tensor, " batch"], Float[Tensor, " batch"]]:
    """Attribution patching for every head: ``grad_z logprob(corrupted) . (z_clean - z_corr)``.

    One clean forward (no grad) reads ``z_clean``; one corrupted forward and one backward pass
    give the gradient of each example's mean answer log-probability with respect to every head's
    ``z``. Because examples do not interact, the gradient of the *sum* of per-example
    log-probabilities holds each example's own gradient, so the estimate is per example.

    Args:
        model: the model.
        clean: the clean batch.
        corrupted: the same rows with corrupted prompts (see :func:`corrupt_batch`).

    Returns:
        Per-example estimates of ``patched - corrupted`` log-probability, and the clean and
        corrupted per-example log-probabilities.
    """
    n_layers = model.cfg.n_layers
    names = z_names(n_layers)
    with torch.no_grad():
        clean_logits, clean_cache = cached_run(model, clean, names)
    zs: dict[int, Float[Tensor, "b pos head d_head"]] = {}

    def keep(
        z: Float[Tensor, "b pos head d_head"], hook: HookPoint
    ) -> Float[Tensor, "b pos head d_head"]:
        if not z.requires_grad:
            # Parameters may be frozen; a leaf here still lets later layers' z carry gradients.
            z = z.detach().requires_grad_(True)
        zs[hook.layer()] = z
        return z

    with torch.enable_grad():
        logits = model.run_with_hooks(corrupted.tokens, fwd_hooks=[(lambda n: n in names, keep)])
        lp = answer_logprob_from_logits(logits, corrupted)
        # autograd.grad (not backward) so no parameter .grad is touched.
        grads = torch.autograd.grad(lp.sum(), [zs[layer] for layer in range(n_layers)])
    scores = torch.stack(
        [
            torch.einsum(
                "bphd,bphd->hb",
                grads[layer],
                clean_cache[get_act_name("z", layer)] - zs[layer].detach(),
            )
            for layer in range(n_layers)
        ]
    )
    clean_lp = answer_logprob_from_logits(clean_logits, clean)
    return scores.double(), clean_lp.double(), lp.detach().double()
