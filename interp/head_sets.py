"""A causal test that separates transfer from competence: ablate every small head set.

The top-k shared-head test (:mod:`interp.causal`) cannot tell "these heads carry transfer" from
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
:func:`interp.causal.shared_head_ranking`, scored on *other* examples than those measured).

Sets overlap (a head is in many sets), so the sets of one run are not independent units and no
p-value is computed from them. The slope is one number per run; runs are combined with the
sign-flip test of :mod:`interp.within` (related runs should show a positive slope, control runs
none).

**Speed.** All sets share one clean pass per layout group, which caches every layer's residual
stream input. A set whose lowest layer is ``l`` only changes layers ``l..``, so the sets are
grouped by lowest layer, the cached ``resid_pre`` of that layer is replicated once per set in a
chunk, and one forward pass from layer ``l`` evaluates the whole chunk with a per-replica head
mask on ``hook_z`` (replica ``s`` has the heads of set ``s`` replaced by their mean). Only the
answer positions are unembedded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from interp.ablation import reference_mean
from interp.data import Batch, layout_groups, repeat_batch, row_chunks, task_batch
from interp.errors import InterpError
from interp.evaluate import answer_logprob_from_logits, exact_match_from_logits

Head = tuple[int, int]


def all_head_sets(n_layers: int, n_heads: int, max_size: int = 3) -> list[tuple[Head, ...]]:
    """Every set of 1..``max_size`` heads, smaller sets first, each sorted by (layer, head)."""
    heads = [(layer, h) for layer in range(n_layers) for h in range(n_heads)]
    if not 1 <= max_size <= len(heads):
        raise InterpError(f"max_size must be in 1..{len(heads)}, got {max_size!r}")
    return [s for k in range(1, max_size + 1) for s in combinations(heads, k)]


def _masks(
    sets: Sequence[tuple[Head, ...]], n_layers: int, n_heads: int
) -> Bool[Tensor, "set layer head"]:
    m = torch.zeros((len(sets), n_layers, n_heads), dtype=torch.bool)
    for i, s in enumerate(sets):
        for layer, h in s:
            m[i, layer, h] = True
    return m


def _mask_hook(
    mask: Bool[Tensor, "set head"],
    mean: Float[Tensor, "pos head d_head"],
    b: int,
    alpha: Float[Tensor, " set"] | None = None,
) -> Callable[[Float[Tensor, "rb pos head d_head"], object], Float[Tensor, "rb pos head d_head"]]:
    """Hook on one layer's ``hook_z`` for a batch of ``b`` rows stacked once per set: set ``i``'s
    replica gets the heads in ``mask[i]`` replaced by their reference means, or with ``alpha``
    moved the fraction ``alpha[i]`` of the way there: ``(1 - a) z + a mean`` (exactly ``z`` at
    ``a = 0`` and exactly the mean at ``a = 1``)."""

    def hook(
        z: Float[Tensor, "rb pos head d_head"], hook: object
    ) -> Float[Tensor, "rb pos head d_head"]:
        S = mask.shape[0]
        zz = z.view(S, b, *z.shape[1:])
        m = mask[:, None, None, :, None]
        rep = mean[None, None, : z.shape[1]].to(z.dtype)
        if alpha is not None:
            a = alpha.to(z.device, z.dtype)[:, None, None, None, None]
            rep = (1 - a) * zz + a * rep
        return torch.where(m, rep, zz).view_as(z)

    return hook


@torch.no_grad()
def ablate_sets(
    model: HookedTransformer,
    batch: Batch,
    sets: Sequence[tuple[Head, ...]],
    batch_size: int = 4096,
    alpha: Float[Tensor, " set"] | Sequence[float] | None = None,
) -> tuple[Bool[Tensor, "set batch"], Float[Tensor, "set batch"], Bool[Tensor, " batch"],
           Float[Tensor, " batch"]]:  # fmt: skip
    """Mean-ablate each head set (all its heads at once) and score every example.

    Means are per layout group of ``batch`` itself, exactly as :func:`interp.heads.ablate_heads`
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
        the clean model's per example.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    for s in sets:
        for layer, h in s:
            if not (0 <= layer < n_layers and 0 <= h < n_heads):
                raise InterpError(f"head ({layer}, {h}) is outside the model")
    if alpha is not None:
        alpha = torch.as_tensor(alpha, dtype=torch.float64).flatten()
        if alpha.shape != (len(sets),) or not bool(((alpha >= 0) & (alpha <= 1)).all()):
            raise InterpError(f"alpha needs one value in [0, 1] per set ({len(sets)} sets)")
    masks = _masks(sets, n_layers, n_heads)
    lowest = torch.tensor([min(layer for layer, _ in s) if s else n_layers for s in sets])
    em = torch.empty((len(sets), len(batch)), dtype=torch.bool)
    lp = torch.empty((len(sets), len(batch)))
    clean_em = torch.empty(len(batch), dtype=torch.bool)
    clean_lp = torch.empty(len(batch))
    names = {get_act_name("resid_pre", layer) for layer in range(n_layers)}
    for key, rows in layout_groups(batch).items():
        sub = batch.select(rows)
        need = int(sub.seq_len.max()) - 1
        mean = reference_mean(model, key, need, sub, batch_size)  # [layer, pos, head, d_head]
        logits, cache = model.run_with_cache(sub.tokens, names_filter=lambda n: n in names)
        clean_em[rows] = exact_match_from_logits(logits, sub)
        clean_lp[rows] = answer_logprob_from_logits(logits, sub).float()
        b = len(sub)
        per_pass = max(1, batch_size // b)
        for low in sorted(set(lowest.tolist())):
            idx = torch.nonzero(lowest == low).flatten()
            if low >= n_layers:  # the empty set: the clean model
                em[idx[:, None], rows[None]] = clean_em[rows]
                lp[idx[:, None], rows[None]] = clean_lp[rows]
                continue
            x0 = cache[get_act_name("resid_pre", low)]
            for c in row_chunks(len(idx), per_pass):
                sel = idx[c]
                S = len(sel)
                hooks = [
                    (
                        get_act_name("z", layer),
                        _mask_hook(
                            masks[sel, layer],
                            mean[layer],
                            b,
                            None if alpha is None else alpha[sel],
                        ),
                    )
                    for layer in range(low, n_layers)
                    if bool(masks[sel, layer].any())
                ]
                x = x0.repeat(S, 1, 1)
                out = model.run_with_hooks(x, start_at_layer=low, fwd_hooks=hooks)
                rep = repeat_batch(sub, S)
                em[sel[:, None], rows[None]] = exact_match_from_logits(out, rep).view(S, b)
                lp[sel[:, None], rows[None]] = (
                    answer_logprob_from_logits(out, rep).float().view(S, b)
                )
    return em, lp, clean_em, clean_lp


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
    """Mean ``shared`` score (:func:`interp.causal.shared_head_ranking`) of each set's heads."""
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
    from interp.causal import MEASURE_SEED_OFFSET, _range_lengths, shared_head_ranking
    from interp.heads import score_heads

    aux = [aux] if isinstance(aux, str) else list(aux)
    id_L = _range_lengths(main, main_range, "main_range")
    t_L = _range_lengths(main, transfer_range, "transfer_range")
    if scores is None:
        parts = [score_heads(model, main, lengths=id_L, n_examples=n_examples, seed=seed)]
        for a in aux:
            a_L = _range_lengths(a, (main_range[0], transfer_range[1]), "aux_range")
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
