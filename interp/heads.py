"""Which attention heads does a task use? Per-head importance maps by ablation and patching.

The paper's mechanistic evidence (its Appendix B) is an ``n_layers x n_heads`` *importance map* per
task: knock out one head, measure how much the task's exact-match accuracy drops, repeat for every
head. Two tasks whose maps look alike re-use the same circuitry, and the paper finds that map
similarity tracks length-generalization transfer. This module computes such maps four ways.

**Where a head is intervened on.** Every method edits the per-head attention output ``hook_z``
(``blocks.{l}.attn.hook_z``, shape ``[batch, pos, head, d_head]``): the attention-weighted values
of each head *before* ``W_O`` mixes the heads into the residual stream. Because the head dimension
is explicit there, one head can be replaced without asking TransformerLens to materialise the
per-head residual contributions (``use_attn_result=True``, an extra ``[batch, pos, head,
d_model]`` tensor per layer). Replacing ``z`` of head ``h`` replaces exactly head ``h``'s
contribution ``z_h @ W_O[h]`` to the residual stream; ``b_O`` is shared and left alone.

**Methods** (``method=``):

* ``mean_ablation`` (the paper's): head ``h``'s ``z`` is replaced, at every position, by its
  mean over a *reference* batch at that position. The mean is taken per layout group (below), so
  it averages like with like: the head's typical output at "the third operand digit", not a blur
  over different positions. The reference is the scored batch itself unless ``reference=`` gives
  another batch with the same layouts.
* ``zero_ablation``: ``z`` of head ``h`` is set to zero (a harsher, off-distribution knock-out).
* ``activation_patching``: run a *corrupted* input, patch head ``h``'s ``z`` from the *clean*
  run into it and see how much of the clean behaviour comes back. The corruption resamples the
  prompt: each clean example gets the prompt (operands, string, maze) of another example of the
  same task at the same length, while the teacher-forced answer tokens stay the clean ones, so the
  metric always asks "does the model produce the *clean* answer?". The corrupted prompts come
  from ``reference=`` if given; for a task name, from the evaluation set with seed
  ``seed + CORRUPT_SEED_OFFSET`` (a disjoint draw of the same task and length); for a ``Batch``
  without a reference, from a random derangement of the batch's own prompts within each layout
  group (so a group needs at least two examples).
* ``attribution_patching``: the first-order Taylor estimate of activation patching (Nanda,
  "Attribution patching", 2023): ``score_h ~= grad_z L(corrupted) . (z_clean - z_corrupted)``
  summed over positions and ``d_head``, for all heads of all layers from one forward and one
  backward pass of the corrupted run (plus one clean forward to read ``z_clean``). ``L`` is the
  answer log-probability, because exact match is piecewise constant and has no useful gradient:
  **with ``metric="exact_match"`` the score is still the linear estimate of the change in mean
  answer log-probability** (the smooth surrogate), and its ``clean``/``corrupted`` columns are
  log-probabilities too.

**Metrics** (``metric=``), both teacher-forced from one forward pass (see ``interp.evaluate``):
``exact_match`` (the paper's: an example counts when every answer token is the argmax given the
correct prefix, which equals greedy decoding) and ``logprob`` (mean log-probability of the answer
tokens, a smooth version that also sees partial damage).

**Sign conventions.** Ablation: ``score = clean - ablated`` (positive: the head matters).
Patching: ``score = patched - corrupted`` (positive: the head carries information that restores
the clean answer). Scores are raw differences of the metric; the frame also holds the ``clean``
and ``corrupted`` metric values, so ``score / (clean - corrupted)`` gives the usual normalised
patching score (1 = the head alone restores the clean run) where that is wanted.

**Layout groups.** A mean over a batch is only meaningful if row ``i``'s position ``p`` means
the same thing as row ``j``'s. Every task but the mazes has one fixed token layout per length; a
maze prompt has a fixed length per maze size but its answer length varies. Rows are therefore
grouped by ``(task, length, prompt_len)``; within a group, means are masked means over the rows
that have a real (non-pad) token at that position. Padding is on the right and attention is
causal, so padded positions never influence a real position and right-padded maze rows of one
group can share a forward pass. (Grouping mazes by sequence length as well would make most
groups tiny, often one example, where a mean ablation is no ablation at all; the masked mean
keeps the whole ``(maze, size)`` set as the reference, aligned position by position.)

**Aggregation.** Every intervention is evaluated per example. A task's ``score`` is the mean
over all of its examples, which equals the mean over length buckets weighted by their example
counts; ``per_length=True`` adds one row per ``(task, length)`` as well.

**Speed.** The obvious loop runs one full forward pass per head (``n_layers * n_heads`` passes,
which is what ``transformer_lens.patching`` does). Here, one clean (or corrupted) pass caches
each layer's ``hook_z`` and ``hook_resid_mid``; then, for layer ``l``, the batch is replicated
``n_heads`` times along the batch dimension and replica ``h`` gets head ``h`` replaced, so all
heads of a layer share one forward pass that recomputes only what the replacement can change:

* layers before ``l`` are not recomputed at all;
* layer ``l``'s attention is not recomputed either: replacing ``z_h`` changes the layer's
  attention output by exactly ``(z_new - z_h) @ W_O[l, h]``, which is added to the cached
  ``resid_mid`` (equivalent to the ``hook_z`` edit, up to float rounding);
* layers ``l+1 ..`` run through ``model(x, start_at_layer=l + 1, stop_at_layer=...)``;
* the last layer's MLP, ``ln_final`` and the unembedding (all position-wise) run only at the
  positions whose logits predict answer tokens, and the final token, which predicts nothing, is
  never fed in (attention is causal).

Models whose blocks are not plain pre-norm ``attn -> resid_mid -> mlp`` blocks (parallel
attention/MLP, post-norm, ...; none built by :func:`interp.model.build_model`) fall back to
caching ``hook_resid_pre`` and running ``model(resid, start_at_layer=l)`` with one ``hook_z``
hook that edits replica ``h``'s head ``h``. Replicas are chunked to at most ``batch_size`` rows
per forward pass to bound memory. The tests check both paths against
``transformer_lens.patching`` to 1e-5.

**Devices.** Everything runs on the model's device: batches stay on the CPU as bookkeeping
(row indices, lengths, layouts) and their token tensors meet the model there; caches, means and
replicated passes stay on the device; per-example results come back to the CPU. The default
``batch_size`` is the device's (:func:`interp.device.default_batch_size`: 512 rows on a CPU,
4096 on a GPU).

``get_act_name`` is imported from ``transformer_lens.utilities``: ``transformer_lens.utils`` is
the same function behind a deprecated alias in TransformerLens 3.9.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

from interp.data import Batch, eval_batches
from interp.device import default_batch_size, model_device
from interp.errors import InterpError, unknown_choice
from interp.evaluate import answer_logprob_from_logits, exact_match_from_logits
from interp.model import check_context
from interp.tasks import get_task
from interp.text import vocab_for
from interp.tokenizer import VOCAB

METHODS: tuple[str, ...] = (
    "mean_ablation",
    "zero_ablation",
    "activation_patching",
    "attribution_patching",
)
METRICS: tuple[str, ...] = ("exact_match", "logprob")
ABLATIONS: tuple[str, ...] = ("mean", "zero")
CORRUPT_SEED_OFFSET = 104_729
"""Added to ``seed`` to draw the corrupted prompts of a task-name input (a disjoint eval set)."""

COLUMNS = [
    "task",
    "length",
    "layer",
    "head",
    "score",
    "method",
    "metric",
    "n",
    "clean",
    "corrupted",
]

GroupKey = tuple[str, int, int]


# --------------------------------------------------------------------------------------------
# Layout groups and per-example metrics


def layout_groups(batch: Batch) -> dict[GroupKey, Tensor]:
    """Row indices of each ``(task, length, prompt_len)`` group, in order of first appearance."""
    groups: dict[GroupKey, list[int]] = {}
    lengths = batch.lengths.tolist()
    prompt_len = batch.prompt_len.tolist()
    for i, (t, L, p) in enumerate(zip(batch.tasks, lengths, prompt_len, strict=True)):
        groups.setdefault((t, int(L), int(p)), []).append(i)
    return {k: torch.tensor(v, dtype=torch.long) for k, v in groups.items()}


def _metric_values(
    logits: Float[Tensor, "batch pos d_vocab"], batch: Batch, metric: str
) -> Float[Tensor, " batch"]:
    if metric == "exact_match":
        return exact_match_from_logits(logits, batch).to(logits.dtype)
    return answer_logprob_from_logits(logits, batch)


def _repeat(batch: Batch, n: int) -> Batch:
    """The batch stacked ``n`` times along the batch dimension (replica-major)."""
    return Batch(
        batch.tokens.repeat(n, 1),
        batch.answer_mask.repeat(n, 1),
        batch.prompt_len.repeat(n),
        batch.seq_len.repeat(n),
        batch.lengths.repeat(n),
        batch.tasks * n,
    )


def _chunks(n: int, size: int) -> list[Tensor]:
    return [torch.arange(s, min(s + size, n)) for s in range(0, n, size)]


def _resid_names(n_layers: int) -> set[str]:
    return {get_act_name("resid_pre", layer) for layer in range(n_layers)}


def _z_names(n_layers: int) -> set[str]:
    return {get_act_name("z", layer) for layer in range(n_layers)}


# --------------------------------------------------------------------------------------------
# Reference statistics and corruption


def _accumulate_z(
    acc: tuple[Tensor, Tensor] | None,
    cache: dict[str, Tensor],
    sub: Batch,
    width: int,
    n_layers: int,
) -> tuple[Tensor, Tensor]:
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


def _finish_mean(acc: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
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
    for rows in _chunks(len(batch), batch_size):
        sub = batch.select(rows)
        _, cache = _cached_run(model, sub, _z_names(n_layers))
        acc = _accumulate_z(acc, cache, sub, batch.n_pos, n_layers)
    assert acc is not None
    return _finish_mean(acc)


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
            perm = rows[torch.randperm(len(rows), generator=g)]
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
            src = src[torch.randperm(len(src), generator=g)]
            donors = src[torch.arange(len(rows)) % len(src)]
            tokens[rows, 1:p] = source.tokens[donors, 1:p]
    return Batch(
        tokens, batch.answer_mask, batch.prompt_len, batch.seq_len, batch.lengths, batch.tasks
    )


# --------------------------------------------------------------------------------------------
# The batched one-layer-at-a-time intervention


def _replica_hook(
    n_heads: int, replacement: Tensor | None
) -> Callable[[Float[Tensor, "rb pos head d_head"], HookPoint], Tensor]:
    """Hook on ``hook_z`` of a batch stacked ``n_heads`` times: replica ``h`` gets head ``h``
    replaced by ``replacement`` (broadcastable to ``[b, pos, head, d_head]``; None = zero)."""

    def hook(z: Tensor, hook: HookPoint) -> Tensor:
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
def _layer_sweep(
    model: HookedTransformer,
    sub: Batch,
    resid: dict[int, Float[Tensor, "b pos d_model"]],
    replacement: Callable[[int], Tensor | None],
    metric: str,
) -> Float[Tensor, "layer head b"]:
    """Metric per (layer, head, row) with head ``(layer, h)`` replaced, from cached residuals."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    rep = _repeat(sub, n_heads)
    out = torch.empty((n_layers, n_heads, len(sub)), dtype=torch.float64, device=resid[0].device)
    for layer in range(n_layers):
        x = resid[layer].repeat(n_heads, 1, 1)
        hook = _replica_hook(n_heads, replacement(layer))
        logits = model.run_with_hooks(
            x, start_at_layer=layer, fwd_hooks=[(get_act_name("z", layer), hook)]
        )
        out[layer] = _metric_values(logits, rep, metric).view(n_heads, len(sub)).double()
    return out


