"""Which attention heads does a task use? Per-head importance maps by ablation and patching.

The paper's mechanistic evidence (its Appendix B) is an ``n_layers x n_heads`` *importance map* per
task: knock out one head, measure how much the task's exact-match accuracy drops, repeat for every
head. Two tasks whose maps look alike re-use the same circuitry, and the paper finds that map
similarity tracks length-generalization transfer. :func:`score_heads` computes such maps four
ways, all by editing a head's ``hook_z`` (:mod:`interp.scoring.hooks`).

**Methods** (``method=``):

* ``mean_ablation`` (the paper's): head ``h``'s ``z`` is replaced, at every position, by its
  mean over a *reference* batch at that position, per layout group (:mod:`interp.scoring.ablation`,
  :func:`interp.tasks.batches.layout_groups`). The reference is the scored batch itself unless
  ``reference=`` gives another batch with the same layouts.
* ``zero_ablation``: ``z`` of head ``h`` is set to zero (a harsher, off-distribution knock-out).
* ``activation_patching``: run a *corrupted* input (prompts resampled, clean answers kept:
  :func:`interp.scoring.patching.corrupt_batch`), patch head ``h``'s ``z`` from the *clean* run
  into it
  and see how much of the clean behaviour comes back. The corrupted prompts come from
  ``reference=`` if given; for a task name, from the evaluation set with seed
  ``seed + CORRUPT_SEED_OFFSET``; for a ``Batch`` without a reference, from a derangement of the
  batch's own prompts within each layout group.
* ``attribution_patching``: the first-order Taylor estimate of activation patching
  (:func:`interp.scoring.patching.attribution_scores`). Its ``L`` is the answer log-probability:
  **with ``metric="exact_match"`` the score is still the linear estimate of the change in mean
  answer log-probability** (the smooth surrogate), and its ``clean``/``corrupted`` columns are
  log-probabilities too.

**Metrics** (``metric=``), all teacher-forced from one forward pass (see
``interp.scoring.evaluate``):
``exact_match`` (the paper's: an example counts when every answer token is the argmax given the
correct prefix, which equals greedy decoding), ``logprob`` (mean log-probability of the answer
tokens, a smooth version that also sees partial damage) and, for ablations only, ``frac_lost``:
the fraction of the examples the clean model gets right that the ablation breaks,
``#(clean correct and ablated wrong) / #(clean correct)``. Unlike the exact-match drop it is not
capped by clean accuracy, so a task the model half-solves and one it fully solves give
comparable maps (0 when the clean model solves none: nothing can be lost; ``clean`` then
shows 0). It is computed from the same per-example verdicts as ``exact_match``; pass
``metric=["exact_match", "frac_lost"]`` to get both from one set of forward passes.

**Sign conventions.** Ablation: ``score = clean - ablated`` (positive: the head matters).
Patching: ``score = patched - corrupted`` (positive: the head carries information that restores
the clean answer). Scores are raw differences of the metric; the frame also holds the ``clean``
and ``corrupted`` metric values, so ``score / (clean - corrupted)`` gives the usual normalised
patching score (1 = the head alone restores the clean run) where that is wanted.

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
  never fed in (attention is causal);
* those reruns go through :class:`interp.models.fast_forward.LeanStack`, the same blocks with fused
  kernels
  and no hooks (TransformerLens's forward where :func:`interp.models.fast_forward.lean_ok` says no).

Models whose blocks are not plain pre-norm ``attn -> resid_mid -> mlp`` blocks (parallel
attention/MLP, post-norm, ...; none built by :func:`interp.models.factory.build_model`) fall back to
caching ``hook_resid_pre`` and running ``model(resid, start_at_layer=l)`` with one ``hook_z``
hook that edits replica ``h``'s head ``h``. Replicas are chunked to at most ``batch_size`` rows
per forward pass to bound memory. The tests check both paths against
``transformer_lens.patching`` to 1e-5.

**Devices.** Everything runs on the model's device: batches stay on the CPU as bookkeeping
(row indices, lengths, layouts) and their token tensors meet the model there; caches, means and
replicated passes stay on the device; per-example results come back to the CPU. The default
``batch_size`` is the device's (:func:`interp.core.device.default_batch_size`: 512 rows on a CPU,
4096 on a GPU).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

from interp.core.device import default_batch_size, model_device
from interp.core.errors import InterpError, unknown_choice
from interp.models.fast_forward import upper_stack

# ablate_heads, mean_z, corrupt_batch, task_batch and concat_batches are re-exported: they lived
# here before the split, and notebooks, benchmarks and tests import them from interp.heads.
from interp.scoring.ablation import (
    ABLATIONS,
    ablate_heads,
    accumulate_z,
    finish_mean,
    mean_z,
    reference_mean,
)
from interp.scoring.head_table import COLUMNS
from interp.scoring.head_table import tidy as _tidy
from interp.scoring.hooks import cached_run, layer_sweep, metric_values, resid_names, z_names
from interp.scoring.patching import CORRUPT_SEED_OFFSET, attribution_scores, corrupt_batch
from interp.tasks.batches import (
    Batch,
    GroupKey,
    check_context,
    concat_batches,
    layout_groups,
    repeat_batch,
    row_chunks,
    task_batch,
)

__all__ = [
    "ABLATIONS", "ABLATIONS_METHODS", "ABLATION_ONLY_METRICS", "COLUMNS", "CORRUPT_SEED_OFFSET",
    "METHODS", "METRICS", "ablate_heads", "attribution_scores", "base_metric", "concat_batches",
    "corrupt_batch", "fast_path_supported", "mean_z", "score_heads", "task_batch",
]  # fmt: skip

METHODS: tuple[str, ...] = (
    "mean_ablation",
    "zero_ablation",
    "activation_patching",
    "attribution_patching",
)
METRICS: tuple[str, ...] = ("exact_match", "logprob", "frac_lost")
ABLATION_ONLY_METRICS: tuple[str, ...] = ("frac_lost",)
ABLATIONS_METHODS: tuple[str, ...] = ("mean_ablation", "zero_ablation")
"""Metrics defined only for ablations (a patched run has no "clean-correct examples lost")."""


def base_metric(metric: str) -> str:
    """The per-example quantity a metric is computed from: ``frac_lost`` counts exact-match
    verdicts, so it shares the forward passes of ``exact_match``."""
    return "exact_match" if metric == "frac_lost" else metric


# --------------------------------------------------------------------------------------------
# The batched one-layer-at-a-time intervention


def fast_path_supported(model: HookedTransformer) -> bool:
    """Whether the model's blocks have the plain pre-norm ``attn -> resid_mid -> mlp`` layout
    that :func:`_fast_sweep` re-implements (every model
    :func:`interp.models.factory.build_model` makes)."""
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
    replacement: Callable[[int], Float[Tensor, "#b pos head d_head"] | None],
    metric: str,
) -> Float[Tensor, "layer head b"]:
    """Same result as :func:`interp.scoring.hooks.layer_sweep`, computing only what the replaced
    head
    can change (the three exact shortcuts of the module docstring's **Speed**: start from the
    cached ``resid_mid`` plus ``(z_new - z) @ W_O[l, h]``, drop the final token, run the last
    layer's position-wise tail only at answer-predicting positions)."""
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
    rep = repeat_batch(tail, n_heads)
    stack = upper_stack(model)
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
        x = x + stack.mlp(layer, x)
        if layer < n_layers - 1:
            x = stack.run(x, layer + 1, n_layers - 1)
            x = stack.block(n_layers - 1, x, start)
        logits = stack.logits(x)
        # A dummy column for the final token, which predicts nothing, restores the
        # "logits[:, :-1] predict tokens[:, 1:]" layout the evaluate helpers expect.
        logits = torch.cat([logits, logits.new_zeros(logits.shape[0], 1, logits.shape[2])], 1)
        out[layer] = metric_values(logits, rep, metric).view(n_heads, b).double()
    return out


def _sweep(
    model: HookedTransformer,
    sub: Batch,
    cache: dict[str, Float[Tensor, "b ..."]],
    replacement: Callable[[int], Float[Tensor, "#b pos head d_head"] | None],
    metric: str,
) -> Float[Tensor, "layer head b"]:
    """Metric per (layer, head, row) with one head replaced, by the fast path when supported."""
    n_layers = model.cfg.n_layers
    if fast_path_supported(model):
        mid = {layer: cache[get_act_name("resid_mid", layer)] for layer in range(n_layers)}
        z = {layer: cache[get_act_name("z", layer)] for layer in range(n_layers)}
        return _fast_sweep(model, sub, mid, z, replacement, metric)
    resid = {layer: cache[get_act_name("resid_pre", layer)] for layer in range(n_layers)}
    return layer_sweep(model, sub, resid, replacement, metric)


def _sweep_names(model: HookedTransformer) -> set[str]:
    n_layers = model.cfg.n_layers
    if fast_path_supported(model):
        return z_names(n_layers) | {get_act_name("resid_mid", i) for i in range(n_layers)}
    return resid_names(n_layers)


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
    chunks: list[Int[Tensor, " rows"]],
    method: str,
    reference: Batch | None,
    metric: str,
    batch_size: int,
    per_ex: Float[Tensor, "layer head batch"],
    clean_v: Float[Tensor, " batch"],
    bar: tqdm,
) -> None:
    """Mean or zero ablation of every head for one layout group, written into ``per_ex``."""
    n_layers = model.cfg.n_layers
    names = _sweep_names(model)
    rows_all = torch.cat(chunks)
    width = int(batch.seq_len[rows_all].max())
    stored: dict[int, tuple[Float[Tensor, " rows"], dict[str, Float[Tensor, "rows ..."]]]] = {}
    mean: Float[Tensor, "layer pos head d_head"] | None = None
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
                logits, cache = cached_run(model, sub, names | z_names(n_layers))
                stored[i] = (metric_values(logits, sub, metric).double(), cache)
                acc = accumulate_z(acc, cache, sub, width, n_layers)
            assert acc is not None
            mean = finish_mean(acc)[0]
        else:
            mean = reference_mean(model, key, need, batch, batch_size)
    for i, rows in enumerate(chunks):
        sub = batch.select(rows)
        if i in stored:
            clean, cache = stored.pop(i)
        else:
            logits, cache = cached_run(model, sub, names)
            clean = metric_values(logits, sub, metric).double()
        repl = (lambda layer: None) if mean is None else (lambda layer: mean[layer][None])
        per_ex[:, :, rows] = (clean[None, None] - _sweep(model, sub, cache, repl, metric)).cpu()
        clean_v[rows] = clean.cpu()
        bar.update(len(rows))


