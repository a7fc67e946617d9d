"""Attention patterns and the task-to-task attention difference (interp.scoring.attention)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig
from interp.models.factory import build_model
from interp.scoring.attention import (
    aligned_attention,
    attention_difference,
    attention_patterns,
    attention_table,
)
from interp.tasks.batches import concat_batches, task_batch


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    cfg = ModelConfig(n_layers=2, n_heads=2, d_model=32, n_ctx=64)
    return build_model(cfg).to(torch.float64).eval()


def raw(model, batch):
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.tokens)
    return torch.stack([cache[get_act_name("pattern", i)] for i in range(2)])  # l b h q k


def test_patterns_match_the_cache_and_zero_padded_queries(model):
    batch = task_batch(model, "shortest_path", [4], 6)
    assert len(set(batch.seq_len.tolist())) > 1
    pats = attention_patterns(model, batch, batch_size=4)
    assert pats.shape == (2, 2, 6, batch.n_pos, batch.n_pos)
    ref = raw(model, batch).transpose(1, 2)
    for i, s in enumerate(batch.seq_len.tolist()):
        torch.testing.assert_close(pats[:, :, i, :s], ref[:, :, i, :s])
        assert (pats[:, :, i, s:] == 0).all()
        torch.testing.assert_close(pats[:, :, i, :s].sum(-1), torch.ones(2, 2, s).double())


def test_mean_is_masked_over_real_queries(model):
    batch = task_batch(model, "shortest_path", [4], 6)
    mean = attention_patterns(model, batch, reduce="mean", batch_size=4)
    ref = raw(model, batch)
    q = batch.n_pos - 2
    rows = [i for i, s in enumerate(batch.seq_len.tolist()) if s > q]
    expected = ref[:, rows, :, q].mean(1)  # only rows that reach query q
    torch.testing.assert_close(mean[:, :, q], expected)


def test_relative_alignment_gathers_answer_rows_by_offset(model):
    batch = task_batch(model, "reverse_add", [3], 5)
    aligned, count = aligned_attention(model, batch)
    p, s = int(batch.prompt_len[0]), int(batch.seq_len[0])
    assert aligned.shape == (2, 2, s - p, s - 1)
    assert (count == 5).all()
    mean = raw(model, batch).mean(1)  # l h q k
    for j in range(s - p):
        q = p - 1 + j
        for r in range(s - 1):
            expected = mean[:, :, q, q - r] if r <= q else torch.zeros(2, 2).double()
            torch.testing.assert_close(aligned[:, :, j, r], expected)
    # All attention mass of an answer query is kept.
    torch.testing.assert_close(aligned.sum(-1), torch.ones_like(aligned.sum(-1)))


def test_same_layout_relative_difference_equals_raw_answer_rows(model):
    a = task_batch(model, "reverse_add", [3], 8)
    b = task_batch(model, "no_carry", [3], 8)
    df = attention_difference(model, a, b)
    ma = attention_patterns(model, a, reduce="mean")
    mb = attention_patterns(model, b, reduce="mean")
    p, s = int(a.prompt_len[0]), int(a.seq_len[0])
    expected = (ma - mb)[:, :, p - 1 : s - 1].abs().sum((-1, -2)).flatten()
    np.testing.assert_allclose(df["attn_diff"], expected.numpy(), atol=1e-10)
    np.testing.assert_allclose(df["attn_diff_per_query"], expected.numpy() / (s - p), atol=1e-10)
    assert (df["attn_diff"] > 0).all()
    absolute = attention_difference(model, a, b, alignment="absolute")
    full = (ma - mb).abs().sum((-1, -2)).flatten().numpy()
    np.testing.assert_allclose(absolute["attn_diff"], full, atol=1e-10)


def test_difference_of_a_task_with_itself_is_zero_and_bounded(model):
    a = task_batch(model, "copy", [3], 6)
    same = attention_difference(model, a, a.select(range(6)))
    assert np.allclose(same["attn_diff"], 0)
    other = attention_table(model, ["copy", "mqar", "reverse_add"], [3], n_examples=6)
    assert len(other) == 3 * 4
    assert list(other[["task_a", "task_b"]].drop_duplicates().itertuples(index=False)) == [
        ("copy", "mqar"),
        ("copy", "reverse_add"),
        ("mqar", "reverse_add"),
    ]
    assert ((other["attn_diff_per_query"] >= 0) & (other["attn_diff_per_query"] <= 2)).all()
    assert (other["attn_diff"] > 0).all()


def test_lengths_are_averaged_and_chunking_does_not_matter(model):
    two = attention_table(model, ["copy", "reverse"], [2, 3], n_examples=4)
    one = [attention_table(model, ["copy", "reverse"], [L], n_examples=4) for L in (2, 3)]
    np.testing.assert_allclose(two["attn_diff"], (one[0]["attn_diff"] + one[1]["attn_diff"]) / 2)
    assert (two["n_lengths"] == 2).all()
    b = concat_batches([task_batch(model, "copy", [3], 7)])
    x = aligned_attention(model, b, batch_size=2)[0]
    y = aligned_attention(model, b, batch_size=100)[0]
    torch.testing.assert_close(x, y)


def test_bad_inputs(model):
    a = task_batch(model, "copy", [3], 2)
    b = task_batch(model, "reverse_add", [3], 2)
    with pytest.raises(InterpError, match="absolute alignment needs equal layouts"):
        attention_difference(model, a, b, alignment="absolute")
    with pytest.raises(InterpError, match="valid choices: relative, absolute"):
        attention_difference(model, a, b, alignment="diagonal")
    with pytest.raises(InterpError, match="valid choices: none, mean"):
        attention_patterns(model, a, reduce="max")
    with pytest.raises(InterpError, match="at least two tasks"):
        attention_table(model, ["copy"], [3])
    with pytest.raises(InterpError, match="n_ctx=64"):
        attention_table(model, ["copy", "reverse_add"], [40])
    with pytest.raises(InterpError, match="needs lengths"):
        attention_table(model, ["copy", "reverse"])