def fast_path_supported(model: HookedTransformer) -> bool:
    """Whether the model's blocks have the plain pre-norm ``attn -> resid_mid -> mlp`` layout
    that :func:`_fast_sweep` re-implements (every model :func:`interp.model.build_model` makes)."""
    c = model.cfg
    return (
        not c.attn_only
        and not c.parallel_attn_mlp
        and not c.use_normalization_before_and_after
        and not c.use_attn_in
        and not c.use_split_qkv_input
        and c.original_architecture not in POST_NORM_ARCHITECTURES
        and c.positional_embedding_type != "shortformer"
        and c.normalization_type is not None
        and (c.output_logits_soft_cap is None or c.output_logits_soft_cap <= 0)
    )


def _span(sub: Batch) -> tuple[int, int]:
    """``(start, end)``: logits at positions ``start .. end - 1`` predict every answer token."""
    return int(sub.prompt_len.min()) - 1, int(sub.seq_len.max()) - 1


@torch.no_grad()
def _fast_sweep(
    model: HookedTransformer,
    sub: Batch,
    mid: dict[int, Float[Tensor, "b pos d_model"]],
    z: dict[int, Float[Tensor, "b pos head d_head"]],
    replacement: Callable[[int], Tensor | None],
    metric: str,
) -> Float[Tensor, "layer head b"]:
    """Same result as :func:`_layer_sweep`, computing only what the replaced head can change.

    Three exact shortcuts, each a consequence of the architecture:

    * Replacing head ``h``'s ``z`` changes layer ``l``'s attention output by
      ``(z_new - z) @ W_O[l, h]`` and nothing else (queries, keys, values and the other heads
      are upstream of ``z``), so the replicas start from the cached ``resid_mid`` plus that
      difference and skip layer ``l``'s attention.
    * Attention is causal, so the last input token (whose logits predict nothing) is dropped.
    * After the last layer's attention everything is position-wise, so the last MLP,
      ``ln_final`` and the unembedding run only at the positions whose logits predict answer
      tokens.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    b = len(sub)
    start, end = _span(sub)
    tail = Batch(
        sub.tokens[:, start : end + 1],
        sub.answer_mask[:, start : end + 1],
        sub.prompt_len - start,
        sub.seq_len - start,
        sub.lengths,
        sub.tasks,
    )
    rep = _repeat(tail, n_heads)
    last = model.blocks[n_layers - 1]
    out = torch.empty((n_layers, n_heads, b), dtype=torch.float64, device=mid[0].device)
    for layer in range(n_layers):
        z_l = z[layer][:, :end]
        r = replacement(layer)
        diff = -z_l if r is None else r[..., :end, :, :].to(z_l.dtype) - z_l
        # Replica h gets only head h's difference, written into the residual stream by W_O[h].
        delta = torch.einsum("bphe,hem->hbpm", diff, model.blocks[layer].attn.W_O)
        x = (mid[layer][None, :, :end] + delta).reshape(n_heads * b, end, -1)
        if layer == n_layers - 1:
            x = x[:, start:]
        x = x + model.blocks[layer].apply_mlp(model.blocks[layer].ln2(x))
        if layer < n_layers - 1:
            x = model(x, start_at_layer=layer + 1, stop_at_layer=n_layers - 1)
            xn = last.ln1(x)
            x = (x + last.attn(xn, xn, xn))[:, start:]
            x = x + last.apply_mlp(last.ln2(x))
        logits = model.unembed(model.ln_final(x))
        # A dummy column for the final token, which predicts nothing, restores the
        # "logits[:, :-1] predict tokens[:, 1:]" layout the evaluate helpers expect.
        logits = torch.cat([logits, logits.new_zeros(logits.shape[0], 1, logits.shape[2])], 1)
        out[layer] = _metric_values(logits, rep, metric).view(n_heads, b).double()
    return out


def _sweep(
    model: HookedTransformer,
    sub: Batch,
    cache: dict[str, Tensor],
    replacement: Callable[[int], Tensor | None],
    metric: str,
) -> Float[Tensor, "layer head b"]:
    """Metric per (layer, head, row) with one head replaced, by the fast path when supported."""
    n_layers = model.cfg.n_layers
    if fast_path_supported(model):
        mid = {layer: cache[get_act_name("resid_mid", layer)] for layer in range(n_layers)}
        z = {layer: cache[get_act_name("z", layer)] for layer in range(n_layers)}
        return _fast_sweep(model, sub, mid, z, replacement, metric)
    resid = {layer: cache[get_act_name("resid_pre", layer)] for layer in range(n_layers)}
    return _layer_sweep(model, sub, resid, replacement, metric)


def _sweep_names(model: HookedTransformer) -> set[str]:
    n_layers = model.cfg.n_layers
    if fast_path_supported(model):
        return _z_names(n_layers) | {get_act_name("resid_mid", i) for i in range(n_layers)}
    return _resid_names(n_layers)


@torch.no_grad()
def _cached_run(
    model: HookedTransformer, sub: Batch, names: set[str]
) -> tuple[Float[Tensor, "b pos d_vocab"], dict[str, Tensor]]:
    logits, cache = model.run_with_cache(sub.tokens, names_filter=lambda n: n in names)
    return logits, dict(cache.items())


# --------------------------------------------------------------------------------------------
# Per-method drivers


CACHE_BUDGET_BYTES = 256 * 2**20
"""Largest clean-run cache kept for a whole layout group, so that the clean pass of mean
ablation also yields the group's mean ``z`` (otherwise the means take a pass of their own)."""


