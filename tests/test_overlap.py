"""Overlap statistics between head-score maps (interp.scoring.overlap)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from interp.core.errors import InterpError
from interp.scoring.overlap import (
    cosine_similarity,
    jaccard_curve,
    jaccard_curves,
    map_difference,
    overlap_table,
    score_maps,
    spearman,
    top_k_heads,
    topk_jaccard,
)


def frame(maps: dict[str, np.ndarray], method="mean_ablation", metric="exact_match", lengths=()):
    """A score_heads-shaped frame (aggregate rows, plus optional per-length rows)."""
    rows = []
    for task, m in maps.items():
        for length in [None, *lengths]:
            for (layer, head), v in np.ndenumerate(m):
                score = v if length is None else v + 100.0  # per-length rows must be ignored
                rows.append((task, length, layer, head, score, method, metric))
    df = pd.DataFrame(
        rows, columns=["task", "length", "layer", "head", "score", "method", "metric"]
    )
    df["length"] = df["length"].astype("Int64")
    return df


RNG = np.random.default_rng(0)
A = RNG.normal(size=(3, 4))
B = RNG.normal(size=(3, 4))


def test_pairwise_statistics_against_definitions():
    assert map_difference(A, B) == pytest.approx(np.abs(A - B).mean())
    assert map_difference(A, A) == 0
    cos = (A.ravel() @ B.ravel()) / np.linalg.norm(A) / np.linalg.norm(B)
    assert cosine_similarity(A, B) == pytest.approx(cos)
    assert cosine_similarity(A, 3 * A) == pytest.approx(1.0)
    assert spearman(A, B) == pytest.approx(spearmanr(A.ravel(), B.ravel()).statistic)
    assert spearman(A, np.exp(A)) == pytest.approx(1.0)  # monotone transform keeps ranks
    assert np.isnan(spearman(A, np.zeros_like(A)))
    assert np.isnan(cosine_similarity(A, np.zeros_like(A)))


def test_top_k_and_jaccard():
    m = np.array([[0.1, 0.9, 0.5], [0.7, 0.5, 0.0]])
    assert top_k_heads(m, 3) == [(0, 1), (1, 0), (0, 2)]  # tie 0.5: lower index first
    n = np.array([[0.9, 0.8, 0.0], [0.7, 0.0, 0.1]])
    # top-2: {(0,1),(1,0)} vs {(0,0),(0,1)} -> 1 shared of 3
    assert topk_jaccard(m, n, 2) == pytest.approx(1 / 3)
    assert topk_jaccard(m, m, 4) == 1.0
    curve = jaccard_curve(m, n)
    assert list(curve["k"]) == list(range(1, 7))
    assert curve["jaccard"].iloc[-1] == 1.0  # k = all heads: both sets are everything
    assert curve["jaccard"].iloc[1] == pytest.approx(1 / 3)


def test_overlap_table_is_long_and_uses_aggregate_rows():
    C = -A
    df = overlap_table(frame({"a": A, "b": B, "c": C}, lengths=(4, 5)), k=3)
    assert list(df.columns) == ["task_a", "task_b", "statistic", "value"]
    pairs = list(df[["task_a", "task_b"]].drop_duplicates().itertuples(index=False, name=None))
    assert pairs == [("a", "b"), ("a", "c"), ("b", "c")]
    assert set(df["statistic"]) == {"map_diff", "cosine", "spearman", "jaccard@3", "jaccard_cc@3"}
    v = df.set_index(["task_a", "task_b", "statistic"])["value"]
    assert v["a", "b", "map_diff"] == pytest.approx(map_difference(A, B))
    assert v["a", "c", "cosine"] == pytest.approx(-1.0)
    assert v["a", "c", "spearman"] == pytest.approx(-1.0)
    assert v["b", "c", "jaccard@3"] == pytest.approx(topk_jaccard(B, C, 3))


def test_attention_totals_join_the_table():
    attn = pd.DataFrame(
        {
            "task_a": ["b"] * 12,
            "task_b": ["a"] * 12,  # reversed order still matches the (a, b) pair
            "layer": np.repeat(range(3), 4),
            "head": np.tile(range(4), 3),
            "attn_diff": np.arange(12.0),
            "attn_diff_per_query": np.full(12, 0.5),
        }
    )
    df = overlap_table(frame({"a": A, "b": B}), attn=attn, k=2)
    v = df.set_index("statistic")["value"]
    assert v["attn_diff"] == pytest.approx(66.0)
    assert v["attn_diff_per_query"] == pytest.approx(6.0)


def test_jaccard_curves_per_pair():
    df = jaccard_curves(frame({"a": A, "b": B, "c": A}))
    assert len(df) == 3 * 12
    same = df[(df["task_a"] == "a") & (df["task_b"] == "c")]
    assert (same["jaccard"] == 1.0).all()


def test_method_and_metric_selection():
    both = pd.concat([frame({"a": A, "b": B}), frame({"a": B, "b": B}, method="zero_ablation")])
    with pytest.raises(InterpError, match="mix several methods"):
        overlap_table(both)
    df = overlap_table(both, method="zero_ablation")
    assert df.set_index("statistic")["value"]["map_diff"] == 0
    with pytest.raises(InterpError, match="valid choices: mean_ablation, zero_ablation"):
        overlap_table(both, method="shuffle")
    with pytest.raises(InterpError, match="valid choices: exact_match, logprob"):
        overlap_table(both, method="zero_ablation", metric="loss")


def test_bad_inputs():
    scores = frame({"a": A, "b": B})
    for k in (0, 13, -1, 2.5, True):
        with pytest.raises(InterpError, match="k must be an integer from 1"):
            overlap_table(scores, k=k)
    with pytest.raises(InterpError, match="lack columns"):
        overlap_table(scores.drop(columns="score"))
    with pytest.raises(InterpError, match="lacks scores for some heads"):
        score_maps(scores.iloc[1:])
    with pytest.raises(InterpError, match="duplicate"):
        score_maps(pd.concat([scores, scores.iloc[:1]]))
    with pytest.raises(InterpError, match="differ in shape"):
        map_difference(A, B[:2])
    with pytest.raises(InterpError, match="attention table lacks"):
        overlap_table(scores, attn=pd.DataFrame({"task_a": ["a"]}))


def test_chance_corrected_jaccard_is_zero_at_chance_and_one_at_identity():
    from itertools import combinations

    from interp.scoring.overlap import chance_corrected_jaccard, expected_jaccard

    # Brute force over all pairs of 2-subsets of 5 heads.
    subsets = [set(c) for c in combinations(range(5), 2)]
    brute = np.mean([len(a & b) / len(a | b) for a in subsets for b in subsets])
    assert expected_jaccard(2, 5) == pytest.approx(brute)
    rng = np.random.default_rng(0)
    m = rng.normal(size=(4, 4))
    assert chance_corrected_jaccard(m, m, 4) == pytest.approx(1.0)
    vals = [chance_corrected_jaccard(m, rng.normal(size=(4, 4)), 4) for _ in range(3000)]
    assert abs(np.mean(vals)) < 0.03
    assert np.isnan(chance_corrected_jaccard(m, m, 16))
