"""The causal shared-head test: does transfer run through heads both tasks use?

The paper shows that head overlap between the main and auxiliary tasks *correlates* with
transfer; reviewers called that evidence correlational. This module intervenes instead:

1. **Rank heads by shared importance.** Score every head for the main task (on its training
   range) and for the auxiliaries (on theirs) by mean ablation (:func:`interp.heads.score_heads`;
   score = clean - ablated accuracy). Each task's scores are normalised to ``[0, 1]`` by
   clipping at 0 (a head whose ablation helps is "unimportant", not "negatively important") and
   dividing by the task's largest score; several auxiliaries are averaged. A head's shared
   importance is ``min(main, aux)`` (default): high only if the head matters to *both* tasks, so
   a head that is crucial for one and irrelevant for the other ranks low. ``combine="product"``
   is the softer alternative. Ties break by ``main + aux``, then by ``(layer, head)``.
2. **Ablate the top-k shared heads** together (:func:`interp.ablation.ablate_heads`) and measure the
   main task's exact-match (and answer log-probability) *drop*, clean minus ablated, inside its
   training range and in the transfer range.
3. **Control with matched random heads.** ``n_random`` sets of k heads drawn at random *with the
   same number of heads in each layer* as the top-k set (from the heads outside the top-k set
   when the layer has enough of them). Matching by layer matters: early-layer heads feed
   everything after them, so an unmatched control would confound "shared" with "early".
4. **Report with uncertainty** (:mod:`interp.stats`): the top-k drop with a bootstrap CI over
   examples; the random drop with a bootstrap CI over draws (each draw's drop is a mean over the
   same examples); their difference with a CI (both resampled independently) and a one-sided
   rank p-value: ``(1 + #{random draws whose drop >= the top-k drop}) / (1 + n_random)``.

**Prediction.** If length transfer runs through shared heads, ablating them hurts the main task at
*transferred* lengths (the transfer range) clearly more than matched random heads do. A top-k
effect confined to the training range would instead say the heads are just generally important.

**No double dipping.** Heads are selected on the evaluation sets with seed ``seed`` and the drops
are measured on disjoint sets (seed ``seed + MEASURE_SEED_OFFSET``), so the selection's noise
does not inflate the measured top-k effect.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float
from transformer_lens import HookedTransformer

from interp.ablation import ablate_heads
from interp.data import Batch, task_batch
from interp.errors import InterpError, unknown_choice
from interp.heads import score_heads
from interp.stats import bootstrap_diff_ci, bootstrap_mean_ci, rank_p_value
from interp.tasks import get_task

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
]

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
        scores: a :func:`interp.heads.score_heads` frame (or several concatenated) holding rows
            of ``main`` and of every auxiliary; per-length rows (non-missing ``length``) are
            ignored.
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


def _range_lengths(task: str, lo_hi: tuple[int, int], what: str) -> list[int]:
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
        n_random: matched random head sets (the control).
        n_examples: examples per length, for head scoring and for the measurement (disjoint
            sets; see the module docstring).
        seed: seed of the scoring sets; the measurement sets and random draws derive from it.
        aux_range: lengths on which the auxiliaries are scored (default: ``main_range[0]`` to
            ``transfer_range[1]``, their training range in a transfer run).
        combine: ``"min"`` or ``"product"`` (see :func:`shared_head_ranking`).
        score_metric: metric of the head scores, ``exact_match`` (the paper's) or ``logprob``.
        scores: precomputed head scores (a :func:`interp.heads.score_heads` frame for ``main``
            and ``aux``); skips scoring, e.g. to reuse scores or to force a head set.
        ablation: ``mean`` (the paper's) or ``zero``.
        n_boot: bootstrap resamples for every interval.
        batch_size: most rows in one forward pass (default: the model device's).

    Returns:
        Tidy frame, one row per ``(range, metric, effect)``: ``range`` is ``train`` or
        ``transfer`` (``lo``, ``hi`` its lengths), ``metric`` is ``exact_match`` or ``logprob``,
        ``effect`` is ``topk`` (mean drop over examples), ``random`` (mean over draws of the
        per-draw mean drop) or ``diff`` (topk - random, with the one-sided rank ``p_value``).
        ``estimate, ci_low, ci_high`` (95% percentile bootstrap), ``n`` (examples, draws, or
        both for ``diff``), ``k``, ``heads`` (the top-k set, e.g. ``L0H1,L1H3``) and ``clean``
        (the unablated mean metric in that range).

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
    train_L = _range_lengths(main, main_range, "main_range")
    transfer_L = _range_lengths(main, transfer_range, "transfer_range")
    if scores is None:
        a_range = aux_range or (main_range[0], transfer_range[1])
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
                *[(a, _range_lengths(a, a_range, "aux_range")) for a in aux],
            ]
        ]
        scores = pd.concat(parts, ignore_index=True)
    ranking = shared_head_ranking(scores, main, aux, combine)
    top = sorted(zip(ranking["layer"][:k], ranking["head"][:k], strict=True))
    top = [(int(a), int(b)) for a, b in top]
    rng = np.random.default_rng([seed, 1])
    draws = matched_random_heads(top, n_layers, n_heads, n_random, rng)
    # With few heads per layer the layer-matched control can collapse to one or two sets (the
    # only heads left in the layer); reporting the count keeps such a control from looking
    # like n_random independent draws.
    n_sets = len({tuple(d) for d in draws})

    rows = []
    aux_label = ",".join(aux)
    m_seed = seed + MEASURE_SEED_OFFSET
    for ri, (rname, lengths) in enumerate((("train", train_L), ("transfer", transfer_L))):
        batch = task_batch(model, main, lengths, n_examples, m_seed)
        clean = _ablate(model, batch, [], ablation, batch_size)
        topk = _ablate(model, batch, top, ablation, batch_size)
        cache: dict[tuple[Head, ...], tuple[np.ndarray, np.ndarray]] = {}
        rand = []
        for d in draws:
            key = tuple(d)
            if key not in cache:  # identical draws (small layers) are computed once
                cache[key] = _ablate(model, batch, d, ablation, batch_size)
            rand.append(cache[key])
        for mi, metric in enumerate(("exact_match", "logprob")):
            c = clean[mi]
            top_drop = c - topk[mi]
            rand_drop = np.array([float(np.mean(c - r[mi])) for r in rand])
            bseed = seed * 1000 + ri * 10 + mi
            t_ci = bootstrap_mean_ci(top_drop, n_boot, seed=bseed)
            r_ci = bootstrap_mean_ci(rand_drop, n_boot, seed=bseed + 1)
            d_ci = bootstrap_diff_ci(top_drop, rand_drop, n_boot, seed=bseed + 2)
            p = rank_p_value(float(top_drop.mean()), rand_drop, greater=True)
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
            }
            for effect, ci, pv in (
                ("topk", t_ci, float("nan")),
                ("random", r_ci, float("nan")),
                ("diff", d_ci, p),
            ):
                rows.append(
                    {
                        **common,
                        "effect": effect,
                        "estimate": ci.estimate,
                        "ci_low": ci.ci_low,
                        "ci_high": ci.ci_high,
                        "p_value": pv,
                        "n": ci.n,
                    }
                )
    return pd.DataFrame(rows)[COLUMNS]
