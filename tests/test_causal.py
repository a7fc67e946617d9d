"""The causal shared-head test on a tiny trained model, and its pure pieces on synthetic scores."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from transformer_lens import HookedTransformer

from interp.causal.top_k import COLUMNS, causal_test, matched_random_heads, shared_head_ranking
from interp.core.errors import InterpError
from interp.runs.spec import TrainSpec
from interp.runs.train import train
from interp.scoring.heads import score_heads

N_LAYERS, N_HEADS = 2, 4


@pytest.fixture(scope="module")
def model() -> Iterator[HookedTransformer]:
    """Copy learned on lengths 1..3 (with reverse to 1..6): solves length 1, most of length 2."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: extra threads only contend on a shared machine
    spec = TrainSpec.from_dict(
        {
            "name": "causal-test",
            "main": "copy",
            "seed": 0,
            "tasks": [{"name": "copy", "lengths": [1, 3]}, {"name": "reverse", "lengths": [1, 6]}],
            "model": {"preset": "tiny", "n_heads": N_HEADS},
            "optim": {"lr": 1e-2, "warmup_steps": 20},
            "train": {"steps": 150, "batch_size": 32},
            "eval": {"examples": 8, "max_length": 6},
        }
    )
    with tempfile.TemporaryDirectory() as d:
        m = train(spec, d, progress=False)
    m.eval()
    yield m
    torch.set_num_threads(prev)


def _scores(maps: dict[str, np.ndarray]) -> pd.DataFrame:
    """A score_heads-shaped frame from ``{task: [n_layers, n_heads] scores}``."""
    rows = []
    for task, s in maps.items():
        for layer in range(s.shape[0]):
            for h in range(s.shape[1]):
                rows.append(
                    {
                        "task": task,
                        "length": pd.NA,
                        "layer": layer,
                        "head": h,
                        "score": float(s[layer, h]),
                        "method": "mean_ablation",
                        "metric": "exact_match",
                    }
                )
                # A per-length row with a decoy score: must be ignored by the ranking.
                rows.append(
                    {
                        "task": task,
                        "length": 1,
                        "layer": layer,
                        "head": h,
                        "score": 100.0 * (layer == 0 and h == 0),
                        "method": "mean_ablation",
                        "metric": "exact_match",
                    }
                )
    df = pd.DataFrame(rows)
    df["length"] = df["length"].astype("Int64")
    return df


def test_ranking_prefers_heads_both_tasks_need() -> None:
    main = np.array([[0.9, 0.0, 0.5, -0.3], [0.2, 0.8, 0.1, 0.0]])
    aux = np.array([[0.0, 0.1, 0.6, 0.4], [0.3, 0.7, 0.0, 0.9]])
    r = shared_head_ranking(_scores({"m": main, "a": aux}), "m", "a")
    assert list(r.columns) == [
        "layer",
        "head",
        "main_score",
        "aux_score",
        "main_norm",
        "aux_norm",
        "shared",
        "rank",
    ]
    # Normalised: main / 0.9, aux / 0.9. Shared = min: L1H1 (0.78), L0H2 (0.56), L1H0 (0.22).
    assert list(zip(r["layer"][:3], r["head"][:3], strict=True)) == [(1, 1), (0, 2), (1, 0)]
    assert r["rank"].tolist() == list(range(1, 9))
    # L0H0 is crucial for main only: the min makes it unshared, not a top head.
    assert r.set_index(["layer", "head"]).loc[(0, 0), "shared"] == 0.0
    # A negative score (ablation helps) is clipped to 0, never a large negative norm.
    assert r["main_norm"].min() == 0.0 and r["main_norm"].max() == pytest.approx(1.0)
    prod = shared_head_ranking(_scores({"m": main, "a": aux}), "m", "a", combine="product")
    assert prod["shared"].iloc[0] == pytest.approx((0.8 / 0.9) * (0.7 / 0.9))


