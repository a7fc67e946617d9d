"""Head scoring (interp.scoring.heads) against TransformerLens's own patching code on tiny
models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from transformer_lens import ActivationCache, HookedTransformer, patching
from transformer_lens.utilities import get_act_name

import interp.scoring.heads as H
from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig
from interp.models.factory import build_model
from interp.scoring.evaluate import answer_logprob_from_logits, exact_match_from_logits
from interp.tasks.batches import Batch

TOL = 1e-5


def tiny(
    n_layers: int = 2, n_heads: int = 4, d_model: int = 32, seed: int = 0
) -> HookedTransformer:
    # float64 so that agreement to 1e-5 tests the algorithm, not float32 summation order.
    cfg = ModelConfig(n_layers=n_layers, n_heads=n_heads, d_model=d_model, n_ctx=64, init_seed=seed)
    return build_model(cfg).to(torch.float64).eval()


def metric_fn(batch: Batch, metric: str):
    def f(logits: torch.Tensor) -> torch.Tensor:
        if metric == "exact_match":
            return exact_match_from_logits(logits, batch).double().mean()
        return answer_logprob_from_logits(logits, batch).mean()

    return f


def self_consistent(model: HookedTransformer, batch: Batch) -> Batch:
    """Replace the answers by the model's own greedy continuation (one layout group), so the
    clean exact match is 1 and ablations can only break it: exact-match scores are non-trivial
    even for a random model."""
    tokens = batch.tokens.clone()
    p, s = int(batch.prompt_len[0]), int(batch.seq_len[0])
    with torch.no_grad():
        for pos in range(p, s):
            tokens[:, pos] = model(tokens[:, :pos])[:, -1].argmax(-1)
    return Batch(
        tokens, batch.answer_mask, batch.prompt_len, batch.seq_len, batch.lengths, batch.tasks
    )


def tl_ablation(model, batch, metric, fill: str = "mean", reference: Batch | None = None):
    """Clean-minus-ablated metric per head via transformer_lens.patching: the 'clean cache'
    holds the replacement (per-position mean or zeros) and the batch is the 'corrupted' run."""
    ref = batch if reference is None else reference
    with torch.no_grad():
        _, cache = model.run_with_cache(ref.tokens)
        acts = {}
        for layer in range(model.cfg.n_layers):
            z = cache[get_act_name("z", layer)]
            repl = z.mean(0, keepdim=True) if fill == "mean" else torch.zeros_like(z[:1])
            acts[get_act_name("z", layer)] = repl.expand(len(batch), -1, -1, -1)
        f = metric_fn(batch, metric)
        clean = f(model(batch.tokens))
        ablated = patching.get_act_patch_attn_head_out_all_pos(
            model, batch.tokens, ActivationCache(acts, model), f
        )
    return (clean - ablated).flatten().numpy()


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    return tiny()


@pytest.fixture(scope="module")
def add_batch(model) -> Batch:
    return self_consistent(model, H.task_batch(model, "reverse_add", [3], 24))


@pytest.mark.parametrize("metric", ["exact_match", "logprob"])
@pytest.mark.parametrize("method", ["mean_ablation", "zero_ablation"])
def test_ablation_matches_transformer_lens_patching(model, add_batch, method, metric):
    df = H.score_heads(model, add_batch, method, metric)
    expected = tl_ablation(model, add_batch, metric, fill=method.split("_")[0])
    assert list(zip(df["layer"], df["head"], strict=True)) == [
        (i, j) for i in range(2) for j in range(4)
    ]
    np.testing.assert_allclose(df["score"].to_numpy(), expected, atol=TOL, rtol=0)
    assert np.abs(expected).max() > 0  # the comparison is not between two all-zero maps
    assert (df["clean"] == 1.0).all() if metric == "exact_match" else True


@pytest.mark.parametrize("metric", ["exact_match", "logprob"])
def test_activation_patching_matches_transformer_lens(model, add_batch, metric):
    corrupted = H.corrupt_batch(add_batch, seed=3)
    df = H.score_heads(model, add_batch, "activation_patching", metric, seed=3)
    f = metric_fn(corrupted, metric)
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(add_batch.tokens)
        patched = patching.get_act_patch_attn_head_out_all_pos(
            model, corrupted.tokens, clean_cache, f
        )
        corr = f(model(corrupted.tokens))
    expected = (patched - corr).flatten().numpy()
    np.testing.assert_allclose(df["score"].to_numpy(), expected, atol=TOL, rtol=0)
    np.testing.assert_allclose(df["corrupted"].iloc[0], corr.item(), atol=TOL)
    assert np.abs(expected).max() > 0


@pytest.mark.parametrize(
    "arch",
    [{"positional": "nope"}, {"positional": "learned", "norm": "ln", "mlp": "gelu"}],
)
def test_fast_path_on_other_architectures(arch):
    cfg = ModelConfig(n_layers=3, n_heads=2, d_model=16, n_ctx=64, **arch)
    m = build_model(cfg).to(torch.float64).eval()
    assert H.fast_path_supported(m)
    b = H.task_batch(m, "reverse", [3], 12)
    df = H.score_heads(m, b, "mean_ablation", "logprob")
    np.testing.assert_allclose(df["score"], tl_ablation(m, b, "logprob"), atol=TOL, rtol=0)


def test_corrupt_batch_resamples_prompts_and_keeps_answers(add_batch):
    c = H.corrupt_batch(add_batch, seed=1)
    p = int(add_batch.prompt_len[0])
    assert torch.equal(c.tokens[:, p:], add_batch.tokens[:, p:])
    assert torch.equal(c.tokens[:, :2], add_batch.tokens[:, :2])  # <bos> and task token
    moved = (c.tokens[:, 1:p] != add_batch.tokens[:, 1:p]).any(1)
    assert moved.float().mean() > 0.9  # a derangement: (almost) every prompt changes
    # Every corrupted prompt is some other row's clean prompt.
    clean_prompts = {tuple(r) for r in add_batch.tokens[:, 1:p].tolist()}
    assert all(tuple(r) in clean_prompts for r in c.tokens[:, 1:p].tolist())
    assert not torch.equal(H.corrupt_batch(add_batch, seed=2).tokens, c.tokens)


def test_mixed_lengths_average_groups_weighted_by_examples(model):
    b2 = H.task_batch(model, "reverse_add", [2], 10)
    b3 = H.task_batch(model, "reverse_add", [3], 30)
    mixed = H.concat_batches([b3.select(range(15)), b2, b3.select(range(15, 30))])
    df = H.score_heads(model, mixed, "mean_ablation", "logprob", per_length=True)
    e2 = tl_ablation(model, b2, "logprob")
    e3 = tl_ablation(model, b3, "logprob")
    agg = df[df["length"].isna()]
    np.testing.assert_allclose(agg["score"], (10 * e2 + 30 * e3) / 40, atol=TOL, rtol=0)
    np.testing.assert_allclose(df[df["length"] == 2]["score"], e2, atol=TOL, rtol=0)
    np.testing.assert_allclose(df[df["length"] == 3]["score"], e3, atol=TOL, rtol=0)
    assert set(df["n"]) == {10, 30, 40}


def _plain_loop(model, batch, metric, replacement):
    """Per-head run_with_hooks loop; ``replacement(layer)`` gives z of shape [b, pos, h, d]."""
    f = metric_fn(batch, metric)
    out = []
    with torch.no_grad():
        clean = f(model(batch.tokens))
        for layer in range(model.cfg.n_layers):
            for h in range(model.cfg.n_heads):

                def hook(z, hook, layer=layer, h=h):
                    z = z.clone()
                    z[:, :, h] = replacement(layer)[:, :, h]
                    return z

                logits = model.run_with_hooks(
                    batch.tokens, fwd_hooks=[(get_act_name("z", layer), hook)]
                )
                out.append((clean - f(logits)).item())
    return np.array(out)


@pytest.mark.parametrize("fast", [True, False])
def test_maze_group_masked_mean_matches_plain_loop(model, monkeypatch, fast):
    batch = H.task_batch(model, "shortest_path", [4], 16)
    assert len(set(batch.seq_len.tolist())) > 1  # right padding inside one layout group
    if not fast:
        monkeypatch.setattr(H, "fast_path_supported", lambda m: False)
    df = H.score_heads(model, batch, "mean_ablation", "logprob")
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.tokens)
    real = (torch.arange(batch.n_pos)[None] < batch.seq_len[:, None]).double()
    w = real[:, :, None, None]

    def masked_mean(layer):
        z = cache[get_act_name("z", layer)]
        m = (z * w).sum(0) / w.sum(0).clamp_min(1)
        return m[None].expand_as(z)

    expected = _plain_loop(model, batch, "logprob", masked_mean)
    np.testing.assert_allclose(df["score"], expected, atol=TOL, rtol=0)


def test_reference_batch_supplies_the_means(model, add_batch):
    ref = H.task_batch(model, "reverse_add", [3], 40, seed=9)
    df = H.score_heads(model, add_batch, "mean_ablation", "logprob", reference=ref)
    expected = tl_ablation(model, add_batch, "logprob", reference=ref)
    np.testing.assert_allclose(df["score"], expected, atol=TOL, rtol=0)
    own = H.score_heads(model, add_batch, "mean_ablation", "logprob")
    assert not np.allclose(df["score"], own["score"])


def test_attribution_is_the_exact_linearization(model, add_batch):
    """Each head's attribution score equals d/d alpha of the mean answer log-prob when that
    head's z moves from corrupted to clean by alpha (central difference, float64)."""
    corrupted = H.corrupt_batch(add_batch, seed=0)
    df = H.score_heads(model, add_batch, "attribution_patching", "logprob", seed=0)
    with torch.no_grad():
        _, cc = model.run_with_cache(add_batch.tokens)
        _, xc = model.run_with_cache(corrupted.tokens)
    f = metric_fn(corrupted, "logprob")
    eps = 1e-4
    fd = []
    for layer in range(2):
        name = get_act_name("z", layer)
        for h in range(4):

            def value(alpha, h=h, name=name):
                def hook(z, hook):
                    z = z.clone()
                    z[:, :, h] = xc[name][:, :, h] + alpha * (cc[name][:, :, h] - xc[name][:, :, h])
                    return z

                with torch.no_grad():
                    return f(model.run_with_hooks(corrupted.tokens, fwd_hooks=[(name, hook)]))

            fd.append(((value(eps) - value(-eps)) / (2 * eps)).item())
    np.testing.assert_allclose(df["score"], fd, atol=1e-7, rtol=1e-5)
    assert np.abs(fd).max() > 1e-3