@torch.no_grad()
def _ablation_group(
    model: HookedTransformer,
    batch: Batch,
    key: GroupKey,
    chunks: list[Tensor],
    method: str,
    reference: Batch | None,
    metric: str,
    batch_size: int,
    per_ex: Tensor,
    clean_v: Tensor,
    bar: tqdm,
) -> None:
    """Mean or zero ablation of every head for one layout group, written into ``per_ex``."""
    n_layers = model.cfg.n_layers
    names = _sweep_names(model)
    rows_all = torch.cat(chunks)
    width = int(batch.seq_len[rows_all].max())
    stored: dict[int, tuple[Tensor, dict[str, Tensor]]] = {}
    mean: Tensor | None = None
    if method == "mean_ablation":
        need = width - 1
        cache_bytes = 2 * n_layers * len(rows_all) * width * model.cfg.d_model * 4
        if reference is not None:
            mean = reference_mean(model, key, need, reference, batch_size)
        elif cache_bytes <= CACHE_BUDGET_BYTES:
            # The clean pass doubles as the pass that takes the mean: keep its caches.
            acc = None
            for i, rows in enumerate(chunks):
                sub = batch.select(rows)
                logits, cache = _cached_run(model, sub, names | _z_names(n_layers))
                stored[i] = (_metric_values(logits, sub, metric).double(), cache)
                acc = _accumulate_z(acc, cache, sub, width, n_layers)
            assert acc is not None
            mean = _finish_mean(acc)[0]
        else:
            mean = reference_mean(model, key, need, batch, batch_size)
    for i, rows in enumerate(chunks):
        sub = batch.select(rows)
        if i in stored:
            clean, cache = stored.pop(i)
        else:
            logits, cache = _cached_run(model, sub, names)
            clean = _metric_values(logits, sub, metric).double()
        repl = (lambda layer: None) if mean is None else (lambda layer: mean[layer][None])
        per_ex[:, :, rows] = (clean[None, None] - _sweep(model, sub, cache, repl, metric)).cpu()
        clean_v[rows] = clean.cpu()
        bar.update(len(rows))


