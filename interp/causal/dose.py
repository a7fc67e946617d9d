"""Dose-matched graded ablation: compare head sets at equal damage to competence.

:mod:`interp.causal.head_sets` separates transfer from competence statistically, by a fit across all
sets. This module does it by design. Each head set is ablated *gradually*: its heads' outputs
become ``z <- (1 - a) z + a * mean`` (``a = 0`` is the clean model, ``a = 1`` mean ablation),
and for every set the strength ``a`` is found by bisection so that the set removes the same
fraction of the main task's clean-correct examples in its training range, ``d_ID = target``
(0.2 by default). At that matched dose, ``d_T`` (the fraction lost in the transfer range) is
compared between set types. If transfer runs through the heads the main task shares with its
auxiliary, *shared* sets should cost more transfer than *main-only* sets at the same damage
to competence.

**Set types, by a rule fixed before looking at any ablation result.** From the two head maps
(mean ablation, ``frac_lost``, both scored on the main task's training lengths, on examples
disjoint from the measured ones), ``M`` is the top-``k`` heads of the main map and ``A`` the
top-``k`` of the auxiliary map (several auxiliaries: their normalised maps averaged). The
types are ``shared = M & A``, ``main_only = M - A`` and ``aux_only = A - M``; every non-empty
subset of up to ``max_size`` heads of a type is one set of that type.

**Reachability.** ``d_ID(a)`` need not reach the target (a set that cannot break 20% of the
task even at ``a = 1``): such a set is kept at ``a = 1`` and marked ``reached = False``; the
summary reports both the matched sets and all sets. Bisection assumes ``d_ID`` grows with
``a``; it ends at whichever bracket end is closer to the target, and ``d_id`` records the dose
actually delivered. All sets are bisected together: each step is one batched pass per range
(:func:`interp.causal.head_sets.ablate_sets` with a per-set ``alpha``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.causal.head_sets import ablate_sets
from interp.causal.set_trie import Head
from interp.core.errors import InterpError
from interp.tasks.batches import Batch, task_batch

SET_TYPES = ("shared", "main_only", "aux_only")
TARGET = 0.2
"""The pre-declared matched dose: 20% of the clean-correct training-range examples lost."""


def fraction_lost(
    model: HookedTransformer,
    batch: Batch,
    sets: Sequence[tuple[Head, ...]],
    alpha: Float[Tensor, " set"] | Sequence[float],
    batch_size: int = 4096,
) -> tuple[Float[np.ndarray, " set"], int]:
    """Per set: the fraction of ``batch``'s clean-correct examples lost at strength ``alpha``.

    Returns:
        ``(fractions, n_clean_correct)``; fractions are NaN when the clean model solves none.
    """
    em, _, cem, _ = ablate_sets(model, batch, sets, batch_size, alpha=alpha)
    n_ok = int(cem.sum())
    if n_ok == 0:
        return np.full(len(sets), np.nan), 0
    return ((cem[None] & ~em).sum(1).double() / n_ok).numpy(), n_ok


def match_dose(
    model: HookedTransformer,
    batch: Batch,
    sets: Sequence[tuple[Head, ...]],
    target: float = TARGET,
    iters: int = 10,
    batch_size: int = 4096,
) -> pd.DataFrame:
    """Bisect each set's strength ``a`` so that its ``d_ID`` on ``batch`` is ``target``.

    Returns:
        One row per set: ``alpha``, ``d_id`` (delivered at ``alpha``), ``d_id_full`` (at
        ``a = 1``) and ``reached`` (``d_id_full >= target``).

    Raises:
        InterpError: a target outside ``(0, 1]`` or a clean model that solves no example.
    """
    if not 0 < target <= 1:
        raise InterpError(f"target must be in (0, 1], got {target!r}")
    n = len(sets)
    full, n_ok = fraction_lost(model, batch, sets, torch.ones(n, device="cpu"), batch_size)
    if n_ok == 0:
        raise InterpError("the clean model solves no training-range example: no dose to match")
    lo, hi = np.zeros(n), np.ones(n)
    d_lo, d_hi = np.zeros(n), full.copy()
    reached = full >= target
    for _ in range(iters):
        if not reached.any():
            break
        mid = np.where(reached, (lo + hi) / 2, 1.0)
        d, _ = fraction_lost(model, batch, sets, torch.from_numpy(mid), batch_size)
        up = reached & (d >= target)
        down = reached & ~up
        hi, d_hi = np.where(up, mid, hi), np.where(up, d, d_hi)
        lo, d_lo = np.where(down, mid, lo), np.where(down, d, d_lo)
    use_lo = reached & (np.abs(d_lo - target) < np.abs(d_hi - target))
    return pd.DataFrame(
        {
            "alpha": np.where(use_lo, lo, hi),
            "d_id": np.where(use_lo, d_lo, d_hi),
            "d_id_full": full,
            "reached": reached,
        }
    )


def typed_sets(
    ranking: pd.DataFrame, k: int = 4, max_size: int = 2
) -> list[tuple[str, tuple[Head, ...]]]:
    """The pre-declared sets (module docstring) from a
    :func:`interp.causal.top_k.shared_head_ranking` frame (its ``main_norm`` and ``aux_norm``).

    Returns:
        ``(type, heads)`` pairs, types in :data:`SET_TYPES` order, heads sorted.
    """
    n = len(ranking)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise InterpError(f"k must be an integer in 1..{n}, got {k!r}")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise InterpError(f"max_size must be a positive integer, got {max_size!r}")

    def top(col: str) -> set[Head]:
        r = ranking.sort_values([col, "layer", "head"], ascending=[False, True, True])
        return {(int(a), int(b)) for a, b in zip(r["layer"][:k], r["head"][:k], strict=True)}

    M, A = top("main_norm"), top("aux_norm")
    classes = {"shared": M & A, "main_only": M - A, "aux_only": A - M}
    out = []
    for t in SET_TYPES:
        heads = sorted(classes[t])
        for size in range(1, min(max_size, len(heads)) + 1):
            out += [(t, s) for s in combinations(heads, size)]
    return out


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per set type: mean ``d_T`` at the matched dose over the sets that reached it, and over
    all sets (descriptive; sets of a run share heads, so there is no test within a run)."""
    rows = []
    for t in SET_TYPES:
        sub = df[df["type"] == t]
        ok = sub[sub["reached"]]
        rows.append(
            {
                "type": t,
                "n_sets": len(sub),
                "n_reached": len(ok),
                "d_id_matched": float(ok["d_id"].mean()) if len(ok) else np.nan,
                "d_t_matched": float(ok["d_t"].mean()) if len(ok) else np.nan,
                "d_t_all": float(sub["d_t"].mean()) if len(sub) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def dose_matched(
    model: HookedTransformer,
    main: str,
    aux: str | Sequence[str],
    main_range: tuple[int, int],
    transfer_range: tuple[int, int],
    n_examples: int = 128,
    seed: int = 0,
    k: int = 4,
    max_size: int = 2,
    target: float = TARGET,
    iters: int = 10,
    batch_size: int = 4096,
    scores: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dose-matched comparison at one checkpoint (module docstring).

    Args:
        model: the model.
        main: main task.
        aux: auxiliary task(s).
        main_range: the main task's training lengths ``(lo, hi)``.
        transfer_range: ``(main_max + 1, aux_max)``.
        n_examples: examples per length.
        seed: evaluation-set seed of the maps; the doses are measured on disjoint sets
            (``seed + MEASURE_SEED_OFFSET``).
        k: top-k of each map.
        max_size: largest subset of a type ablated together.
        target: the matched ``d_ID``.
        iters: bisection steps (the strength is found to within ``2**-iters``).
        batch_size: rows per forward pass.
        scores: mean-ablation ``frac_lost`` maps of main and every auxiliary on the main
            range (default: scored here).

    Returns:
        ``(sets, summary)``: one row per set (``type, heads, size, alpha, d_id, d_id_full,
        reached, d_t, d_t_full``) and :func:`summarise`.
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
        scores = pd.concat(
            [
                score_heads(model, t, "mean_ablation", "frac_lost", lengths=id_L,
                            n_examples=n_examples, seed=seed, batch_size=batch_size)
                for t in [main, *aux]
            ],
            ignore_index=True,
        )  # fmt: skip
    typed = typed_sets(shared_head_ranking(scores, main, aux), k, max_size)
    cols = ["type", "heads", "size", "alpha", "d_id", "d_id_full", "reached", "d_t", "d_t_full"]
    if not typed:
        return pd.DataFrame(columns=cols), summarise(pd.DataFrame(columns=cols))
    sets = [s for _, s in typed]
    m_seed = seed + MEASURE_SEED_OFFSET
    b_id = task_batch(model, main, id_L, n_examples, m_seed)
    b_t = task_batch(model, main, t_L, n_examples, m_seed)
    df = match_dose(model, b_id, sets, target, iters, batch_size)
    alpha = torch.tensor(df["alpha"].to_numpy(), device="cpu")
    df["d_t"], _ = fraction_lost(model, b_t, sets, alpha, batch_size)
    full = torch.ones(len(sets), device="cpu")
    df["d_t_full"], _ = fraction_lost(model, b_t, sets, full, batch_size)
    df.insert(0, "size", [len(s) for s in sets])
    df.insert(0, "heads", [",".join(f"L{la}H{h}" for la, h in s) for s in sets])
    df.insert(0, "type", [t for t, _ in typed])
    return df[cols], summarise(df)
