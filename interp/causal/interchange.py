"""Cross-task interchange patching: does a head carry the auxiliary's computation into the main
task at lengths the main task never saw?

For a task pair whose prompts share their operand layout (arithmetic group A: reverse add, no
carry and carry only all read ``a+b=`` and answer ``L + 1`` digits), the *source* run is the
main task's own example with only its task-identity token swapped for the auxiliary's
(``<add> 85+76=`` becomes ``<nocarry> 85+76=``): identical operands, identical positions, and
the same teacher-forced answer tokens, so the two runs differ in nothing but which task the
model was told to do. Head ``h``'s output (``hook_z``, every position) is taken from the source
run and patched into the main run, one head at a time, at the transfer lengths; the effect is
the change in the main task's exact match and answer log-probability:

``effect = metric(main run with head h from the aux prompt) - metric(main run)``.

A head whose output does not depend on which task is asked (an operand-alignment head both tasks
use) gives 0; a head carrying task-specific computation moves the main answer (towards the
auxiliary's answer, usually down). Keeping the main answer as the teacher-forced continuation
means the patched ``z`` at answer positions was computed on the same context tokens, not on the
auxiliary's (different) answer digits. Patching from the main prompt itself is an exact no-op
(tested). The per-head passes reuse :mod:`interp.scoring.heads`'s batched activation-patching sweep.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from transformer_lens import HookedTransformer

from interp.core.device import default_batch_size, model_device
from interp.core.errors import InterpError
from interp.models.head_mask import refuse_masked
from interp.tasks import get_task
from interp.tasks.batches import Batch, layout_groups, row_chunks, task_batch
from interp.tasks.vocab import VOCAB

TASK_TOKEN_POS = 1
"""Position of the task-identity token: ``<bos>`` is position 0."""


def swap_task_token(batch: Batch, main: str, aux: str) -> Batch:
    """``batch`` (all examples of ``main``) with the task-identity token replaced by ``aux``'s.

    Raises:
        InterpError: a batch holding other tasks, tasks without task tokens, or an auxiliary
            whose prompts do not share the main task's layout at the batch's lengths.
    """
    tm, ta = get_task(main), get_task(aux)
    if set(batch.tasks) != {main}:
        raise InterpError(f"interchange needs a batch of {main!r} only, got {set(batch.tasks)}")
    if not (tm.task_token and ta.task_token and tm.token and ta.token):
        raise InterpError("interchange patching swaps task-identity tokens; these tasks have none")
    rng = np.random.default_rng(0)
    for L in sorted(set(batch.lengths.tolist())):
        em, ea = tm.sample(int(L), rng), ta.sample(int(L), rng)
        if len(em.prompt) != len(ea.prompt) or len(em.target) != len(ea.target):
            raise InterpError(
                f"{aux!r} does not share {main!r}'s operand layout at length {L} (prompt or "
                "answer lengths differ): no interchange with identical operands"
            )
    id_m, id_a = VOCAB.encode([tm.token, ta.token])
    tokens = batch.tokens.clone()
    if not bool((tokens[:, TASK_TOKEN_POS] == id_m).all()):
        raise InterpError(f"not every row starts with {main!r}'s task token {tm.token}")
    tokens[:, TASK_TOKEN_POS] = id_a
    return Batch(
        tokens, batch.answer_mask, batch.prompt_len, batch.seq_len, batch.lengths, batch.tasks
    )


@torch.no_grad()
def interchange_batch(
    model: HookedTransformer,
    batch: Batch,
    source: Batch,
    metric: str = "exact_match",
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Patch each head's ``z`` from ``source`` into ``batch`` (same layouts, row by row).

    Returns:
        ``(patched, clean, source_metric)``: per ``[layer, head, row]`` the metric of ``batch``
        with that head patched, and per row the metric of ``batch`` and of ``source`` (both
        scored on ``batch``'s answers; ``source`` holds them too).
    """
    from interp.scoring.heads import patching_chunk as patching_chunk

    if source.tokens.shape != batch.tokens.shape or not torch.equal(
        source.answer_mask, batch.answer_mask
    ):
        raise InterpError("source and batch must have identical layouts, row by row")
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    batch_size = batch_size or default_batch_size(model_device(model))
    cpu = torch.device("cpu")  # the tables; each chunk's scores are moved here
    patched = torch.empty((n_layers, n_heads, len(batch)), dtype=torch.float64, device=cpu)
    clean = torch.empty(len(batch), dtype=torch.float64, device=cpu)
    src_m = torch.empty(len(batch), dtype=torch.float64, device=cpu)
    for rows_all in layout_groups(batch).values():
        for c in row_chunks(len(rows_all), max(1, batch_size // n_heads)):
            rows = rows_all[c]
            # patching_chunk patches its first batch's z into its second batch's run.
            diff, s, cl = patching_chunk(model, source.select(rows), batch.select(rows), metric)
            patched[:, :, rows] = (diff + cl[None, None]).cpu()
            clean[rows], src_m[rows] = cl.cpu(), s.cpu()
    return patched, clean, src_m


def interchange_scores(
    model: HookedTransformer,
    main: str,
    aux: str | Sequence[str],
    lengths: Sequence[int],
    n_examples: int = 128,
    seed: int = 0,
    metrics: Sequence[str] = ("exact_match", "logprob"),
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Per head, auxiliary and metric: the effect on the main task of the head's output from
    the auxiliary prompt with the same operands (module docstring), at ``lengths``.

    Returns:
        One row per ``(aux, metric, layer, head)``: ``effect`` (patched minus main, mean over
        examples), ``main`` (the main task's clean metric), ``source`` (the metric of the
        swapped-token run on the main answers), ``n`` and ``lengths`` (``lo-hi``).
    """
    aux = [aux] if isinstance(aux, str) else list(aux)
    if getattr(model, "tokenizer", None) is not None:
        raise InterpError("interchange patching swaps the package's task tokens; this model "
                          "reads a pretrained tokenizer's text")  # fmt: skip
    refuse_masked(model, "interchange patching")
    batch = task_batch(model, main, lengths, n_examples, seed)
    frames = []
    for a in aux:
        src = swap_task_token(batch, main, a)
        for metric in metrics:
            patched, clean, s = interchange_batch(model, batch, src, metric, batch_size)
            eff = (patched - clean[None, None]).mean(-1).numpy()
            L, H = eff.shape
            frames.append(
                pd.DataFrame(
                    {
                        "aux": a,
                        "metric": metric,
                        "layer": np.repeat(np.arange(L), H),
                        "head": np.tile(np.arange(H), L),
                        "effect": eff.ravel(),
                        "main": float(clean.mean()),
                        "source": float(s.mean()),
                        "n": len(batch),
                        "lengths": f"{min(lengths)}-{max(lengths)}",
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)