def test_ranking_averages_several_auxiliaries_and_validates() -> None:
    main = np.ones((1, 3))
    a1 = np.array([[1.0, 0.0, 0.5]])
    a2 = np.array([[0.0, 1.0, 0.5]])
    r = shared_head_ranking(_scores({"m": main, "a1": a1, "a2": a2}), "m", ["a1", "a2"])
    assert np.allclose(r.sort_values("head")["aux_norm"], [0.5, 0.5, 0.5])
    # All three tie on shared and on main + aux: the tie-break falls to (layer, head).
    assert r["head"].tolist() == [0, 1, 2]
    with pytest.raises(InterpError, match="no head scores for task 'zz'"):
        shared_head_ranking(_scores({"m": main}), "m", "zz")
    with pytest.raises(InterpError, match="combine"):
        shared_head_ranking(_scores({"m": main, "a1": a1}), "m", "a1", combine="max")
    # Two metrics in one frame: refused rather than averaged.
    sc = _scores({"m": main, "a1": a1})
    mixed = pd.concat([sc, sc.assign(metric="frac_lost")], ignore_index=True)
    with pytest.raises(InterpError, match="mix several metrics"):
        shared_head_ranking(mixed, "m", "a1")


def test_matched_random_heads_keep_layer_counts_and_avoid_the_top_set() -> None:
    top = [(0, 1), (2, 0), (2, 3)]
    draws = matched_random_heads(top, 3, 4, 200, np.random.default_rng(0))
    assert len(draws) == 200
    for d in draws:
        assert Counter(layer for layer, _ in d) == Counter({0: 1, 2: 2})
        assert not set(d) & set(top) and len(set(d)) == 3 and d == sorted(d)
    # Every admissible head gets drawn (the draw is random, not fixed).
    assert {h for d in draws for h in d} == {(0, 0), (0, 2), (0, 3), (2, 1), (2, 2)}
    again = matched_random_heads(top, 3, 4, 200, np.random.default_rng(0))
    assert draws == again
    # A layer whose heads are all in the top set can only be matched by itself.
    full = matched_random_heads([(1, 0), (1, 1)], 2, 2, 5, np.random.default_rng(1))
    assert all(d == [(1, 0), (1, 1)] for d in full)
    # Three of four heads: the one outsider plus two of the top set.
    most = matched_random_heads([(0, 0), (0, 1), (0, 2)], 1, 4, 50, np.random.default_rng(2))
    assert all((0, 3) in d and len(set(d)) == 3 for d in most)


def test_causal_frame_structure(model) -> None:
    n_ex = 32
    df = causal_test(
        model, "copy", "reverse", (1, 2), (3, 4), k=2, n_random=10, n_examples=n_ex, n_boot=200
    )
    assert list(df.columns) == COLUMNS and len(df) == 2 * 2 * 3
    assert set(zip(df["range"], df["metric"], df["effect"], strict=True)) == {
        (r, m, e)
        for r in ("train", "transfer")
        for m in ("exact_match", "logprob")
        for e in ("topk", "random", "diff")
    }
    lohi = df.groupby("range")[["lo", "hi"]].first()
    assert tuple(lohi.loc["train"]) == (1, 2) and tuple(lohi.loc["transfer"]) == (3, 4)
    n = df.set_index(["range", "metric", "effect"])["n"]
    assert (n.xs("topk", level="effect") == 2 * n_ex).all()  # examples
    assert (n.xs("random", level="effect") == 10).all()  # distinct control sets
    assert (n.xs("diff", level="effect") == 2 * n_ex + 10).all()
    assert df.loc[df["effect"] != "diff", "p_value"].isna().all()
    # 8 heads, k = 2: at most C(6, 2) = 15 distinct control sets, 10 requested: fewer than the
    # 19 a one-sided p of 0.05 needs, so no p-value and no interval, with the reason.
    diff = df[df["effect"] == "diff"]
    assert diff[["p_value", "ci_low", "ci_high"]].isna().all().all()
    assert diff["reason"].str.startswith("not testable (n=10").all()
    assert (df.loc[df["effect"] != "diff", "reason"] == "").all()
    ok = df["effect"] != "diff"
    assert (df.loc[ok, "ci_low"] <= df.loc[ok, "estimate"] + 1e-12).all()
    assert (df.loc[ok, "estimate"] <= df.loc[ok, "ci_high"] + 1e-12).all()
    assert df["heads"].nunique() == 1 and len(df["heads"].iloc[0].split(",")) == 2
    assert (df["main"] == "copy").all() and (df["aux"] == "reverse").all()
    # The difference row is the top-k row minus the random row.
    est = df.set_index(["range", "metric", "effect"])["estimate"]
    for r in ("train", "transfer"):
        for m in ("exact_match", "logprob"):
            assert est[(r, m, "diff")] == pytest.approx(est[(r, m, "topk")] - est[(r, m, "random")])
    # Clean accuracy: the model solves short copies, not the transfer range.
    clean = df[df["metric"] == "exact_match"].groupby("range")["clean"].first()
    assert clean["train"] > 0.5 and clean["transfer"] < clean["train"]


