"""The causal shared-head test: does transfer run through heads both tasks use?

The paper shows that head overlap between the main and auxiliary tasks *correlates* with
transfer; reviewers called that evidence correlational. This module intervenes instead:

1. **Rank heads by shared importance.** Score every head for the main task and for the
   auxiliaries on one range, the main task's training lengths (the lengths every task of the run
   was trained on: the one definition of sharedness used by the primary, causal, head-set and
   dose analyses, so task is not confounded with length), by mean ablation
   (:func:`interp.scoring.heads.score_heads`; score = clean - ablated accuracy). Each task's scores
   are
   normalised to ``[0, 1]`` by clipping at 0 (a head whose ablation helps is "unimportant", not
   "negatively important") and dividing by the task's largest score; several auxiliaries are
   averaged. A head's shared importance is ``min(main, aux)`` (default): high only if the head
   matters to *both* tasks, so a head that is crucial for one and irrelevant for the other ranks
   low. ``combine="product"`` is the softer alternative. Ties break by ``main + aux``, then by
   ``(layer, head)``.
2. **Ablate the top-k shared heads** together (:func:`interp.scoring.ablation.ablate_heads`) and
  measure the
   main task's exact-match (and answer log-probability) *drop*, clean minus ablated, inside its
   training range and in the transfer range.
3. **Control with random heads matched on in-distribution damage.** Up to
   ``CANDIDATES_PER_SET * n_random`` *distinct* sets of k heads are drawn from the heads outside
   the top-k set (all of them when there are fewer), each is ablated on the training-range
   measurement set, and the ``n_random`` whose exact-match drop there is closest to the top-k
   set's are the control. A set that breaks the task everywhere removes transfer too, so a
   control that does less damage in distribution would credit "important" as "shared"; matched
   on that damage, a larger transfer-range drop is transfer-specific. (The old control, matched
   on layer only, could collapse to one repeated set with few heads per layer, and its repeats
   counted as independent draws.) ``random_sets`` is the number of distinct control sets and
   ``id_drop_random`` their mean in-distribution drop, beside the top-k set's ``id_drop_topk``.
4. **One estimand, one test.** ``diff`` = the top-k drop minus the *median* drop of the control
   sets. Its one-sided p-value is the rank of the top-k drop among the control sets' drops,
   ``(1 + #{control >= top-k}) / (1 + n_sets)`` (exact when the top-k set is exchangeable with
   the matched controls under the null), and its interval inverts that same rank test: the
   shifts ``d`` for which ``top-k - d`` is not in the controls' upper 5% tail, i.e.
   ``[top-k - c_(n+1-r), +inf)`` with ``c`` the sorted control drops (:func:`rank_shift_bound`).
   It excludes 0 exactly when ``p <= 0.05``. With fewer than ``MIN_CONTROL_SETS`` (19) distinct
   control sets no p-value of 0.05 is reachable: the p-value and interval are NaN and
   ``reason`` says ``not testable (n=...)``. The ``topk`` row's interval is a bootstrap over
   examples (hundreds of them); the ``random`` row's is the range of the controls' middle 95%.

**Prediction.** If length transfer runs through shared heads, ablating them hurts the main task at
*transferred* lengths (the transfer range) clearly more than matched random heads do. A top-k
effect confined to the training range would instead say the heads are just generally important.

**No double dipping.** Heads are selected on the evaluation sets with seed ``seed`` and the drops
are measured on disjoint sets (seed ``seed + MEASURE_SEED_OFFSET``), so the selection's noise
does not inflate the measured top-k effect.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float
from transformer_lens import HookedTransformer

from interp.core.errors import InterpError, unknown_choice
from interp.scoring.ablation import ablate_heads
from interp.scoring.heads import score_heads
from interp.stats.intervals import bootstrap_mean_ci, not_testable, rank_p_value
from interp.tasks import get_task
from interp.tasks.batches import Batch, task_batch

COMBINE = ("min", "product")
MEASURE_SEED_OFFSET = 1_000_003
"""Added to ``seed`` for the measurement sets, disjoint from the head-selection sets."""
COLUMNS = [
    "main",
    "aux",
    "range",
    "lo",
    "hi",
    "metric",
    "effect",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "n",
    "k",
    "heads",
    "clean",
    "random_sets",
    "id_drop_topk",
    "id_drop_random",
    "reason",
]
CANDIDATES_PER_SET = 4
"""Candidate control sets drawn per requested control set, before matching on damage."""
MIN_CONTROL_SETS = 19
"""The smallest one-sided rank p-value with n control sets is 1 / (1 + n): 0.05 needs 19."""

Head = tuple[int, int]


def _as_aux(aux: str | Sequence[str]) -> list[str]:
    out = [aux] if isinstance(aux, str) else list(aux)
    if not out:
        raise InterpError("the causal test needs at least one auxiliary task")
    return out


def _normalise(s: pd.Series) -> pd.Series:
    s = s.clip(lower=0.0)
    top = s.max()
    return s / top if top > 0 else s * 0.0


def shared_head_ranking(
    scores: pd.DataFrame, main: str, aux: str | Sequence[str], combine: str = "min"
) -> pd.DataFrame:
    """Rank heads by their shared importance for ``main`` and ``aux`` (module docstring).

    Args:
        scores: a :func:`interp.scoring.heads.score_heads` frame (or several concatenated)
            holding rows of ``main`` and of every auxiliary; per-length rows (non-missing
            ``length``) are ignored.
        main: main task.
        aux: auxiliary task(s).
        combine: ``"min"`` or ``"product"`` of the normalised scores.

    Returns:
        One row per head, best first: ``layer, head, main_score, aux_score, main_norm,
        aux_norm, shared, rank`` (rank 1 = most shared).

    Raises:
        InterpError: unknown ``combine``, or a task missing from ``scores``.
    """
    if combine not in COMBINE:
        raise unknown_choice("combine", combine, COMBINE)
    aux = _as_aux(aux)
    df = scores
    if "length" in df.columns:
        df = df[df["length"].isna()]
    for col in ("method", "metric"):
        if col in df.columns and df[col].nunique() > 1:
            raise InterpError(
                f"head scores mix several {col}s {sorted(df[col].unique())}: filter to one "
                "(a ranking never averages across them)"
            )
    maps = {}
    for t in [main, *aux]:
        sub = df[df["task"] == t]
        if sub.empty:
            raise InterpError(f"no head scores for task {t!r}; scored: {sorted(set(df['task']))}")
        maps[t] = sub.groupby(["layer", "head"])["score"].mean()
    main_s = maps[main]
    aux_s = pd.concat([maps[t] for t in aux], axis=1).mean(axis=1).reindex(main_s.index)
    main_n = _normalise(main_s)
    aux_n = pd.concat([_normalise(maps[t]) for t in aux], axis=1).mean(axis=1)
    aux_n = aux_n.reindex(main_s.index).fillna(0.0)
    shared = np.minimum(main_n, aux_n) if combine == "min" else main_n * aux_n
    out = pd.DataFrame(
        {
            "main_score": main_s,
            "aux_score": aux_s,
            "main_norm": main_n,
            "aux_norm": aux_n,
            "shared": shared,
        }
    ).reset_index()
    out["_tie"] = out["main_norm"] + out["aux_norm"]
    out = out.sort_values(
        ["shared", "_tie", "layer", "head"], ascending=[False, False, True, True], kind="stable"
    )
    out = out.drop(columns="_tie").reset_index(drop=True)
    out["layer"] = out["layer"].astype(int)
    out["head"] = out["head"].astype(int)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def matched_random_heads(
    top: Sequence[Head],
    n_layers: int,
    n_heads: int,
    n_draws: int,
    rng: np.random.Generator,
) -> list[list[Head]]:
    """Random head sets with the same per-layer head counts as ``top``.

    In each layer the heads are drawn without replacement from the heads *not* in ``top``; when
    the layer has too few of those, all of them are taken and the rest is drawn from ``top``'s
    heads of that layer (so with every head of a layer in ``top`` the draw equals ``top`` there).

    Args:
        top: the reference set of ``(layer, head)``.
        n_layers: layers of the model.
        n_heads: heads per layer.
        n_draws: number of random sets.
        rng: the generator.

    Returns:
        ``n_draws`` lists of ``(layer, head)``, each sorted.
    """
    per_layer: dict[int, list[int]] = {}
    for layer, h in top:
        per_layer.setdefault(int(layer), []).append(int(h))
    draws = []
    for _ in range(n_draws):
        chosen: list[Head] = []
        for layer in sorted(per_layer):
            mine = sorted(set(per_layer[layer]))
            others = [h for h in range(n_heads) if h not in mine]
            c = len(mine)
            if len(others) >= c:
                pick = rng.choice(others, size=c, replace=False).tolist()
            else:
                pick = others + rng.choice(mine, size=c - len(others), replace=False).tolist()
            chosen.extend((layer, int(h)) for h in pick)
        draws.append(sorted(chosen))
    return draws


def distinct_head_sets(
    top: Sequence[Head], n_layers: int, n_heads: int, n_sets: int, rng: np.random.Generator
) -> list[list[Head]]:
    """Up to ``n_sets`` distinct sets of ``len(top)`` heads drawn from the heads outside ``top``
    (every such set, in random order, when there are at most ``n_sets``)."""
    k = len(top)
    pool = [(a, b) for a in range(n_layers) for b in range(n_heads) if (a, b) not in set(top)]
    if len(pool) < k:
        return []
    if math.comb(len(pool), k) <= n_sets:
        out = [list(c) for c in itertools.combinations(pool, k)]
        return [out[i] for i in rng.permutation(len(out))]
    seen: set[tuple[Head, ...]] = set()
    out = []
    while len(out) < n_sets:  # rejection: the pool holds far more than n_sets sets here
        pick = tuple(sorted(pool[i] for i in rng.choice(len(pool), size=k, replace=False)))
        if pick not in seen:
            seen.add(pick)
            out.append(list(pick))
    return out


def rank_shift_bound(top: float, control: np.ndarray, alpha: float = 0.05) -> float:
    """Lower end of the one-sided interval for ``top - control`` from inverting the rank test.

    The rank p-value of ``top - d`` among ``control`` is ``(1 + #{c >= top - d}) / (1 + n)``;
    it exceeds ``alpha`` exactly when at least ``r`` controls reach ``top - d``, ``r`` the
    smallest count with ``(1 + r) / (1 + n) > alpha``, i.e. for ``d >= top - c_(n + 1 - r)``.

    Returns:
        The bound (NaN when ``r = 0``: too few controls for any p-value <= ``alpha``).
    """
    c = np.sort(np.asarray(control, np.float64))
    n = len(c)
    r = next(r for r in range(n + 1) if (1 + r) / (1 + n) > alpha)
    if r == 0:
        return float("nan")
    return float(top - c[n - r])


def range_lengths(task: str, lo_hi: tuple[int, int], what: str) -> list[int]:
    if (
        not isinstance(lo_hi, tuple | list)
        or len(lo_hi) != 2
        or not all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in lo_hi)
    ):
        raise InterpError(f"{what} must be a (lo, hi) pair of integers, got {lo_hi!r}")
    t = get_task(task)
    lo, hi = max(int(lo_hi[0]), t.min_length), min(int(lo_hi[1]), t.max_length)
    if lo > hi:
        raise InterpError(
            f"{what} {tuple(lo_hi)} holds no valid length of task {task!r} "
            f"({t.min_length}..{t.max_length})"
        )
    return list(range(lo, hi + 1))


def _fmt_heads(heads: Sequence[Head]) -> str:
    return ",".join(f"L{layer}H{h}" for layer, h in heads)


def _ablate(
    model: HookedTransformer,
    batch: Batch,
    heads: Sequence[Head],
    method: str,
    batch_size: int | None,
) -> tuple[Float[np.ndarray, " batch"], Float[np.ndarray, " batch"]]:
    """Per-example exact match and answer log-probability with ``heads`` ablated together."""
    em, lp = ablate_heads(model, batch, list(heads), method=method, batch_size=batch_size)
    return em.numpy().astype(np.float64), lp.numpy().astype(np.float64)


def causal_test(
    model: HookedTransformer,
    main: str,
    aux: str | Sequence[str],
    main_range: tuple[int, int],
    transfer_range: tuple[int, int],
    k: int,
    n_random: int = 50,
    n_examples: int = 128,
    seed: int = 0,
    *,
    aux_range: tuple[int, int] | None = None,
    combine: str = "min",
    score_metric: str = "exact_match",
    scores: pd.DataFrame | None = None,
    ablation: str = "mean",
    n_boot: int = 2000,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Ablate the top-k shared heads vs matched random heads; measure the main task's drop.

    Args:
        model: the trained model.
        main: main task.
        aux: auxiliary task(s).
        main_range: the main task's training range ``(lo, hi)``.
        transfer_range: the transfer range ``(main_max + 1, aux_max)``.
        k: number of shared heads to ablate.
        n_random: control head sets, matched on in-distribution damage (module docstring).
        n_examples: examples per length, for head scoring and for the measurement (disjoint
            sets; see the module docstring).
        seed: seed of the scoring sets; the measurement sets and random draws derive from it.
        aux_range: lengths on which the auxiliaries are scored (default: ``main_range``, the
            one range on which sharedness is defined in every analysis: the lengths all the
            run's tasks were trained on).
        combine: ``"min"`` or ``"product"`` (see :func:`shared_head_ranking`).
        score_metric: metric of the head scores, ``exact_match`` (the paper's) or ``logprob``.
        scores: precomputed head scores (a :func:`interp.scoring.heads.score_heads` frame
            for ``main`` and ``aux``); skips scoring, e.g. to reuse scores or to force a head set.
        ablation: ``mean`` (the paper's) or ``zero``.
        n_boot: bootstrap resamples for every interval.
        batch_size: most rows in one forward pass (default: the model device's).

    Returns:
        Tidy frame, one row per ``(range, metric, effect)``: ``range`` is ``train`` or
        ``transfer`` (``lo``, ``hi`` its lengths), ``metric`` is ``exact_match`` or ``logprob``,
        ``effect`` is ``topk`` (mean drop over examples, bootstrap interval over them),
        ``random`` (median drop of the matched control sets, with their middle 95%) or ``diff``
        (topk - random, with the one-sided rank ``p_value`` and the interval inverting it,
        ``[low, inf)``; NaN with ``reason`` below ``MIN_CONTROL_SETS``). ``n`` (examples,
        control sets, or both for ``diff``), ``k``, ``heads`` (the top-k set, e.g.
        ``L0H1,L1H3``), ``clean`` (the unablated mean metric in that range), ``random_sets``
        (distinct control sets), ``id_drop_topk`` / ``id_drop_random`` (the matching) and
        ``reason``.

    Raises:
        InterpError: invalid ``k`` / ranges / counts, unknown tasks, lengths beyond the model's
            context, or ``scores`` lacking a task.
    """
    aux = _as_aux(aux)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_layers * n_heads:
        raise InterpError(f"k must be an integer in 1..{n_layers * n_heads}, got {k!r}")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise InterpError(f"n_random must be a positive integer, got {n_random!r}")
    train_L = range_lengths(main, main_range, "main_range")
    transfer_L = range_lengths(main, transfer_range, "transfer_range")
    if scores is None:
        a_range = aux_range or main_range
        parts = [
            score_heads(
                model,
                t,
                "mean_ablation",
                score_metric,
                lengths=L,
                n_examples=n_examples,
                seed=seed,
                batch_size=batch_size,
            )
            for t, L in [
                (main, train_L),
                *[(a, range_lengths(a, a_range, "aux_range")) for a in aux],
            ]
        ]
        scores = pd.concat(parts, ignore_index=True)
    ranking = shared_head_ranking(scores, main, aux, combine)
    top = sorted(zip(ranking["layer"][:k], ranking["head"][:k], strict=True))
    top = [(int(a), int(b)) for a, b in top]
    rng = np.random.default_rng([seed, 1])
    m_seed = seed + MEASURE_SEED_OFFSET
    batches = {
        "train": task_batch(model, main, train_L, n_examples, m_seed),
        "transfer": task_batch(model, main, transfer_L, n_examples, m_seed),
    }
    clean = {r: _ablate(model, b, [], ablation, batch_size) for r, b in batches.items()}
    topk = {r: _ablate(model, b, top, ablation, batch_size) for r, b in batches.items()}
    # Match on in-distribution damage: the candidates' exact-match drop in the training range,
    # nearest to the top-k set's, on the same measurement examples.
    cands = distinct_head_sets(top, n_layers, n_heads, CANDIDATES_PER_SET * n_random, rng)
    c_train = [_ablate(model, batches["train"], d, ablation, batch_size) for d in cands]
    id_top = float(np.mean(clean["train"][0] - topk["train"][0]))
    id_c = np.array([float(np.mean(clean["train"][0] - r[0])) for r in c_train])
    order = np.argsort(np.abs(id_c - id_top), kind="stable")[:n_random]
    controls = [cands[i] for i in order]
    ablated = {
        "train": [c_train[i] for i in order],
        "transfer": [
            _ablate(model, batches["transfer"], d, ablation, batch_size) for d in controls
        ],
    }
    n_sets = len(controls)  # distinct by construction
    why = (
        ""
        if n_sets >= MIN_CONTROL_SETS
        else not_testable(
            n_sets, f"distinct control sets; a one-sided p of 0.05 needs {MIN_CONTROL_SETS}"
        )
    )

    rows = []
    aux_label = ",".join(aux)
    for ri, (rname, lengths) in enumerate((("train", train_L), ("transfer", transfer_L))):
        for mi, metric in enumerate(("exact_match", "logprob")):
            c = clean[rname][mi]
            top_drop = c - topk[rname][mi]
            rand_drop = np.array([float(np.mean(c - r[mi])) for r in ablated[rname]])
            t_ci = bootstrap_mean_ci(top_drop, n_boot, seed=seed * 1000 + ri * 10 + mi)
            top_mean = float(top_drop.mean())
            nan = float("nan")
            if len(rand_drop):
                med = float(np.median(rand_drop))
                r_lo, r_hi = (float(v) for v in np.quantile(rand_drop, [0.025, 0.975]))
            else:
                med = r_lo = r_hi = nan
            if why:
                p, d_lo, d_hi = nan, nan, nan
            else:
                p = rank_p_value(top_mean, rand_drop, greater=True)
                d_lo, d_hi = rank_shift_bound(top_mean, rand_drop), float("inf")
            common = {
                "main": main,
                "aux": aux_label,
                "range": rname,
                "lo": lengths[0],
                "hi": lengths[-1],
                "metric": metric,
                "k": k,
                "heads": _fmt_heads(top),
                "clean": float(c.mean()),
                "random_sets": n_sets,
                "id_drop_topk": id_top,
                "id_drop_random": float(id_c[order].mean()) if n_sets else nan,
            }
            for effect, est, lo, hi, pv, n, reason in (
                ("topk", t_ci.estimate, t_ci.ci_low, t_ci.ci_high, nan, t_ci.n, ""),
                ("random", med, r_lo, r_hi, nan, n_sets, ""),
                ("diff", top_mean - med, d_lo, d_hi, p, t_ci.n + n_sets, why),
            ):
                rows.append(
                    {
                        **common,
                        "effect": effect,
                        "estimate": est,
                        "ci_low": lo,
                        "ci_high": hi,
                        "p_value": pv,
                        "n": n,
                        "reason": reason,
                    }
                )
    return pd.DataFrame(rows)[COLUMNS]