def patching_chunk(
    model: HookedTransformer, sub: Batch, corr: Batch, metric: str
) -> tuple[Float[Tensor, "layer head b"], Float[Tensor, " b"], Float[Tensor, " b"]]:
    """Activation patching of every head for one chunk: (patched - corrupted, clean, corrupted)."""
    n_layers = model.cfg.n_layers
    clean_logits, clean_cache = cached_run(model, sub, z_names(n_layers))
    corr_logits, corr_cache = cached_run(model, corr, _sweep_names(model))
    clean = metric_values(clean_logits, sub, metric).double()
    corrupted = metric_values(corr_logits, corr, metric).double()
    patched = _sweep(
        model, corr, corr_cache, lambda layer: clean_cache[get_act_name("z", layer)], metric
    )
    return patched - corrupted[None, None], clean, corrupted


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


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise unknown_choice(kind, value, choices)


def score_heads(
    model: HookedTransformer,
    task_or_batch: str | Batch,
    method: str = "mean_ablation",
    metric: str | Sequence[str] = "exact_match",
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
            :class:`~interp.tasks.batches.Batch` (any mix of tasks and lengths).
        method: ``mean_ablation``, ``zero_ablation``, ``activation_patching`` or
            ``attribution_patching``.
        metric: ``exact_match``, ``logprob`` or (ablations only) ``frac_lost``; or a list of
            them, scored from shared forward passes where they share a per-example quantity
            (``exact_match`` and ``frac_lost``) and returned concatenated.
        lengths: lengths to score, required with a task name.
        n_examples: examples per length with a task name.
        seed: evaluation-set seed (task name) and seed of the prompt resampling (patching).
        reference: mean ablation: the batch whose per-position means replace a head (default:
            the scored batch); patching: where corrupted prompts come from (default: see the
            module docstring). Not allowed with ``zero_ablation``.
        per_length: also return one row per ``(task, length, layer, head)``.
        batch_size: most rows in one forward pass (replicas included); bounds memory
            (default: the model device's :func:`~interp.core.device.default_batch_size`).
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
    wanted = [metric] if isinstance(metric, str) else list(dict.fromkeys(metric))
    if not wanted:
        raise InterpError("metric: give at least one metric")
    for m in wanted:
        _check_choice("metric", m, METRICS)
        if m in ABLATION_ONLY_METRICS and method not in ABLATIONS_METHODS:
            raise InterpError(
                f"metric {m!r} is defined for ablations only ({', '.join(ABLATIONS_METHODS)}), "
                f"not for {method!r}"
            )
    bases = list(dict.fromkeys(base_metric(m) for m in wanted))
    if len(bases) > 1:
        frames = [
            score_heads(
                model, task_or_batch, method, [m for m in wanted if base_metric(m) == b],
                lengths=lengths, n_examples=n_examples, seed=seed, reference=reference,
                per_length=per_length, batch_size=batch_size, progress=progress,
            )
            for b in bases
        ]  # fmt: skip
        return pd.concat(frames, ignore_index=True)
    metric = bases[0]
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
    # Per-example tables on the CPU: each group's scores are moved here as they are written.
    cpu = torch.device("cpu")
    per_ex = torch.empty((n_layers, n_heads, len(batch)), dtype=torch.float64, device=cpu)
    clean_v = torch.empty(len(batch), dtype=torch.float64, device=cpu)
    corr_v = torch.empty(len(batch), dtype=torch.float64, device=cpu)

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
        chunks = [group_rows[c] for c in row_chunks(len(group_rows), max(1, rows_per_chunk))]
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
                scores, clean, corr_m = patching_chunk(model, sub, corr, metric)
            else:
                scores, clean, corr_m = attribution_scores(model, sub, corr)
            per_ex[:, :, rows] = scores.cpu()
            clean_v[rows], corr_v[rows] = clean.cpu(), corr_m.cpu()
            bar.update(len(rows))
    bar.close()
    return pd.concat(
        [_tidy(batch, per_ex, clean_v, corr_v, method, m, per_length) for m in wanted],
        ignore_index=True,
    )