def _patching_chunk(
    model: HookedTransformer, sub: Batch, corr: Batch, metric: str
) -> tuple[Float[Tensor, "layer head b"], Float[Tensor, " b"], Float[Tensor, " b"]]:
    """Activation patching of every head for one chunk: (patched - corrupted, clean, corrupted)."""
    n_layers = model.cfg.n_layers
    clean_logits, clean_cache = _cached_run(model, sub, _z_names(n_layers))
    corr_logits, corr_cache = _cached_run(model, corr, _sweep_names(model))
    clean = _metric_values(clean_logits, sub, metric).double()
    corrupted = _metric_values(corr_logits, corr, metric).double()
    patched = _sweep(
        model, corr, corr_cache, lambda layer: clean_cache[get_act_name("z", layer)], metric
    )
    return patched - corrupted[None, None], clean, corrupted


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
    names = _z_names(n_layers)
    with torch.no_grad():
        clean_logits, clean_cache = _cached_run(model, clean, names)
    zs: dict[int, Tensor] = {}

    def keep(z: Tensor, hook: HookPoint) -> Tensor:
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


# --------------------------------------------------------------------------------------------
# Public API


def _resolve_input(
    model: HookedTransformer,
    task_or_batch: str | Batch,
    lengths: Sequence[int] | None,
    n_examples: int,
    seed: int,
) -> Batch:
    if isinstance(task_or_batch, Batch):
        if lengths is not None:
            raise InterpError("lengths= applies to a task name; a Batch already has its lengths")
        if len(task_or_batch) == 0:
            raise InterpError("cannot score heads on an empty batch")
        check_context(model, task_or_batch.n_pos, f"a batch of {sorted(set(task_or_batch.tasks))}")
        return task_or_batch
    if not isinstance(task_or_batch, str):
        raise InterpError(
            f"task_or_batch must be a task name or a Batch, got {type(task_or_batch).__name__}"
        )
    return task_batch(model, task_or_batch, lengths, n_examples, seed)


