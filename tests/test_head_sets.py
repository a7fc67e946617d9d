"""Every-small-head-set ablation: agreement with ablate_heads, and the residual analysis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.causal import set_trie
from interp.causal.head_sets import (
    ablate_sets,
    all_head_sets,
    causal_sets,
    residual_slope,
    set_effects,
    sharedness,
    transfer_specific,
)
from interp.causal.set_trie import plan_trie, trie_sizes
from interp.core.errors import InterpError
from interp.core.resources import ZOO_FAMILY
from interp.models.architecture import ModelConfig, hooked_config
from interp.models.construct import construct
from interp.models.factory import build_model
from interp.scoring.ablation import ablate_heads
from interp.tasks.batches import task_batch
from interp.zoo import registry as zoo


@pytest.fixture(scope="module")
def model(arith_a_model):
    return arith_a_model


def test_all_head_sets_counts() -> None:
    assert len(all_head_sets(4, 4, 3)) == 16 + 120 + 560 == 696
    assert len(all_head_sets(2, 4, 3)) == 8 + 28 + 56
    with pytest.raises(InterpError):
        all_head_sets(2, 4, 0)


def test_batched_set_ablation_matches_ablate_heads_set_by_set(model) -> None:
    batch = task_batch(model, "reverse_add", [2, 3, 4], 24, seed=5)
    sets = [((0, 1),), ((1, 2),), ((0, 0), (1, 3)), ((1, 0), (1, 1), (1, 2)), ((0, 2), (0, 3))]
    em, lp, cem, clp = ablate_sets(model, batch, sets, batch_size=50)  # forces several chunks
    e0, l0 = ablate_heads(model, batch, [], method="mean")
    assert torch.equal(cem, e0) and torch.allclose(clp, l0, atol=1e-4)
    for i, s in enumerate(sets):
        e, lpr = ablate_heads(model, batch, list(s), method="mean")
        assert torch.equal(em[i], e), s
        assert torch.allclose(lp[i], lpr, atol=1e-4), s


def test_every_set_of_a_2x4_model_matches_ablate_heads(model) -> None:
    batch = task_batch(model, "reverse_add", [3, 4], 8, seed=3)
    sets = [*all_head_sets(2, 4, 3), (), ((1, 2), (0, 1))]  # + the clean model, an unsorted set
    em, lp, cem, clp = ablate_sets(model, batch, sets, batch_size=24)  # 3 siblings per pass
    assert torch.equal(em[92], cem) and torch.equal(lp[92], clp)
    for i, s in enumerate(sets):
        e, lpr = ablate_heads(model, batch, list(s), method="mean")
        assert torch.equal(em[i], e), s
        assert torch.allclose(lp[i], lpr, atol=1e-4), s


def _both_paths(model, batch, sets, monkeypatch, **kw):
    """``ablate_sets`` on the fast path, then forced onto the full layer pass (checking that
    each run took the path it should)."""
    calls = {"fast": 0, "layer": 0}
    for name, kind in [("_fast_logits", "fast"), ("_layer_pass", "layer")]:
        real = getattr(set_trie.TrieWalk, name)

        def counted(self, *a, _real=real, _kind=kind):
            calls[_kind] += 1
            return _real(self, *a)

        monkeypatch.setattr(set_trie.TrieWalk, name, counted)
    fast = ablate_sets(model, batch, sets, **kw)
    n_fast = calls["fast"]
    assert n_fast > 0 and calls["layer"] == 0
    monkeypatch.setattr(set_trie, "_FORCE_LAYER_PASS", True)
    slow = ablate_sets(model, batch, sets, **kw)
    assert calls["fast"] == n_fast and calls["layer"] > 0
    monkeypatch.setattr(set_trie, "_FORCE_LAYER_PASS", False)
    return fast, slow


def _assert_same(fast, slow) -> None:
    (em, lp, cem, clp), (em0, lp0, cem0, clp0) = fast, slow
    assert torch.equal(cem, cem0) and torch.equal(clp, clp0)
    assert torch.equal(em, em0)
    assert torch.allclose(lp, lp0, atol=1e-4)


def test_fast_path_matches_the_layer_pass_on_a_4_layer_model(monkeypatch) -> None:
    model, _ = zoo.load(f"{ZOO_FAMILY}both_s0")
    assert set_trie.fast_path_ok(model)
    rng = np.random.default_rng(0)
    every = all_head_sets(4, 4, 3)
    sets = [every[i] for i in rng.choice(len(every), 60, replace=False)]
    batch = task_batch(model, "reverse_add", [6, 7], 8, seed=2)
    fast, slow = _both_paths(model, batch, sets, monkeypatch, batch_size=40)  # chunked siblings
    _assert_same(fast, slow)
    assert 0 < int(fast[0].sum()) < fast[0].numel()  # some sets break examples, some do not
    alpha = rng.uniform(0, 1, len(sets))
    alpha[:5] = 0.5  # a few sets share a strength, so prefixes are shared
    _assert_same(*_both_paths(model, batch, sets, monkeypatch, batch_size=40, alpha=alpha))


def test_fast_path_on_rms_norm_and_gated_silu(monkeypatch) -> None:
    model = build_model(ModelConfig(n_layers=3, n_heads=2, d_model=32, n_ctx=32))
    assert model.cfg.normalization_type == "RMS" and model.cfg.gated_mlp
    assert set_trie.fast_path_ok(model)
    batch = task_batch(model, "reverse_add", [2, 3], 6, seed=1)
    _assert_same(*_both_paths(model, batch, all_head_sets(3, 2, 2), monkeypatch))


def test_other_block_wirings_take_the_layer_pass() -> None:
    hcfg = hooked_config(ModelConfig(n_layers=2, n_heads=2, d_model=32, n_ctx=32, norm="ln"))
    hcfg.parallel_attn_mlp = True
    model = construct(hcfg)
    assert not set_trie.fast_path_ok(model)
    batch = task_batch(model, "reverse_add", [2, 3], 6, seed=1)
    sets = [((0, 1),), ((0, 0), (1, 1)), ((1, 0),)]
    em, lp, _, _ = ablate_sets(model, batch, sets)
    for i, s in enumerate(sets):
        e, lpr = ablate_heads(model, batch, list(s), method="mean")
        assert torch.equal(em[i], e) and torch.allclose(lp[i], lpr, atol=1e-4), s
    plain = build_model(ModelConfig(n_layers=2, n_heads=2, d_model=32, n_ctx=32))
    assert set_trie.fast_path_ok(plain)
    with plain.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: x)]):
        assert not set_trie.fast_path_ok(plain)  # attached hooks would be skipped


def test_trie_counts_single_layer_passes() -> None:
    sets = all_head_sets(4, 4, 3)
    assert trie_sizes(sets, 4) == [14, 92, 298, 696]  # 1100 passes, not 2380 (lowest layer on)
    assert trie_sizes(sets, 4, [0.5] * len(sets)) == [14, 92, 298, 696]
    # distinct strengths share nothing: one chain per set from its lowest layer
    assert trie_sizes(sets, 4, np.linspace(0, 1, len(sets))) == [398, 604, 682, 696]
    children, leaves = plan_trie([((1, 0),), ((1, 0),), (), ((0, 2), (0, 1))], 2)
    assert children[0] == {(None, ()): [(None, ((0, 1), (0, 2)))]}
    assert children[1] == {(None, ()): [(None, ((1, 0),))],
                           (None, ((0, 1), (0, 2))): [(None, ((0, 1), (0, 2)))]}  # fmt: skip
    assert leaves == {(None, ((1, 0),)): [0, 1], (None, ((0, 1), (0, 2))): [3]}


def test_set_effects_are_fractions_of_clean_correct(model) -> None:
    sets = all_head_sets(2, 4, 2)
    batches = {"id": task_batch(model, "reverse_add", [3], 32, 0),
               "t": task_batch(model, "reverse_add", [4], 32, 0)}  # fmt: skip
    df = set_effects(model, batches, sets)
    assert len(df) == 36 and set(df["size"]) == {1, 2}
    assert df["d_id"].between(0, 1).all() and df["clean_id"].iloc[0] > 0


def test_residual_analysis_recovers_a_planted_transfer_specific_effect() -> None:
    rng = np.random.default_rng(0)
    d_id = rng.uniform(0, 1, 500)
    share = rng.uniform(0, 1, 500)
    d_t = d_id**2 + 0.3 * share + rng.normal(0, 0.02, 500)
    res = transfer_specific(d_id, d_t)
    assert residual_slope(res, share) == pytest.approx(0.3, abs=0.03)
    null = transfer_specific(d_id, d_id**2 + rng.normal(0, 0.02, 500))
    assert abs(residual_slope(null, share)) < 0.02
    ranking = __import__("pandas").DataFrame(
        {"layer": [0, 0, 1], "head": [0, 1, 0], "shared": [1.0, 0.0, 0.5]}
    )
    assert sharedness([((0, 0), (0, 1)), ((1, 0),)], ranking).tolist() == [0.5, 0.5]


def test_causal_sets_end_to_end_and_figure(model) -> None:
    from interp.report.stat_plots import head_sets_figure

    df, summary = causal_sets(model, "reverse_add", ["no_carry", "carry_only"], (1, 3), (4, 6),
                              n_examples=16, max_size=2)  # fmt: skip
    assert len(df) == 36 and np.isfinite(summary["slope"]) and summary["clean_id"] > 0
    assert df["residual"].notna().all()
    fig = head_sets_figure(df)
    assert len(fig.data) == 3
