"""Length generalization: exact-match accuracy per (task, length), and the paper's summary metrics.

**Exact match in one pass.** Greedy decoding reproduces the target iff, at every answer position,
the argmax of the logits *given the correct prefix* is the correct token: by induction, if every
teacher-forced prediction is right then greedy decoding follows the same prefix and emits the same
tokens, and the first wrong teacher-forced prediction is exactly where greedy decoding would
diverge. So one teacher-forced forward pass (:func:`exact_match`) gives the same per-example
result as autoregressive greedy decoding (:func:`greedy_decode`), at a fraction of the cost. The
test suite checks the two agree example by example on trained models.

**Generalization gap** (0..1, 0 = identical curves). For a main task trained up to ``L_main`` and
auxiliaries trained up to ``L_aux > L_main``, compare accuracy curves over the *transfer range*
``L_main < L <= L_aux``::

    gap = mean_{L in transfer range} max(0, acc_aux(L) - acc_main(L)) / max(acc_aux(L), eps)

averaged over lengths where the auxiliary is itself solved (``acc_aux(L) >= 0.05``); with several
auxiliaries ``acc_aux`` is their mean. It is 0 when the main task is as accurate as the auxiliary
at every transfer length and 1 when the main task fails everywhere the auxiliary succeeds. It is
relative to the auxiliary so that an auxiliary that itself degrades with length does not count
against transfer. The paper gives no formula; this is the project's choice.

**Transfer strength**: the main task's mean accuracy over the transfer range minus that of the
same configuration trained without auxiliaries (a baseline run). Positive means the auxiliary
helped the main task extrapolate.

**Head masks.** A run trained with per-task head masks (``[[tasks]] heads``;
:mod:`interp.models.head_mask`) is evaluated masked with no argument here: the masks are part of the
model that :func:`interp.runs.loader.load_run` and training build, and each row's task token
selects its
heads.

**Devices.** Batches are built on the CPU and moved to the model's device chunk by chunk
(``batch_size`` rows per forward pass; by default 512 on a CPU and 8192 on a GPU, so a
1024-example evaluation set is one pass there); per-example results come back to the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.core.device import default_batch_size, model_device
from interp.tasks.base import transfer_range
from interp.tasks.batches import Batch, check_context, eval_batches, iter_minibatches
from interp.tasks.encoding import vocab_for

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

AUX_SOLVED = 0.05


def answer_logits(model: HookedTransformer, batch: Batch) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits of a teacher-forced pass, context-checked."""
    check_context(model, batch.n_pos, f"a batch of {sorted(set(batch.tasks))}")
    return model(batch.tokens)


def exact_match_from_logits(
    logits: Float[Tensor, "batch pos d_vocab"], batch: Batch
) -> Bool[Tensor, " batch"]:
    """Per-example exact match: every answer token is the argmax given the correct prefix.

    Computed on the logits' device (the batch's tensors are moved there if needed)."""
    pred = logits[:, :-1].argmax(-1)
    tokens, mask = batch.tokens.to(logits.device), batch.answer_mask.to(logits.device)
    ok = (pred == tokens[:, 1:]) | ~mask[:, 1:]
    return ok.all(-1)


def answer_logprob_from_logits(
    logits: Float[Tensor, "batch pos d_vocab"], batch: Batch
) -> Float[Tensor, " batch"]:
    """Per-example mean log-probability of the answer tokens (on the logits' device)."""
    logp = logits[:, :-1].log_softmax(-1)
    tok_lp = logp.gather(-1, batch.tokens[:, 1:, None].to(logits.device))[..., 0]
    m = batch.answer_mask[:, 1:].to(tok_lp.device, tok_lp.dtype)
    return (tok_lp * m).sum(-1) / m.sum(-1).clamp_min(1)


@torch.no_grad()
def exact_match(
    model: HookedTransformer, batch: Batch, chunk: int | None = None
) -> Bool[Tensor, " batch"]:
    """Teacher-forced exact match per example (one forward pass per chunk of rows; default
    chunk: the device's :func:`~interp.core.device.default_batch_size`), on the CPU."""
    chunk = chunk or default_batch_size(model_device(model))
    return torch.cat(
        [
            exact_match_from_logits(answer_logits(model, b), b).cpu()
            for b in iter_minibatches(batch, chunk)
        ]
    )