def task_batch(
    model: HookedTransformer,
    task: str,
    lengths: Sequence[int] | None,
    n_examples: int,
    seed: int = 0,
) -> Batch:
    """The fixed evaluation sets of ``task`` at ``lengths``, concatenated into one batch.

    Raises:
        InterpError: for an unknown task, no or invalid lengths, a bad example count, or a length
            whose sequences exceed the model's context.
    """
    t = get_task(task)
    if lengths is None or len(lengths) == 0:
        raise InterpError(f"scoring task {task!r} needs at least one length (lengths=[...])")
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise InterpError(f"n_examples must be a positive integer, got {n_examples!r}")
    for L in lengths:
        t.check_length(L)
        check_context(model, t.max_tokens(int(L)), f"task {task!r} at length {L}")
    vocab = vocab_for(model)
    sets = eval_batches(t, [int(L) for L in lengths], n_examples, seed, model.cfg.n_ctx, vocab)
    return concat_batches(list(sets.values()))


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """Stack batches row-wise, right-padding to the widest."""
    if not batches:
        raise InterpError("cannot concatenate an empty list of batches")
    width = max(b.n_pos for b in batches)

    def pad(t: Tensor, value: int | bool) -> Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return Batch(
        torch.cat([pad(b.tokens, VOCAB.pad_id) for b in batches]),
        torch.cat([pad(b.answer_mask, False) for b in batches]),
        torch.cat([b.prompt_len for b in batches]),
        torch.cat([b.seq_len for b in batches]),
        torch.cat([b.lengths for b in batches]),
        [t for b in batches for t in b.tasks],
    )


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise unknown_choice(kind, value, choices)