def test_selected_heads_follow_real_scores(model) -> None:
    """Without ``scores=``, the top-k set is the ranking of score_heads on the seed's sets."""
    seed, n_ex = 3, 32
    df = causal_test(
        model,
        "copy",
        "reverse",
        (1, 2),
        (3, 4),
        k=3,
        n_random=2,
        n_examples=n_ex,
        seed=seed,
        n_boot=50,
    )
    sc = pd.concat(
        [
            score_heads(model, "copy", lengths=[1, 2], n_examples=n_ex, seed=seed),
            # One range for sharedness: the auxiliary is scored on the main training lengths.
            score_heads(model, "reverse", lengths=[1, 2], n_examples=n_ex, seed=seed),
        ]
    )
    top = shared_head_ranking(sc, "copy", "reverse").head(3)
    expect = ",".join(f"L{a}H{b}" for a, b in sorted(zip(top["layer"], top["head"], strict=True)))
    assert df["heads"].iloc[0] == expect


def test_forced_top_set_and_ablation_that_matters(model) -> None:
    """Force every layer-0 head to the top: removing all of them must break copying."""
    maps = np.zeros((N_LAYERS, N_HEADS))
    maps[0] = [1.0, 0.9, 0.8, 0.7]
    sc = _scores({"copy": maps, "reverse": maps})
    df = causal_test(
        model,
        "copy",
        "reverse",
        (1, 2),
        (3, 4),
        k=N_HEADS,
        n_random=5,
        n_examples=32,
        scores=sc,
        n_boot=200,
    )
    assert (df["heads"] == "L0H0,L0H1,L0H2,L0H3").all()
    em = df[(df["metric"] == "exact_match") & (df["range"] == "train")].set_index("effect")
    # The whole first layer is the only route from the input characters to the answer.
    assert em.loc["topk", "estimate"] > 0.3 and em.loc["topk", "ci_low"] > 0
    # Only layer 1's four heads are left: one possible control set. The old layer-matched
    # control printed "p = ..." from such a degenerate control; now there is no p-value.
    assert (em["random_sets"] == 1).all()
    assert np.isnan(em.loc["diff", "p_value"]) and np.isnan(em.loc["diff", "ci_low"])
    assert em.loc["diff", "reason"].startswith("not testable (n=1")

    # Now a set of two layer-1 heads: the controls are other pairs, nearest in damage first.
    maps2 = np.zeros((N_LAYERS, N_HEADS))
    maps2[1, [0, 2]] = 1.0
    df2 = causal_test(
        model,
        "copy",
        "reverse",
        (1, 2),
        (3, 4),
        k=2,
        n_random=5,
        n_examples=32,
        scores=_scores({"copy": maps2, "reverse": maps2}),
        n_boot=50,
    )
    assert (df2["heads"] == "L1H0,L1H2").all() and (df2["random_sets"] == 5).all()
    lp = df2[(df2["metric"] == "logprob") & (df2["range"] == "train")].set_index("effect")
    # Different head sets really were ablated: their log-prob drops differ.
    assert lp.loc["topk", "estimate"] != pytest.approx(lp.loc["random", "estimate"])