@torch.no_grad()
def greedy_decode(model: HookedTransformer, batch: Batch) -> Bool[Tensor, " batch"]:
    """Reference path: decode each answer token by token and compare with the target.

    Rows are grouped by prompt length so a batch decodes in lock-step; decoding runs for the
    longest target of the group (stopping early is not needed for an exact-match verdict).
    """
    out = torch.zeros(len(batch), dtype=torch.bool, device="cpu")  # filled from .cpu()
    dev = model_device(model)
    for p in batch.prompt_len.unique().tolist():
        rows = (batch.prompt_len == p).nonzero()[:, 0]
        sub = batch.select(rows).to(dev)
        tgt_len = (sub.seq_len - p).max().item()
        check_context(model, p + tgt_len, "greedy decoding")
        seq = sub.tokens[:, :p].clone()
        for _ in range(tgt_len):
            nxt = model(seq)[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
        gen = seq[:, p:]
        tgt = sub.tokens[:, p : p + tgt_len]
        valid = sub.answer_mask[:, p : p + tgt_len]
        out[rows] = ((gen == tgt) | ~valid).all(-1).cpu()
    return out


@torch.no_grad()
def accuracy_table(
    model: HookedTransformer,
    tasks: Sequence[str],
    lengths: dict[str, Sequence[int]] | Sequence[int],
    n_examples: int = 1024,
    seed: int = 0,
    progress: bool = False,
    batch_size: int | None = None,
    **labels: object,
) -> pd.DataFrame:
    """Exact-match accuracy per (task, length) on fixed seeded evaluation sets.

    Args:
        model: the model.
        tasks: task names.
        lengths: lengths to evaluate, per task or shared.
        n_examples: examples per (task, length).
        seed: evaluation-set seed.
        progress: show a progress bar.
        batch_size: rows per forward pass (default: the model device's
            :func:`~interp.core.device.default_batch_size`).
        **labels: constant columns to add (``step=...``, ``run=...``).

    Returns:
        Tidy frame with columns ``task, length, accuracy, n, logprob`` plus ``labels``.
    """
    model.eval()
    vocab, dev = vocab_for(model), model_device(model)
    batch_size = batch_size or default_batch_size(dev)
    jobs = [(t, L) for t in tasks for L in (lengths[t] if isinstance(lengths, dict) else lengths)]
    rows = []
    for t, L in tqdm(jobs, desc="eval", disable=not progress, leave=False):
        sets = eval_batches(t, [L], n_examples, seed, n_ctx=model.cfg.n_ctx, vocab=vocab)
        em, lp = [], []
        for b in iter_minibatches(sets[int(L)], batch_size):
            b = b.to(dev)
            logits = answer_logits(model, b)
            em.append(exact_match_from_logits(logits, b).cpu())
            lp.append(answer_logprob_from_logits(logits, b).cpu())
        em_t = torch.cat(em)
        rows.append(
            {
                **labels,
                "task": t,
                "length": int(L),
                "accuracy": em_t.float().mean().item(),
                "n": len(em_t),
                "logprob": torch.cat(lp).mean().item(),
            }
        )
    return pd.DataFrame(rows)


def _curve(acc: pd.DataFrame, tasks: Iterable[str]) -> pd.Series:
    sub = acc[acc["task"].isin(list(tasks))]
    return sub.groupby("length")["accuracy"].mean()


def generalization_gap(
    acc: pd.DataFrame, main: str, aux: Sequence[str], main_max: int, aux_max: int
) -> float:
    """The generalization gap (see the module docstring); NaN if no transfer length qualifies.

    Args:
        acc: accuracy table with ``task, length, accuracy`` (one checkpoint).
        main: main task.
        aux: auxiliary tasks.
        main_max: main task's training max length.
        aux_max: auxiliaries' training max length.
    """
    m = _curve(acc, [main])
    a = _curve(acc, aux)
    lo, hi = transfer_range(main_max, aux_max)
    Ls = [L for L in range(lo, hi + 1) if L in m.index and L in a.index]
    # A NaN main accuracy is "unknown", not "as good as the auxiliary": without the explicit
    # check, max(0.0, nan) would be 0.0 and count as perfect transfer at that length.
    vals = [max(0.0, a[L] - m[L]) / a[L] for L in Ls if a[L] >= AUX_SOLVED and not np.isnan(m[L])]
    return float(np.mean(vals)) if vals else float("nan")


def transfer_range_accuracy(acc: pd.DataFrame, task: str, lo: int, hi: int) -> float:
    """Mean accuracy of ``task`` over lengths ``lo..hi`` (inclusive)."""
    sub = acc[(acc["task"] == task) & acc["length"].between(lo, hi)]
    return float(sub["accuracy"].mean()) if len(sub) else float("nan")


def transfer_strength(
    acc: pd.DataFrame, baseline_acc: pd.DataFrame, main: str, main_max: int, aux_max: int
) -> float:
    """Main-task accuracy over ``main_max < L <= aux_max`` minus the no-auxiliary baseline's."""
    lo, hi = transfer_range(main_max, aux_max)
    return transfer_range_accuracy(acc, main, lo, hi) - transfer_range_accuracy(
        baseline_acc, main, lo, hi
    )


def decode_examples(model: HookedTransformer, batch: Batch, n: int = 5) -> list[str]:
    """Readable ``prompt -> teacher-forced prediction (target)`` lines for the first ``n`` rows."""
    out = []
    sub = batch.select(range(min(n, len(batch))))
    with torch.no_grad():
        logits = model(sub.tokens)
    pred = logits[:, :-1].argmax(-1).cpu()
    vocab = vocab_for(model)
    for i in range(len(sub)):
        p, s = int(sub.prompt_len[i]), int(sub.seq_len[i])
        out.append(
            f"{vocab.to_text(sub.tokens[i, 1:p])} -> {vocab.to_text(pred[i, p - 1 : s - 1])}"
            f"  (target {vocab.to_text(sub.tokens[i, p:s])})"
        )
    return out