def score_heads(
    model: HookedTransformer,
    task_or_batch: str | Batch,
    method: str = "mean_ablation",
    metric: str = "exact_match",
    *,
    lengths: Sequence[int] | None = None,
    n_examples: int = 1024,
    seed: int = 0,
    reference: Batch | None = None,
    per_length: bool = False,
    batch_size: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Importance of every attention head for a task (see the module docstring).

    Args:
        model: the model.
        task_or_batch: a task name (scored on its fixed evaluation sets at ``lengths``) or a
            :class:`~interp.data.Batch` (any mix of tasks and lengths).
        method: ``mean_ablation``, ``zero_ablation``, ``activation_patching`` or
            ``attribution_patching``.
        metric: ``exact_match`` or ``logprob``.
        lengths: lengths to score, required with a task name.
        n_examples: examples per length with a task name.
        seed: evaluation-set seed (task name) and seed of the prompt resampling (patching).
        reference: mean ablation: the batch whose per-position means replace a head (default:
            the scored batch); patching: where corrupted prompts come from (default: see the
            module docstring). Not allowed with ``zero_ablation``.
        per_length: also return one row per ``(task, length, layer, head)``.
        batch_size: most rows in one forward pass (replicas included); bounds memory
            (default: the model device's :func:`~interp.device.default_batch_size`).
        progress: show a progress bar over chunks.

    Returns:
        Tidy frame, one row per ``(task, layer, head)`` with ``length`` missing (``<NA>``), plus
        with ``per_length`` one row per ``(task, length, layer, head)``. Columns: ``task,
        length, layer, head, score, method, metric, n`` (examples behind the row), ``clean`` and
        ``corrupted`` (mean metric of the clean and corrupted runs; ``corrupted`` is NaN for
        ablations).

    Raises:
        InterpError: unknown method or metric, missing or too long lengths, an empty batch, or a
            reference that does not match the batch's layouts.
    """
    _check_choice("method", method, METHODS)
    _check_choice("metric", metric, METRICS)
    if batch_size is None:
        batch_size = default_batch_size(model_device(model))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InterpError(f"batch_size must be a positive integer, got {batch_size!r}")
    if method == "zero_ablation" and reference is not None:
        raise InterpError("zero_ablation takes no reference batch (it replaces heads by zero)")
    batch = _resolve_input(model, task_or_batch, lengths, n_examples, seed)
    if reference is not None:
        check_context(model, reference.n_pos, "the reference batch")

    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    per_ex = torch.empty((n_layers, n_heads, len(batch)), dtype=torch.float64)
    clean_v = torch.empty(len(batch), dtype=torch.float64)
    corr_v = torch.empty(len(batch), dtype=torch.float64)

    corrupted: Batch | None = None
    if method in ("activation_patching", "attribution_patching"):
        source = reference
        if source is None and isinstance(task_or_batch, str):
            source = task_batch(
                model, task_or_batch, lengths, n_examples, seed + CORRUPT_SEED_OFFSET
            )
        corrupted = corrupt_batch(batch, source, seed)

    # Ablation/patching forwards hold n_heads replicas per row; attribution holds a backward
    # graph of similar size per row. Either way about batch_size "rows" are alive at once.
    rows_per_chunk = batch_size // n_heads
    groups = layout_groups(batch)
    bar = tqdm(total=len(batch), desc=method, disable=not progress, leave=False)
    for key, group_rows in groups.items():
        chunks = [group_rows[c] for c in _chunks(len(group_rows), max(1, rows_per_chunk))]
        if method in ("mean_ablation", "zero_ablation"):
            _ablation_group(
                model,
                batch,
                key,
                chunks,
                method,
                reference,
                metric,
                batch_size,
                per_ex,
                clean_v,
                bar,
            )
            corr_v[group_rows] = float("nan")
            continue
        assert corrupted is not None
        for rows in chunks:
            sub, corr = batch.select(rows), corrupted.select(rows)
            if method == "activation_patching":
                scores, clean, corr_m = _patching_chunk(model, sub, corr, metric)
            else:
                scores, clean, corr_m = attribution_scores(model, sub, corr)
            per_ex[:, :, rows] = scores.cpu()
            clean_v[rows], corr_v[rows] = clean.cpu(), corr_m.cpu()
            bar.update(len(rows))
    bar.close()
    return _tidy(batch, per_ex, clean_v, corr_v, method, metric, per_length)


def _tidy(
    batch: Batch,
    per_ex: Float[Tensor, "layer head batch"],
    clean: Float[Tensor, " batch"],
    corrupted: Float[Tensor, " batch"],
    method: str,
    metric: str,
    per_length: bool,
) -> pd.DataFrame:
    """Average per-example values per task (and per (task, length)) into the tidy frame."""
    n_layers, n_heads, _ = per_ex.shape
    tasks = np.asarray(batch.tasks)
    lengths = batch.lengths.numpy()
    layer = np.repeat(np.arange(n_layers), n_heads)
    head = np.tile(np.arange(n_heads), n_layers)
    flat = per_ex.reshape(n_layers * n_heads, -1).numpy()
    clean_np, corr_np = clean.numpy(), corrupted.numpy()

    selections: list[tuple[str, int | None, np.ndarray]] = []
    for t in dict.fromkeys(batch.tasks):
        mask_t = tasks == t
        selections.append((t, None, mask_t))
        if per_length:
            for L in sorted(set(lengths[mask_t].tolist())):
                selections.append((t, int(L), mask_t & (lengths == L)))
    frames = []
    for t, L, mask in selections:
        frames.append(
            pd.DataFrame(
                {
                    "task": t,
                    "length": pd.array([L] * len(layer), dtype="Int64"),
                    "layer": layer,
                    "head": head,
                    "score": flat[:, mask].mean(1),
                    "method": method,
                    "metric": metric,
                    "n": int(mask.sum()),
                    "clean": float(clean_np[mask].mean()),
                    "corrupted": float(corr_np[mask].mean()),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[COLUMNS]


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
    _check_choice("ablation method", method, ABLATIONS)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    head_set: dict[int, list[int]] = {}
    for lh in heads:
        if len(lh) != 2:
            raise InterpError(f"heads must be (layer, head) pairs, got {lh!r}")
        layer, h = int(lh[0]), int(lh[1])
        if not (0 <= layer < n_layers and 0 <= h < n_heads):
            raise InterpError(
                f"head ({layer}, {h}) is outside the model's {n_layers} layers x {n_heads} heads"
            )
        head_set.setdefault(layer, []).append(h)
    if len(batch) == 0:
        raise InterpError("cannot ablate heads on an empty batch")
    check_context(model, batch.n_pos, f"a batch of {sorted(set(batch.tasks))}")
    if method == "zero" and reference is not None:
        raise InterpError("zero ablation takes no reference batch")

    ref = batch if reference is None else reference
    batch_size = batch_size or default_batch_size(model_device(model))
    em = torch.empty(len(batch), dtype=torch.bool)
    lp = torch.empty(len(batch))
    for key, group_rows in layout_groups(batch).items():
        mean = None
        if method == "mean" and heads:
            need = int(batch.seq_len[group_rows].max()) - 1
            mean = reference_mean(model, key, need, ref, batch_size)
        for c in _chunks(len(group_rows), batch_size):
            rows = group_rows[c]
            sub = batch.select(rows)
            hooks = []
            for layer, hs in head_set.items():
                idx = torch.tensor(sorted(set(hs)))
                m_l = None if mean is None else mean[layer]
                hooks.append((get_act_name("z", layer), _set_heads_hook(idx, m_l)))
            with torch.no_grad():
                logits = model.run_with_hooks(sub.tokens, fwd_hooks=hooks)
            em[rows] = exact_match_from_logits(logits, sub).cpu()
            lp[rows] = answer_logprob_from_logits(logits, sub).float().cpu()
    return em, lp


def _set_heads_hook(
    idx: Tensor, mean: Float[Tensor, "pos head d_head"] | None
) -> Callable[[Tensor, HookPoint], Tensor]:
    def hook(z: Tensor, hook: HookPoint) -> Tensor:
        z = z.clone()
        i = idx.to(z.device)
        if mean is None:
            z[:, :, i] = 0.0
        else:
            z[:, :, i] = mean[None, : z.shape[1], i].to(z.dtype)
        return z

    return hook
