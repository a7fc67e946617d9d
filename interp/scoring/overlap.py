"""How much do two tasks share their heads? Overlap statistics between head-importance maps.

:func:`interp.scoring.heads.score_heads` gives each task an ``n_layers x n_heads`` importance map.
The
paper compares two tasks' maps by their *mean absolute difference* and finds it tracks
length-generalization transfer. A difference of magnitudes mixes "same heads" with "same overall
scale", so this module adds scale-free and rank-based views (the reviewers asked for top-k and
rank overlap):

* ``map_diff``: ``mean |a - b|`` over all heads (the paper's; 0 = identical maps).
* ``cosine``: cosine similarity of the flattened maps (1 = same direction, scale ignored).
* ``spearman``: Spearman rank correlation of the heads' scores (1 = same ordering).
* ``jaccard@k``: Jaccard index ``|A & B| / |A | B|`` of the two tasks' top-``k`` heads (1 = the
  same ``k`` heads matter most); ``jaccard_cc@k`` is the same rescaled so that two random
  ``k``-sets score 0 on average (:func:`chance_corrected_jaccard`). Heads are ranked by score,
  highest first (ties: lower ``(layer, head)`` first, so results are deterministic).
  :func:`jaccard_curve` gives it for every ``k``.
* ``attn_diff`` (when an attention table from :func:`interp.scoring.attention.attention_table` is
  given): the paper's attention-matrix difference summed over all heads, and
  ``attn_diff_per_query`` likewise.

Cosine and Spearman are undefined for a constant map (e.g. an untrained model whose heads all
score 0); they are reported as NaN rather than a misleading number.

**Output format.** :func:`overlap_table` is *long/tidy*: one row per ``(task_a, task_b,
statistic)`` with a ``value`` column, ``task_a`` before ``task_b`` in the order the tasks first
appear in the scores. Long format lets new statistics be added without changing the schema, and
filters, pivots and plots (``df.pivot_table(index=["task_a", "task_b"], columns="statistic")``)
work the same for all of them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from jaxtyping import Float
from scipy.stats import spearmanr

from interp.core.errors import InterpError, unknown_choice
from interp.scoring.heads import METHODS, METRICS

OVERLAP_COLUMNS = ["task_a", "task_b", "statistic", "value"]
SCORE_COLUMNS = ("task", "layer", "head", "score")

HeadMap = Float[np.ndarray, "layer head"]


def score_maps(
    scores: pd.DataFrame, method: str | None = None, metric: str | None = None
) -> dict[str, HeadMap]:
    """Each task's ``[layer, head]`` score map from a :func:`~interp.scoring.heads.score_heads`
    frame.

    Only aggregate rows are used (``length`` missing, when the column exists). The frame must
    hold one method and one metric, or ``method``/``metric`` must pick one.

    Raises:
        InterpError: missing columns, an unknown method or metric, several methods/metrics
            left, duplicate or missing heads.
    """
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise InterpError(f"head scores lack columns {missing}; expected score_heads output")
    df = scores
    if "length" in df.columns:
        df = df[df["length"].isna()]
    for col, value, choices in (("method", method, METHODS), ("metric", metric, METRICS)):
        if value is not None:
            if value not in choices:
                raise unknown_choice(col, value, choices)
            if col in df.columns:
                df = df[df[col] == value]
        if col in df.columns and df[col].nunique() > 1:
            raise InterpError(
                f"head scores mix several {col}s {sorted(df[col].unique())}; pick one with "
                f"{col}=..."
            )
    if df.empty:
        raise InterpError("no head scores left to compare")
    n_layers, n_heads = int(df["layer"].max()) + 1, int(df["head"].max()) + 1
    maps: dict[str, HeadMap] = {}
    for task, sub in df.groupby("task", sort=False):
        if sub.duplicated(["layer", "head"]).any():
            raise InterpError(f"task {task!r} has duplicate (layer, head) rows")
        grid = np.full((n_layers, n_heads), np.nan)
        grid[sub["layer"].to_numpy(), sub["head"].to_numpy()] = sub["score"].to_numpy()
        if np.isnan(grid).any():
            raise InterpError(f"task {task!r} lacks scores for some heads")
        maps[str(task)] = grid
    return maps


def _check_pair(a: HeadMap, b: HeadMap) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InterpError(f"head maps differ in shape: {a.shape} vs {b.shape}")
    return a.ravel(), b.ravel()


def map_difference(a: HeadMap, b: HeadMap) -> float:
    """The paper's ablation-map difference: mean absolute difference over heads."""
    x, y = _check_pair(a, b)
    return float(np.abs(x - y).mean())


def cosine_similarity(a: HeadMap, b: HeadMap) -> float:
    """Cosine similarity of the flattened maps; NaN if either is all zeros."""
    x, y = _check_pair(a, b)
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / norm) if norm > 0 else float("nan")


def spearman(a: HeadMap, b: HeadMap) -> float:
    """Spearman rank correlation of the heads' scores; NaN if either map is constant."""
    x, y = _check_pair(a, b)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(x, y).statistic)