def test_attribution_tracks_activation_patching_when_effects_are_small():
    """Attribution patching is first order: as head effects shrink (W_O scaled down) its error
    relative to activation patching shrinks and the two maps become collinear."""
    errors = []
    for scale in (0.2, 0.02):
        m = tiny(seed=1)
        with torch.no_grad():
            for block in m.blocks:
                block.attn.W_O.mul_(scale)
        b = H.task_batch(m, "copy", [4], 24)
        act = H.score_heads(m, b, "activation_patching", "logprob")["score"].to_numpy()
        att = H.score_heads(m, b, "attribution_patching", "logprob")["score"].to_numpy()
        errors.append(np.abs(act - att).max() / np.abs(act).max())
    assert errors[1] < errors[0] / 3
    assert pearsonr(act, att)[0] > 0.95


def test_attribution_with_exact_match_reports_logprob_estimate(model, add_batch):
    em = H.score_heads(model, add_batch, "attribution_patching", "exact_match")
    lp = H.score_heads(model, add_batch, "attribution_patching", "logprob")
    np.testing.assert_allclose(em["score"], lp["score"], atol=1e-12)
    assert (em["metric"] == "exact_match").all()
    assert em["clean"].iloc[0] < 0  # a log-probability, not an accuracy


def test_ablate_heads_single_head_matches_score_heads(model, add_batch):
    df = H.score_heads(model, add_batch, "mean_ablation", "exact_match").set_index(
        ["layer", "head"]
    )
    for lh in [(0, 1), (1, 2)]:
        em, lp = H.ablate_heads(model, add_batch, [lh])
        assert em.dtype == torch.bool and em.shape == (len(add_batch),)
        assert lp.shape == (len(add_batch),)
        assert 1.0 - em.float().mean().item() == pytest.approx(df.loc[lh, "score"], abs=TOL)


