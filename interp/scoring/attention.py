"""Attention patterns per head, and the paper's attention-matrix difference between two tasks.

An attention head's *pattern* ``A[query, key]`` is the softmax of its query-key scores: row
``q`` says how much position ``q`` reads from each earlier position ``k``. TransformerLens
exposes it at ``blocks.{l}.attn.hook_pattern`` with shape ``[batch, head, query, key]``. Two
tasks that use a head the same way should give that head similar patterns, so the paper compares
tasks by the summed absolute difference of every head's (batch-mean) pattern, next to the
ablation-map difference of :mod:`interp.scoring.heads`.

**Averaging over a batch.** Rows are right-padded; a padded query row is meaningless, so every
mean over the batch at query ``q`` is a masked mean over the rows that have a real token at
``q`` (``q < seq_len``). Attention is causal, so a real query never attends to padding.

**Aligning two tasks** (``alignment=``). Position 12 of a reverse-add prompt and position 12 of
a copy prompt are different things, so the raw ``[query, key]`` matrices of two tasks are only
comparable when their formats coincide. Two alignments are offered:

* ``"relative"`` (default): queries are the *answer positions*, keys are *relative offsets*.
  Query index ``j`` is the ``j``-th answer step: the position ``prompt_len - 1 + j`` whose
  logits predict the ``j``-th answer token (``j = 0`` is the ``=`` that predicts the first
  answer token). Key index ``r`` is the distance back from the query, ``r = q - k``
  (``r = 0``: the query itself). So ``P[j, r]`` is "how much answer step ``j`` reads from ``r``
  tokens back", a quantity defined for every task. Two tasks are compared over the answer
  steps both have (``j < min(A_a, A_b)``, the shorter answer decides), and over *all* offsets,
  the shorter offset axis being zero-padded, so attention mass is never silently dropped.
  The prompt's own query rows are left out: the paper's question is how the answer is
  produced, and prompts of different tasks have no common position-by-position meaning. For
  two batches with identical layouts this is exactly the raw difference restricted to the
  answer query rows (``(j, r)`` is a relabelling of ``(q, k)``).
* ``"absolute"``: the whole ``[query, key]`` matrix, position by position, prompt rows
  included. Only defined when both batches have the same width; otherwise InterpError.

``attn_diff`` is the sum of ``|P_a - P_b|`` over the compared cells (the paper's statistic);
``attn_diff_per_query`` divides it by the number of compared query rows, which puts it in
``[0, 2]`` (twice the mean total-variation distance between the two heads' attention
distributions) and makes pairs with different answer lengths comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from interp.core.errors import InterpError, unknown_choice
from interp.models.architecture import check_head
from interp.tasks.batches import Batch, check_context, iter_minibatches, task_batch
from interp.tasks.encoding import vocab_for

ALIGNMENTS: tuple[str, ...] = ("relative", "absolute")
REDUCTIONS: tuple[str, ...] = ("none", "mean")


def _pattern_names(n_layers: int) -> set[str]:
    return {get_act_name("pattern", layer) for layer in range(n_layers)}


def _check_batch(model: HookedTransformer, batch: Batch) -> None:
    if not isinstance(batch, Batch) or len(batch) == 0:
        raise InterpError("attention patterns need a non-empty Batch")
    check_context(model, batch.n_pos, f"a batch of {sorted(set(batch.tasks))}")


def _chunk_patterns(
    model: HookedTransformer, sub: Batch
) -> Float[Tensor, "layer head batch query key"]:
    names = _pattern_names(model.cfg.n_layers)
    with torch.no_grad():
        _, cache = model.run_with_cache(sub.tokens, names_filter=lambda n: n in names)
    pats = [cache[get_act_name("pattern", layer)] for layer in range(model.cfg.n_layers)]
    # Patterns are reduced on the CPU, next to the batch's bookkeeping tensors: they are taken
    # on a few dozen examples per length, so moving them costs little.
    return torch.stack(pats).transpose(1, 2).cpu()  # [layer, head, batch, query, key]


def attention_patterns(
    model: HookedTransformer, batch: Batch, reduce: str = "none", batch_size: int = 256
) -> Float[Tensor, "layer head batch query key"] | Float[Tensor, "layer head query key"]:
    """Every head's attention pattern on a batch.

    Args:
        model: the model.
        batch: the examples.
        reduce: ``"none"`` for per-example patterns (query rows at padding positions are set
            to zero), ``"mean"`` for the masked mean over the rows that are real at each query.
        batch_size: rows per forward pass.

    Returns:
        ``[layer, head, batch, query, key]`` or, with ``reduce="mean"``,
        ``[layer, head, query, key]``.
    """
    if reduce not in REDUCTIONS:
        raise unknown_choice("reduction", reduce, REDUCTIONS)
    _check_batch(model, batch)
    n_pos = batch.n_pos
    # Patterns come back on the CPU (_chunk_patterns), so the sums and masks live there too.
    cpu = torch.device("cpu")
    parts, total, count = [], None, torch.zeros(n_pos, device=cpu)
    for sub in iter_minibatches(batch, batch_size):
        pat = _chunk_patterns(model, sub)
        real = torch.arange(sub.n_pos, device=cpu)[None, :] < sub.seq_len.cpu()[:, None]  # [b, q]
        pat = pat * real[None, None, :, :, None].to(pat.dtype)
        pad = n_pos - sub.n_pos
        pat = torch.nn.functional.pad(pat, (0, pad, 0, pad))
        if reduce == "none":
            parts.append(pat)
            continue
        total = pat.sum(2) if total is None else total + pat.sum(2)
        count[: sub.n_pos] += real.sum(0)
    if reduce == "none":
        return torch.cat(parts, dim=2)
    assert total is not None
    return total / count.clamp_min(1).to(total.dtype)[None, None, :, None]


def aligned_attention(
    model: HookedTransformer,
    batch: Batch,
    alignment: str = "relative",
    batch_size: int = 256,
) -> tuple[Float[Tensor, "layer head query key"], Float[Tensor, " query"]]:
    """Batch-mean attention per head in the chosen alignment (see the module docstring).

    Returns:
        The aligned mean pattern (``[layer, head, answer_step, offset]`` for ``relative``,
        ``[layer, head, query, key]`` for ``absolute``) and, per query row, how many examples
        it averages.
    """
    if alignment not in ALIGNMENTS:
        raise unknown_choice("alignment", alignment, ALIGNMENTS)
    _check_batch(model, batch)
    cpu = torch.device("cpu")  # where _chunk_patterns returns the patterns
    if alignment == "absolute":
        mean = attention_patterns(model, batch, reduce="mean", batch_size=batch_size)
        count = (torch.arange(batch.n_pos, device=cpu)[None] < batch.seq_len.cpu()[:, None]).sum(0)
        return mean, count.to(mean.dtype)
    n_steps = int((batch.seq_len - batch.prompt_len).max())
    n_off = int(batch.seq_len.max()) - 1
    total, count = None, torch.zeros(n_steps, device=cpu)
    for sub in iter_minibatches(batch, batch_size):
        pat = _chunk_patterns(model, sub)  # [layer, head, b, q, k]
        sub = sub.to(cpu)
        b = len(sub)
        j = torch.arange(n_steps, device=cpu)
        q = sub.prompt_len[:, None] - 1 + j[None, :]  # [b, j]
        valid = j[None, :] < (sub.seq_len - sub.prompt_len)[:, None]  # [b, j]
        k = q[:, :, None] - torch.arange(n_off, device=cpu)[None, None, :]  # [b, j, r]
        ok = valid[:, :, None] & (k >= 0)
        rows = torch.arange(b, device=cpu)[:, None, None].expand_as(k)
        qq = q[:, :, None].expand_as(k).clamp(max=sub.n_pos - 1)
        got = pat[:, :, rows, qq, k.clamp(min=0)]  # [layer, head, b, j, r]
        got = got * ok[None, None].to(got.dtype)
        total = got.sum(2) if total is None else total + got.sum(2)
        count += valid.sum(0)
    assert total is not None
    return total / count.clamp_min(1).to(total.dtype)[None, None, :, None], count


def pattern_difference(
    a: Float[Tensor, "layer head query key"],
    b: Float[Tensor, "layer head query key"],
    count_a: Float[Tensor, " query"] | None = None,
    count_b: Float[Tensor, " query"] | None = None,
) -> tuple[Float[Tensor, "layer head"], int]:
    """Summed absolute difference per head over the common query rows, zero-padding keys.

    Query rows that average no example in either input (``count == 0``) are not compared.

    Returns:
        The per-head sums and the number of query rows compared.
    """
    n_q = min(a.shape[2], b.shape[2])
    keep = torch.ones(n_q, dtype=torch.bool, device=a.device)
    if count_a is not None:
        keep &= count_a[:n_q] > 0
    if count_b is not None:
        keep &= count_b[:n_q] > 0
    n_k = max(a.shape[3], b.shape[3])
    pa = torch.nn.functional.pad(a[:, :, :n_q], (0, n_k - a.shape[3]))
    pb = torch.nn.functional.pad(b[:, :, :n_q], (0, n_k - b.shape[3]))
    diff = (pa - pb).abs()[:, :, keep].sum((-1, -2))
    return diff, int(keep.sum())


def _patterns_for(
    model: HookedTransformer,
    task_or_batch: str | Batch,
    lengths: Sequence[int] | None,
    n_examples: int,
    seed: int,
    alignment: str,
    batch_size: int,
) -> dict[int | None, tuple[Float[Tensor, "layer head query key"], Float[Tensor, " query"]]]:
    """Aligned patterns keyed by length (task name) or by ``None`` (a whole Batch)."""
    if isinstance(task_or_batch, Batch):
        return {None: aligned_attention(model, task_or_batch, alignment, batch_size)}
    if lengths is None or len(lengths) == 0:
        raise InterpError(f"attention of task {task_or_batch!r} needs lengths=[...]")
    out = {}
    for L in lengths:
        b = task_batch(model, task_or_batch, [int(L)], n_examples, seed)
        out[int(L)] = aligned_attention(model, b, alignment, batch_size)
    return out


def _name(x: str | Batch) -> str:
    return x if isinstance(x, str) else "+".join(dict.fromkeys(x.tasks))


PATTERN_COLUMNS = [
    "task", "length", "prompt_len", "layer", "head", "query", "key", "query_token", "key_token",
    "attention",
]  # fmt: skip


def head_pattern(
    model: HookedTransformer, batch: Batch, layer: int, head: int, example: int = 0
) -> pd.DataFrame:
    """One head's attention pattern on one example, as a table (what
    :func:`interp.report.plots.pattern_figure` draws).

    Only the example's real tokens are kept (padding is cut).

    Returns:
        One row per ``(query, key)`` cell: ``task, length, prompt_len, layer, head, query, key,
        query_token, key_token, attention`` (tokens decoded with the model's vocabulary).

    Raises:
        InterpError: a head outside the model, an example outside the batch, or an example
            longer than the model's context.
    """
    layer, head = check_head(model.cfg, layer, head)
    if not 0 <= example < len(batch):
        raise InterpError(f"example {example} is outside the batch of {len(batch)} rows")
    row = batch.select([example])
    check_context(model, row.n_pos, "the example")
    name = get_act_name("pattern", layer)
    with torch.no_grad():
        _, cache = model.run_with_cache(row.tokens, names_filter=lambda n: n == name)
    n = int(row.seq_len[0])
    pat: Float[Tensor, "query key"] = cache[name][0, head, :n, :n].double().cpu()
    toks = vocab_for(model).decode(row.tokens[0, :n])
    q = torch.arange(n, device="cpu").repeat_interleave(n).numpy()
    k = torch.arange(n, device="cpu").repeat(n).numpy()
    return pd.DataFrame(
        {
            "task": row.tasks[0],
            "length": int(row.lengths[0]),
            "prompt_len": int(row.prompt_len[0]),
            "layer": layer,
            "head": head,
            "query": q,
            "key": k,
            "query_token": [toks[i] for i in q],
            "key_token": [toks[i] for i in k],
            "attention": pat.flatten().numpy(),
        }
    )[PATTERN_COLUMNS]


def attention_table(
    model: HookedTransformer,
    tasks: Sequence[str | Batch],
    lengths: Sequence[int] | None = None,
    *,
    n_examples: int = 256,
    seed: int = 0,
    alignment: str = "relative",
    batch_size: int = 256,
) -> pd.DataFrame:
    """The attention-matrix difference of every head for every pair of tasks.

    Each task's aligned batch-mean pattern is computed once per length; a pair is compared at
    each length (task names) and the per-length differences are averaged. Batches are each
    treated as one set of examples.

    Args:
        model: the model.
        tasks: task names (evaluated at ``lengths``) or batches, at least two.
        lengths: lengths for task names.
        n_examples: examples per (task, length).
        seed: evaluation-set seed.
        alignment: ``relative`` or ``absolute`` (see the module docstring).
        batch_size: rows per forward pass.

    Returns:
        Tidy frame with one row per pair and head: ``task_a, task_b, layer, head, attn_diff,
        attn_diff_per_query, n_lengths``.
    """
    if alignment not in ALIGNMENTS:
        raise unknown_choice("alignment", alignment, ALIGNMENTS)
    if len(tasks) < 2:
        raise InterpError("an attention difference needs at least two tasks")
    str_names = [t for t in tasks if isinstance(t, str)]
    if len(set(str_names)) != len(str_names):
        raise InterpError(f"duplicate tasks in {str_names}")
    names: list[str] = []
    for t in tasks:
        # Two batches of one task (e.g. different seeds) get distinct labels: copy, copy#2.
        base = _name(t)
        names.append(base if base not in names else f"{base}#{names.count(base) + 1}")
    pats = [
        _patterns_for(model, t, lengths, n_examples, seed, alignment, batch_size) for t in tasks
    ]
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    frames = []
    for i in range(len(tasks)):
        for k in range(i + 1, len(tasks)):
            if None in pats[i] or None in pats[k]:
                # A batch is one set of examples: compare it with each length of the other.
                keys = [(ka, kb) for ka in pats[i] for kb in pats[k]]
            else:
                keys = [(L, L) for L in pats[i] if L in pats[k]]
            if not keys:
                raise InterpError(f"tasks {names[i]!r} and {names[k]!r} share no length")
            sums, per_q = [], []
            for ka, kb in keys:
                (pa, ca), (pb, cb) = pats[i][ka], pats[k][kb]
                if alignment == "absolute" and pa.shape != pb.shape:
                    raise InterpError(
                        f"absolute alignment needs equal layouts, but {names[i]!r} and "
                        f"{names[k]!r} have {pa.shape[-1]} and {pb.shape[-1]} positions; use "
                        "alignment='relative'"
                    )
                d, n_q = pattern_difference(pa, pb, ca, cb)
                sums.append(d)
                per_q.append(d / max(n_q, 1))
            frames.append(
                pd.DataFrame(
                    {
                        "task_a": names[i],
                        "task_b": names[k],
                        "layer": np.repeat(np.arange(n_layers), n_heads),
                        "head": np.tile(np.arange(n_heads), n_layers),
                        "attn_diff": torch.stack(sums).mean(0).flatten().double().numpy(),
                        "attn_diff_per_query": torch.stack(per_q)
                        .mean(0)
                        .flatten()
                        .double()
                        .numpy(),
                        "n_lengths": len(keys),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def attention_difference(
    model: HookedTransformer,
    a: str | Batch,
    b: str | Batch,
    *,
    lengths: Sequence[int] | None = None,
    n_examples: int = 256,
    seed: int = 0,
    alignment: str = "relative",
    batch_size: int = 256,
) -> pd.DataFrame:
    """The attention-matrix difference of every head between two tasks.

    Same as :func:`attention_table` for one pair: a tidy frame with ``task_a, task_b, layer,
    head, attn_diff, attn_diff_per_query, n_lengths``.
    """
    return attention_table(
        model,
        [a, b],
        lengths,
        n_examples=n_examples,
        seed=seed,
        alignment=alignment,
        batch_size=batch_size,
    )