def test_causal_is_reproducible_and_seed_sensitive(model) -> None:
    kw = {"k": 1, "n_random": 8, "n_examples": 16, "n_boot": 100}
    a = causal_test(model, "copy", ["reverse"], (1, 2), (3, 4), seed=1, **kw)
    b = causal_test(model, "copy", ["reverse"], (1, 2), (3, 4), seed=1, **kw)
    c = causal_test(model, "copy", ["reverse"], (1, 2), (3, 4), seed=2, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert not a["estimate"].equals(c["estimate"])


def test_causal_bad_input(model) -> None:
    args = (model, "copy", "reverse", (1, 2), (3, 4))
    with pytest.raises(InterpError, match="k must be"):
        causal_test(*args, k=0)
    with pytest.raises(InterpError, match="k must be"):
        causal_test(*args, k=N_LAYERS * N_HEADS + 1)
    with pytest.raises(InterpError, match="n_random"):
        causal_test(*args, k=1, n_random=0)
    with pytest.raises(InterpError, match="transfer_range"):
        causal_test(model, "copy", "reverse", (1, 2), (4, 3), k=1)
    with pytest.raises(InterpError, match="main_range"):
        causal_test(model, "copy", "reverse", 2, (3, 4), k=1)
    with pytest.raises(InterpError, match="auxiliary"):
        causal_test(model, "copy", [], (1, 2), (3, 4), k=1)
    with pytest.raises(InterpError, match="n_ctx"):
        causal_test(model, "copy", "reverse", (1, 2), (3, 60), k=1, n_examples=2, n_random=1)


def test_control_sets_are_distinct_and_matched_on_in_distribution_damage(model) -> None:
    """The controls are the distinct sets whose training-range damage is nearest the top-k
    set's: their mean damage is closer to it than that of all candidate sets."""
    from interp.causal.top_k import MEASURE_SEED_OFFSET, _ablate, distinct_head_sets
    from interp.tasks.batches import task_batch

    df = causal_test(
        model, "copy", "reverse", (1, 2), (3, 4), k=2, n_random=5, n_examples=32, n_boot=50
    )
    r = df.iloc[0]
    top = [(int(h[1]), int(h[3])) for h in r["heads"].split(",")]
    allsets = distinct_head_sets(top, N_LAYERS, N_HEADS, 100, np.random.default_rng(0))
    assert len(allsets) == 15 and len({tuple(s) for s in allsets}) == 15
    assert not any(set(s) & set(top) for s in allsets)
    batch = task_batch(model, "copy", [1, 2], 32, MEASURE_SEED_OFFSET)
    clean = _ablate(model, batch, [], "mean", None)[0]
    drops = np.array([np.mean(clean - _ablate(model, batch, s, "mean", None)[0]) for s in allsets])
    dist = np.abs(drops - r["id_drop_topk"])
    nearest = np.argsort(dist, kind="stable")[:5]
    # The control's mean damage is that of the 5 candidates nearest the top-k set's damage,
    # and matching brings it closer than the average candidate.
    assert r["id_drop_random"] == pytest.approx(drops[nearest].mean())
    assert abs(r["id_drop_random"] - r["id_drop_topk"]) <= dist.mean() + 1e-12
    assert (df["random_sets"] == 5).all()


def test_p_value_and_interval_invert_one_rank_test(model, monkeypatch) -> None:
    """With enough distinct control sets the diff row carries the rank p-value and the interval
    inverting it: the interval excludes 0 exactly when p <= 0.05 (the old bootstrap interval
    compared with the mean control drop while the p-value ranked single draws)."""
    import interp.causal.top_k as causal
    from interp.causal.top_k import rank_shift_bound
    from interp.stats.intervals import rank_p_value

    rng = np.random.default_rng(0)
    for _ in range(300):
        c = rng.normal(0, 1, int(rng.integers(19, 60)))
        top = float(rng.normal(1.5, 1))
        p = rank_p_value(top, c)
        assert (p <= 0.05) == (rank_shift_bound(top, c) > 0)
    assert np.isnan(rank_shift_bound(1.0, np.zeros(18)))
    monkeypatch.setattr(causal, "MIN_CONTROL_SETS", 5)  # the tiny model has only 15 sets
    df = causal_test(
        model, "copy", "reverse", (1, 2), (3, 4), k=2, n_random=15, n_examples=16, n_boot=50
    )
    d = df[df["effect"] == "diff"]
    assert d["p_value"].between(1 / 16, 1).all() and (d["reason"] == "").all()
    assert np.isinf(d["ci_high"]).all()
    assert ((d["p_value"] <= 0.05) == (d["ci_low"] > 0)).all()