def test_ablate_heads_set_matches_hooked_run(model, add_batch):
    heads = [(0, 0), (0, 3), (1, 1)]
    em, lp = H.ablate_heads(model, add_batch, heads, method="zero")

    def zero(h):
        def hook(z, hook):
            z = z.clone()
            z[:, :, h] = 0
            return z

        return hook

    hooks = [(get_act_name("z", layer), zero(h)) for layer, h in heads]
    with torch.no_grad():
        logits = model.run_with_hooks(add_batch.tokens, fwd_hooks=hooks)
    assert torch.equal(em, exact_match_from_logits(logits, add_batch))
    torch.testing.assert_close(lp.double(), answer_logprob_from_logits(logits, add_batch))
    em0, _ = H.ablate_heads(model, add_batch, [])
    assert em0.all()  # no heads ablated: the self-consistent batch is solved
    assert not em.all()


def test_task_name_input_and_tidy_frame(model):
    df = H.score_heads(
        model, "copy", "mean_ablation", "logprob", lengths=[2, 3], n_examples=8, per_length=True
    )
    assert list(df.columns) == H.COLUMNS
    assert len(df) == 3 * 8  # aggregate + two lengths, 8 heads each
    assert df["length"].isna().sum() == 8 and set(df["length"].dropna()) == {2, 3}
    assert (df["task"] == "copy").all() and (df["method"] == "mean_ablation").all()
    agg = df[df["length"].isna()]["score"].to_numpy()
    by_len = [df[df["length"] == L]["score"].to_numpy() for L in (2, 3)]
    np.testing.assert_allclose(agg, (by_len[0] + by_len[1]) / 2, atol=1e-12)
    no_split = H.score_heads(
        model, "copy", "mean_ablation", "logprob", lengths=[2, 3], n_examples=8
    )
    np.testing.assert_allclose(no_split["score"], agg, atol=1e-12)