def _check_k(k: int, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n:
        raise InterpError(f"k must be an integer from 1 to the number of heads ({n}), got {k!r}")
    return int(k)


def top_k_heads(m: HeadMap, k: int) -> list[tuple[int, int]]:
    """The ``k`` highest-scoring ``(layer, head)`` pairs, ties broken by lower index first."""
    m = np.asarray(m, dtype=np.float64)
    k = _check_k(k, m.size)
    order = np.argsort(-m.ravel(), kind="stable")[:k]
    return [(int(i // m.shape[1]), int(i % m.shape[1])) for i in order]


def topk_jaccard(a: HeadMap, b: HeadMap, k: int) -> float:
    """Jaccard index of the two maps' top-``k`` head sets."""
    _check_pair(a, b)
    sa, sb = set(top_k_heads(a, k)), set(top_k_heads(b, k))
    return len(sa & sb) / len(sa | sb)


def expected_jaccard(k: int, n: int) -> float:
    """Expected Jaccard index of two independent uniformly random ``k``-subsets of ``n`` heads.

    The overlap ``i = |A & B|`` is hypergeometric (``C(k, i) C(n-k, k-i) / C(n, k)``) and the
    index is ``i / (2k - i)``.
    """
    from scipy.stats import hypergeom

    i = np.arange(0, k + 1)
    return float((hypergeom.pmf(i, n, k, k) * i / (2 * k - i)).sum())


def chance_corrected_jaccard(a: HeadMap, b: HeadMap, k: int) -> float:
    """Top-``k`` Jaccard rescaled so that chance is 0 and identity 1: ``(J - E) / (1 - E)``.

    With 16 heads and ``k = 4`` two random sets already share ``E = 0.16``; the raw index hides
    how much of an overlap is luck, and the chance level differs between models with different
    head counts. NaN when ``k`` is every head (then ``E = 1``).
    """
    x, _ = _check_pair(a, b)
    k = _check_k(k, x.size)
    e = expected_jaccard(k, x.size)
    return (topk_jaccard(a, b, k) - e) / (1 - e) if e < 1 else float("nan")


def jaccard_curve(a: HeadMap, b: HeadMap) -> pd.DataFrame:
    """Top-``k`` Jaccard for every ``k`` from 1 to the number of heads: columns ``k, jaccard``."""
    x, _ = _check_pair(a, b)
    ks = range(1, x.size + 1)
    return pd.DataFrame({"k": list(ks), "jaccard": [topk_jaccard(a, b, k) for k in ks]})


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    return [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]


def _attn_totals(attn: pd.DataFrame) -> dict[frozenset[str], dict[str, float]]:
    need = ["task_a", "task_b", "layer", "head", "attn_diff"]
    missing = [c for c in need if c not in attn.columns]
    if missing:
        raise InterpError(f"attention table lacks columns {missing}; expected attention_table")
    if attn.duplicated(["task_a", "task_b", "layer", "head"]).any():
        raise InterpError("attention table has duplicate (task_a, task_b, layer, head) rows")
    stats = [c for c in ("attn_diff", "attn_diff_per_query") if c in attn.columns]
    out = {}
    for (ta, tb), sub in attn.groupby(["task_a", "task_b"], sort=False):
        out[frozenset((ta, tb))] = {s: float(sub[s].sum()) for s in stats}
    return out


def overlap_table(
    scores: pd.DataFrame,
    attn: pd.DataFrame | None = None,
    k: int = 5,
    *,
    method: str | None = None,
    metric: str | None = None,
) -> pd.DataFrame:
    """Overlap statistics for every pair of tasks in a head-score frame (see module docstring).

    Args:
        scores: :func:`~interp.scoring.heads.score_heads` output for two or more tasks
            (concatenated).
        attn: optional :func:`~interp.scoring.attention.attention_table` output; adds ``attn_diff``
            (and ``attn_diff_per_query``) summed over heads for the pairs it covers.
        k: the top-``k`` for ``jaccard@k``.
        method: keep only this method's scores (needed when several are present).
        metric: keep only this metric's scores.

    Returns:
        Long frame with columns ``task_a, task_b, statistic, value``; statistics ``map_diff,
        cosine, spearman, jaccard@k, jaccard_cc@k`` and, with ``attn``, ``attn_diff,
        attn_diff_per_query``.

    Raises:
        InterpError: ``k`` outside ``1..n_heads``, an unknown method/metric, or malformed
            frames.
    """
    maps = score_maps(scores, method, metric)
    n = next(iter(maps.values())).size
    k = _check_k(k, n)
    totals = _attn_totals(attn) if attn is not None else {}
    rows = []
    for ta, tb in _pairs(list(maps)):
        a, b = maps[ta], maps[tb]
        stats = {
            "map_diff": map_difference(a, b),
            "cosine": cosine_similarity(a, b),
            "spearman": spearman(a, b),
            f"jaccard@{k}": topk_jaccard(a, b, k),
            f"jaccard_cc@{k}": chance_corrected_jaccard(a, b, k),
            **totals.get(frozenset((ta, tb)), {}),
        }
        rows += [(ta, tb, s, v) for s, v in stats.items()]
    return pd.DataFrame(rows, columns=OVERLAP_COLUMNS)


def jaccard_curves(
    scores: pd.DataFrame, *, method: str | None = None, metric: str | None = None
) -> pd.DataFrame:
    """:func:`jaccard_curve` for every pair of tasks: columns ``task_a, task_b, k, jaccard``."""
    maps = score_maps(scores, method, metric)
    frames = [
        jaccard_curve(maps[ta], maps[tb]).assign(task_a=ta, task_b=tb)
        for ta, tb in _pairs(list(maps))
    ]
    cols = ["task_a", "task_b", "k", "jaccard"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
