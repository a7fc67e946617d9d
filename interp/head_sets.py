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
child, each replica with its own head mask on ``hook_z``), which keeps passes large. With
``alpha`` a node also carries its set's strength: sets of different strength share no prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
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


Node = tuple[float | None, tuple[Head, ...]]
"""A trie node: ``(alpha, heads)``, the heads of a set in the layers so far and its strength."""
_CLEAN: Node = (None, ())
"""The parent of every node whose heads all lie in its own layer: the clean model."""


def plan_trie(
    sets: Sequence[tuple[Head, ...]],
    n_layers: int,
    alpha: Sequence[float] | None = None,
) -> tuple[list[dict[Node, list[Node]]], dict[Node, list[int]]]:
    """The trie of :func:`ablate_sets` (module docstring, "Speed").

    Args:
        sets: head sets (any order, duplicates allowed; empty sets are the clean model and get
            no node).
        n_layers: layers of the model.
        alpha: one strength per set, or None (plain mean ablation).

    Returns:
        ``(children, leaves)``: ``children[l][parent]`` lists the layer-``l`` nodes under
        ``parent`` (a layer ``l - 1`` node, or ``_CLEAN``) in order of first appearance, and
        ``leaves`` maps each last-layer node to the indices of the sets it scores.
    """
    children: list[dict[Node, dict[Node, None]]] = [{} for _ in range(n_layers)]
    leaves: dict[Node, list[int]] = {}
    for i, s in enumerate(sets):
        heads = tuple(sorted(set(s)))
        if not heads:
            continue
        a = None if alpha is None else float(alpha[i])
        parent = _CLEAN
        for layer in range(heads[0][0], n_layers):
            node = (a, tuple(h for h in heads if h[0] <= layer))
            children[layer].setdefault(parent, {})[node] = None
            parent = node
        leaves.setdefault(parent, []).append(i)
    return [{k: list(v) for k, v in c.items()} for c in children], leaves


def trie_sizes(
    sets: Sequence[tuple[Head, ...]], n_layers: int, alpha: Sequence[float] | None = None
) -> list[int]:
    """Nodes per layer of :func:`plan_trie`: the single-layer passes per example that
    :func:`ablate_sets` runs in each layer (``[14, 92, 298, 696]`` for every set of 1-3 of 16
    heads in 4 layers)."""
    children, _ = plan_trie(sets, n_layers, alpha)
    return [sum(len(v) for v in c.values()) for c in children]


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
    batch_size: int = 2048,
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
    children, leaves = plan_trie(sets, n_layers, None if alpha is None else alpha.tolist())
    empty = torch.tensor([i for i, s in enumerate(sets) if not s], dtype=torch.long)
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
        em[empty[:, None], rows[None]] = clean_em[rows]
        lp[empty[:, None], rows[None]] = clean_lp[rows]
        walk = _TrieWalk(model, sub, rows, mean, children, leaves, batch_size, em, lp)
        for layer in range(n_layers):
            walk.expand(layer, _CLEAN, cache[get_act_name("resid_pre", layer)])
    return em, lp, clean_em, clean_lp


class _TrieWalk:
    """Depth-first evaluation of one layout group's trie (module docstring, "Speed"); writes
    each set's scores into ``em`` and ``lp`` at the group's ``rows``."""

    def __init__(
        self,
        model: HookedTransformer,
        sub: Batch,
        rows: Int[Tensor, " b"],
        mean: Float[Tensor, "layer pos head d_head"],
        children: list[dict[Node, list[Node]]],
        leaves: dict[Node, list[int]],
        batch_size: int,
        em: Bool[Tensor, "set batch"],
        lp: Float[Tensor, "set batch"],
    ) -> None:
        self.model, self.sub, self.rows, self.mean = model, sub, rows, mean
        self.children, self.leaves, self.em, self.lp = children, leaves, em, lp
        self.b = len(sub)
        self.per_pass = max(1, batch_size // self.b)
        self.last = model.cfg.n_layers - 1
        self.reps: dict[int, Batch] = {}

    def expand(self, layer: int, parent: Node, x: Float[Tensor, "b pos d_model"]) -> None:
        """Evaluate the layer-``layer`` children of ``parent`` (whose output, the stream
        entering ``layer``, is ``x``), then their subtrees; at the last layer, score them."""
        kids = self.children[layer].get(parent, [])
        for c in row_chunks(len(kids), self.per_pass):
            chunk = [kids[i] for i in c.tolist()]
            S, b = len(chunk), self.b
            mask = torch.tensor(
                [[(layer, h) in heads for h in range(self.model.cfg.n_heads)] for _, heads in chunk]
            )  # [S, head]
            alpha = None if chunk[0][0] is None else torch.tensor([a for a, _ in chunk])
            hooks = []
            if bool(mask.any()):
                hook = _mask_hook(mask, self.mean[layer], b, alpha)
                hooks.append((get_act_name("z", layer), hook))
            xs: Float[Tensor, "sb pos d_model"] = x.repeat(S, 1, 1)
            if layer < self.last:
                out = self.model.run_with_hooks(
                    xs, start_at_layer=layer, stop_at_layer=layer + 1, fwd_hooks=hooks
                )
                for j, node in enumerate(chunk):
                    self.expand(layer + 1, node, out[j * b : (j + 1) * b])
                continue
            logits: Float[Tensor, "sb pos d_vocab"] = self.model.run_with_hooks(
                xs, start_at_layer=layer, fwd_hooks=hooks
            )
            rep = self.reps.setdefault(S, repeat_batch(self.sub, S))
            e = exact_match_from_logits(logits, rep).view(S, b)
            p = answer_logprob_from_logits(logits, rep).float().view(S, b)
            for j, node in enumerate(chunk):
                idx = torch.tensor(self.leaves[node], dtype=torch.long)
                self.em[idx[:, None], self.rows[None]] = e[j]
                self.lp[idx[:, None], self.rows[None]] = p[j]


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