def test_patching_task_name_uses_a_disjoint_resample(model):
    df = H.score_heads(model, "copy", "activation_patching", "logprob", lengths=[3], n_examples=8)
    assert (df["corrupted"] < df["clean"]).all()  # wrong inputs make the clean answer unlikely


def test_bad_inputs(model, add_batch):
    with pytest.raises(InterpError, match="valid choices: mean_ablation, zero_ablation"):
        H.score_heads(model, add_batch, "noise_ablation", "logprob")
    with pytest.raises(InterpError, match="valid choices: exact_match, logprob"):
        H.score_heads(model, add_batch, "mean_ablation", "accuracy")
    with pytest.raises(InterpError, match="n_ctx=64"):
        H.score_heads(model, "reverse_add", lengths=[40], n_examples=2)
    with pytest.raises(InterpError, match="at least one length"):
        H.score_heads(model, "reverse_add")
    with pytest.raises(InterpError, match="n_examples"):
        H.score_heads(model, "reverse_add", lengths=[2], n_examples=0)
    with pytest.raises(InterpError, match="unknown task"):
        H.score_heads(model, "reverse_mul", lengths=[2])
    with pytest.raises(InterpError, match="no reference"):
        H.score_heads(model, add_batch, "zero_ablation", reference=add_batch)
    other = H.task_batch(model, "reverse_add", [2], 4)
    with pytest.raises(InterpError, match="reference batch has no examples"):
        H.score_heads(model, add_batch, "mean_ablation", reference=other)
    with pytest.raises(InterpError, match="at least two examples"):
        H.score_heads(model, add_batch.select([0]), "activation_patching")
    with pytest.raises(InterpError, match="batch_size"):
        H.score_heads(model, add_batch, batch_size=0)
    with pytest.raises(InterpError, match="outside the model"):
        H.ablate_heads(model, add_batch, [(2, 0)])
    with pytest.raises(InterpError, match="valid choices: mean, zero"):
        H.ablate_heads(model, add_batch, [(0, 0)], method="resample")


def test_frac_lost_is_the_hand_count_of_clean_correct_examples_broken(model, add_batch):
    # Half the rows solved by construction, half mostly not: frac_lost divides by the solved
    # ones only, where the exact-match drop divides by all rows.
    raw = H.task_batch(model, "reverse_add", [3], 24, seed=5)
    batch = H.concat_batches([add_batch, raw])
    df = H.score_heads(model, batch, "mean_ablation", ["exact_match", "frac_lost"])
    assert set(df["metric"]) == {"exact_match", "frac_lost"}
    fl = df[df["metric"] == "frac_lost"].set_index(["layer", "head"])
    em_rows = df[df["metric"] == "exact_match"].set_index(["layer", "head"])
    clean, _ = H.ablate_heads(model, batch, [])
    n_ok = int(clean.sum())
    assert 24 <= n_ok < len(batch)
    checked_nonzero = False
    for lh in [(layer, h) for layer in range(2) for h in range(4)]:
        em, _ = H.ablate_heads(model, batch, [lh])
        lost = int((clean & ~em).sum())
        assert fl.loc[lh, "score"] == pytest.approx(lost / n_ok, abs=1e-12)
        # Same forward passes: the exact-match row is unchanged by asking for both.
        assert em_rows.loc[lh, "score"] == pytest.approx(
            (clean.float().mean() - em.float().mean()).item(), abs=TOL
        )
        checked_nonzero |= lost > 0
    assert checked_nonzero


def test_frac_lost_is_for_ablations_only(model, add_batch):
    with pytest.raises(InterpError, match="ablations only"):
        H.score_heads(model, add_batch, "activation_patching", "frac_lost")
