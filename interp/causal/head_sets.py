"""A causal test that separates transfer from competence: ablate every small head set.

The top-k shared-head test (:mod:`interp.causal.top_k`) cannot tell "these heads carry transfer"
from
"these heads are needed for the task at all": a set that breaks the main task inside its
training range removes transfer too. This module asks a sharper question. At a run's final
checkpoint it ablates **every** set of 1..``max_size`` heads (696 sets for 16 heads at size 3)
and records, for each set,

* ``d_id``: the fraction of the main task's clean-correct examples in its training range that
  the ablation breaks (the damage to competence), and
* ``d_t``: the same in the transfer range (the damage to transfer),

plus the mean answer log-probability drop in each range. Across all sets, ``d_t`` is then
modelled as a smooth function of ``d_id`` (a cubic polynomial, fitted by least squares): the
expected damage to transfer *given* the damage to competence. A set's **transfer-specific
effect** is its residual. If transfer runs through the heads the main task shares with its
auxiliary, sets of more-shared heads should have larger residuals: the per-run summary is the
slope of the residual on the set's sharedness (the mean of its heads' ``shared`` score from
:func:`interp.causal.top_k.shared_head_ranking`, scored on *other* examples than those measured).

Sets overlap (a head is in many sets), so the sets of one run are not independent units and no
p-value is computed from them. The slope is one number per run; runs are combined with the
sign-flip test of :mod:`interp.stats.within` (related runs should show a positive slope, control
runs
none).

**Speed.** The residual stream entering layer ``l`` depends only on the set's heads in layers
below ``l``, so sets that agree there share it. The sets therefore form a trie over the layers:
a node at layer ``l`` is a distinct non-empty set of heads in layers ``<= l`` (a prefix of at
least one set), and its output (the stream entering ``l + 1``) is one pass of layer ``l`` alone
on its parent's output, or on the clean stream cached by the group's one clean pass if the
parent prefix is empty. Only the last layer is run to logits, once per set. For 16 heads in 4
layers at size <= 3 that is 14 + 92 + 298 + 696 = 1100 single-layer passes per example, against
2380 when each set reruns every layer from its lowest one, or 2784 for a plain per-set forward:
the early layers, where most sets agree, are computed once for many sets. The trie is walked
depth-first so only one path's outputs are held at once (memory stays at a few passes), and the
children of one node are evaluated together in one pass (the parent's output stacked once per
child, each replica with its own heads ablated), which keeps passes large. With
``alpha`` a node also carries its set's strength: sets of different strength share no prefix.

Most of a child's layer pass repeats its parent's work anyway: ablating a head replaces only its
``z``, and the attention pattern and every head's ``z`` depend only on the layer's input, which
the children of a node share. So for the plain pre-norm block (:mod:`interp.causal.set_trie`, which
falls back to the full layer pass for any other wiring) the attention is run once per parent
and each child redoes only what reads its ``z``: the output projection and the MLP. At the
last layer, which holds most nodes (696 of 1100), every position acts alone after the
attention, so the MLP and the unembedding run only at the positions whose logits are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from interp.causal.set_trie import CLEAN, Head, TrieWalk, plan_trie
from interp.core.device import model_device
from interp.core.errors import InterpError
from interp.models.architecture import check_head
from interp.scoring.ablation import reference_mean
from interp.scoring.evaluate import answer_logprob_from_logits, exact_match_from_logits
from interp.tasks.batches import Batch, layout_groups, task_batch


def all_head_sets(n_layers: int, n_heads: int, max_size: int = 3) -> list[tuple[Head, ...]]:
    """Every set of 1..``max_size`` heads, smaller sets first, each sorted by (layer, head)."""
    heads = [(layer, h) for layer in range(n_layers) for h in range(n_heads)]
    if not 1 <= max_size <= len(heads):
        raise InterpError(f"max_size must be in 1..{len(heads)}, got {max_size!r}")
    return [s for k in range(1, max_size + 1) for s in combinations(heads, k)]


@torch.no_grad()
def ablate_sets(
    model: HookedTransformer,
    batch: Batch,
    sets: Sequence[tuple[Head, ...]],
    batch_size: int = 2048,
    alpha: Float[Tensor, " set"] | Sequence[float] | None = None,
) -> tuple[Bool[Tensor, "set batch"], Float[Tensor, "set batch"], Bool[Tensor, " batch"],
           Float[Tensor, " batch"]]:  # fmt: skip
    """Mean-ablate each head set (all its heads at once) and score every example.

    Means are per layout group of ``batch`` itself, exactly as
    :func:`interp.scoring.ablation.ablate_heads`
    with ``method="mean"``; the results agree with it set by set.

    Args:
        model: the model.
        batch: examples (any tasks and lengths).
        sets: head sets, each a sequence of ``(layer, head)``.
        batch_size: most rows (replicas x examples) in one forward pass.
        alpha: graded ablation, one strength per set in ``[0, 1]``: the set's heads get
            ``(1 - a) z + a mean`` (default: ``a = 1``, plain mean ablation).

    Returns:
        ``(exact_match, logprob, clean_exact_match, clean_logprob)``: per set and example, and
        the clean model's per example, on the CPU.
    """
    n_layers = model.cfg.n_layers
    for s in sets:
        for layer, h in s:
            check_head(model.cfg, layer, h)
    dev = model_device(model)
    if alpha is not None:
        alpha = torch.as_tensor(alpha, dtype=torch.float64, device="cpu").flatten()
        if alpha.shape != (len(sets),) or not bool(((alpha >= 0) & (alpha <= 1)).all()):
            raise InterpError(f"alpha needs one value in [0, 1] per set ({len(sets)} sets)")
    children, leaves = plan_trie(sets, n_layers, None if alpha is None else alpha.tolist())
    # The tables live on the model's device, where every score is computed: an index-put moves
    # its value across devices only when it is a scalar, so CPU tables would fail on a GPU (and
    # filling them there would sync once per set). They come back to the CPU once, at the end.
    empty = torch.tensor([i for i, s in enumerate(sets) if not s], dtype=torch.long, device=dev)
    em = torch.empty((len(sets), len(batch)), dtype=torch.bool, device=dev)
    lp = torch.empty((len(sets), len(batch)), device=dev)
    clean_em = torch.empty(len(batch), dtype=torch.bool, device=dev)
    clean_lp = torch.empty(len(batch), device=dev)
    names = {get_act_name("resid_pre", layer) for layer in range(n_layers)}
    for key, rows_cpu in layout_groups(batch).items():
        sub = batch.select(rows_cpu).to(dev)
        rows = rows_cpu.to(dev)
        need = int(sub.seq_len.max()) - 1
        mean = reference_mean(model, key, need, sub, batch_size)  # [layer, pos, head, d_head]
        logits, cache = model.run_with_cache(sub.tokens, names_filter=lambda n: n in names)
        clean_em[rows] = exact_match_from_logits(logits, sub)
        clean_lp[rows] = answer_logprob_from_logits(logits, sub).float()
        em[empty[:, None], rows[None]] = clean_em[rows]
        lp[empty[:, None], rows[None]] = clean_lp[rows]
        walk = TrieWalk(model, sub, rows, mean, children, leaves, batch_size, em, lp)
        for layer in range(n_layers):
            walk.expand(layer, CLEAN, cache[get_act_name("resid_pre", layer)])
    return em.cpu(), lp.cpu(), clean_em.cpu(), clean_lp.cpu()


def set_effects(
    model: HookedTransformer,
    batches: dict[str, Batch],
    sets: Sequence[tuple[Head, ...]],
    batch_size: int = 4096,
) -> pd.DataFrame:
    """Per set and range: the fraction of clean-correct examples lost and the log-prob drop.

    Args:
        model: the model.
        batches: ``{"id": training-range batch, "t": transfer-range batch}`` (any names).
        sets: head sets.
        batch_size: rows per forward pass.

    Returns:
        One row per set: ``heads`` (``L0H1,L2H3``), ``size``, then for each range name ``r``:
        ``d_<r>`` (fraction of the clean-correct examples that the ablation breaks; NaN when the
        clean model solves none), ``lp_<r>`` (mean log-prob drop) and ``clean_<r>`` (clean
        correct count).
    """
    out = pd.DataFrame(
        {
            "heads": [",".join(f"L{la}H{h}" for la, h in s) for s in sets],
            "size": [len(s) for s in sets],
        }
    )
    for name, batch in batches.items():
        em, lp, cem, clp = ablate_sets(model, batch, sets, batch_size)
        n_ok = int(cem.sum())
        lost = (cem[None] & ~em).sum(1).double()
        out[f"d_{name}"] = (lost / n_ok).numpy() if n_ok else np.nan
        out[f"lp_{name}"] = (clp[None] - lp).mean(1).double().numpy()
        out[f"clean_{name}"] = n_ok
    return out


def sharedness(
    sets: Sequence[tuple[Head, ...]], ranking: pd.DataFrame
) -> Float[np.ndarray, " set"]:
    """Mean ``shared`` score (:func:`interp.causal.top_k.shared_head_ranking`) of each set's
    heads."""
    shared = {(int(r.layer), int(r.head)): float(r.shared) for r in ranking.itertuples()}
    return np.array([np.mean([shared[h] for h in s]) for s in sets])


def transfer_specific(
    d_id: Sequence[float], d_t: Sequence[float], degree: int = 3
) -> Float[np.ndarray, " set"]:
    """Residual of ``d_t`` after a least-squares polynomial in ``d_id`` (the expected damage to
    transfer given the damage to competence); NaN where either is missing."""
    x, y = np.asarray(d_id, float), np.asarray(d_t, float)
    ok = np.isfinite(x) & np.isfinite(y)
    res = np.full(len(x), np.nan)
    if ok.sum() <= degree + 1:
        return res
    coef = np.polyfit(x[ok], y[ok], min(degree, len(np.unique(x[ok])) - 1))
    res[ok] = y[ok] - np.polyval(coef, x[ok])
    return res


def residual_slope(residual: Sequence[float], share: Sequence[float]) -> float:
    """Least-squares slope of the transfer-specific residual on sharedness (one run's summary;
    descriptive: sets overlap, so no test is computed from them)."""
    r, s = np.asarray(residual, float), np.asarray(share, float)
    ok = np.isfinite(r) & np.isfinite(s)
    if ok.sum() < 3 or np.ptp(s[ok]) == 0:
        return float("nan")
    return float(np.polyfit(s[ok], r[ok], 1)[0])


def causal_sets(
    model: HookedTransformer,
    main: str,
    aux: str | Sequence[str],
    main_range: tuple[int, int],
    transfer_range: tuple[int, int],
    n_examples: int = 128,
    seed: int = 0,
    max_size: int = 3,
    batch_size: int = 4096,
    scores: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The whole test at one checkpoint (module docstring).

    Heads are ranked by sharedness on the evaluation sets with ``seed`` (or from ``scores``);
    the ablations are measured on disjoint sets (``seed + MEASURE_SEED_OFFSET``).

    Returns:
        ``(sets, summary)``: one row per set (:func:`set_effects` columns plus ``shared`` and
        ``residual``), and ``{"slope": ..., "n_sets": ..., "clean_id": ..., "clean_t": ...}``.
    """
    from interp.causal.top_k import (
        MEASURE_SEED_OFFSET,
        shared_head_ranking,
    )
    from interp.causal.top_k import (
        range_lengths as range_lengths,
    )
    from interp.scoring.heads import score_heads

    aux = [aux] if isinstance(aux, str) else list(aux)
    id_L = range_lengths(main, main_range, "main_range")
    t_L = range_lengths(main, transfer_range, "transfer_range")
    if scores is None:
        parts = [score_heads(model, main, lengths=id_L, n_examples=n_examples, seed=seed)]
        for a in aux:
            # One definition of sharedness everywhere: every task on the main training range.
            a_L = range_lengths(a, main_range, "aux_range")
            parts.append(score_heads(model, a, lengths=a_L, n_examples=n_examples, seed=seed))
        scores = pd.concat(parts, ignore_index=True)
    ranking = shared_head_ranking(scores, main, aux)
    sets = all_head_sets(model.cfg.n_layers, model.cfg.n_heads, max_size)
    m_seed = seed + MEASURE_SEED_OFFSET
    batches = {
        "id": task_batch(model, main, id_L, n_examples, m_seed),
        "t": task_batch(model, main, t_L, n_examples, m_seed),
    }
    df = set_effects(model, batches, sets, batch_size)
    df["shared"] = sharedness(sets, ranking)
    df["residual"] = transfer_specific(df["d_id"], df["d_t"])
    summary = {
        "slope": residual_slope(df["residual"], df["shared"]),
        "n_sets": float(len(df)),
        "clean_id": float(df["clean_id"].iloc[0]),
        "clean_t": float(df["clean_t"].iloc[0]),
    }
    return df, summary
