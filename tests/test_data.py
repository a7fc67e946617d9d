"""Batching: encoding, the deterministic training mixture, length bucketing, evaluation sets."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from interp.core.errors import InterpError
from interp.tasks import Example, get_task
from interp.tasks.batches import (
    Batch,
    MixtureSampler,
    TaskSpec,
    encode,
    eval_batches,
    eval_examples,
    iter_minibatches,
)
from interp.tasks.vocab import VOCAB

ARITH = [TaskSpec("reverse_add", 1, 4), TaskSpec("no_carry", 1, 8), TaskSpec("carry_only", 1, 8)]


def _mixed_examples() -> list[Example]:
    rng = np.random.default_rng(0)
    return [
        get_task("reverse_add").sample(3, rng),
        get_task("copy").sample(1, rng),
        get_task("shortest_path").sample(5, rng),
        get_task("mqar").sample(2, rng),
    ]


def _same_batch(a: Batch, b: Batch) -> bool:
    return (
        torch.equal(a.tokens, b.tokens)
        and torch.equal(a.answer_mask, b.answer_mask)
        and torch.equal(a.prompt_len, b.prompt_len)
        and torch.equal(a.seq_len, b.seq_len)
        and torch.equal(a.lengths, b.lengths)
        and a.tasks == b.tasks
    )


# --- encode ---------------------------------------------------------------------------------


def test_encode_layout_mask_and_padding() -> None:
    examples = _mixed_examples()
    batch = encode(examples)
    widths = [1 + len(ex.prompt) + len(ex.target) for ex in examples]
    assert batch.tokens.shape == (len(examples), max(widths))
    assert batch.tokens.dtype == torch.long and batch.answer_mask.dtype == torch.bool
    assert batch.tasks == [ex.task for ex in examples]
    assert batch.lengths.tolist() == [ex.length for ex in examples]
    assert batch.seq_len.tolist() == widths
    for i, ex in enumerate(examples):
        p, s = 1 + len(ex.prompt), widths[i]
        row = batch.tokens[i]
        assert int(batch.prompt_len[i]) == p
        assert int(row[0]) == VOCAB.bos_id
        assert VOCAB.decode(row[1:p]) == ex.prompt
        assert VOCAB.decode(row[p:s]) == ex.target
        # Padding is on the right and only there.
        assert (row[s:] == VOCAB.pad_id).all()
        assert (row[:s] != VOCAB.pad_id).all()
        # The answer mask marks exactly the target tokens (the final <eos> included).
        expect = torch.zeros_like(batch.answer_mask[i])
        expect[p:s] = True
        assert torch.equal(batch.answer_mask[i], expect)
        assert int(batch.answer_mask[i].sum()) == len(ex.target)
    assert batch.real_fraction == pytest.approx(sum(widths) / batch.tokens.numel())
    assert batch.n_pos == max(widths) and len(batch) == len(examples)


def test_encode_refuses_too_long_rather_than_truncating() -> None:
    examples = _mixed_examples()
    width = max(1 + len(ex.prompt) + len(ex.target) for ex in examples)
    assert encode(examples, n_ctx=width).n_pos == width  # exactly at the limit is fine
    with pytest.raises(InterpError, match=f"needs {width} tokens.*n_ctx={width - 1}"):
        encode(examples, n_ctx=width - 1)


def test_encode_errors() -> None:
    with pytest.raises(InterpError, match="empty"):
        encode([])
    bad = Example("copy", 1, ["<copy>", "#", "="], ["#", "<eos>"])
    with pytest.raises(InterpError, match="not in the vocabulary"):
        encode([bad])


def test_select_and_minibatches_trim_padding() -> None:
    batch = encode(_mixed_examples())
    short = int(batch.seq_len.argmin())
    sub = batch.select([short])
    assert sub.n_pos == int(batch.seq_len[short])
    assert torch.equal(sub.tokens[0], batch.tokens[short, : sub.n_pos])
    parts = list(iter_minibatches(batch, 3))
    assert [len(p) for p in parts] == [3, 1]
    assert [t for p in parts for t in p.tasks] == batch.tasks


# --- TaskSpec / MixtureSampler --------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        (TaskSpec("nonexistent", 1, 2), "unknown task"),
        (TaskSpec("copy", 0, 4), "outside task"),
        (TaskSpec("copy", 1, 65), "outside task"),
        (TaskSpec("copy", 5, 4), "empty"),
        (TaskSpec("copy", 1, 4, weight=0.0), "weight"),
    ],
)
def test_task_spec_validation(spec: TaskSpec, message: str) -> None:
    with pytest.raises(InterpError, match=message):
        MixtureSampler([spec], batch_size=4, seed=0)


def test_sampler_argument_errors() -> None:
    with pytest.raises(InterpError):
        MixtureSampler([], batch_size=4, seed=0)
    with pytest.raises(InterpError):
        MixtureSampler(ARITH, batch_size=0, seed=0)
    with pytest.raises(InterpError):
        MixtureSampler(ARITH, batch_size=4, seed=0, n_buckets=0)


def test_sampler_same_seed_same_batches() -> None:
    a = MixtureSampler(ARITH, batch_size=16, seed=5, n_buckets=4)
    b = MixtureSampler(ARITH, batch_size=16, seed=5, n_buckets=4)
    for step in range(10):
        assert _same_batch(a.batch(step), b.batch(step))


def test_sampler_different_seeds_differ() -> None:
    a = MixtureSampler(ARITH, batch_size=16, seed=0, n_buckets=4)
    b = MixtureSampler(ARITH, batch_size=16, seed=1, n_buckets=4)
    assert not any(_same_batch(a.batch(s), b.batch(s)) for s in range(8))


def test_sampler_is_resumable_in_any_call_order() -> None:
    # A resumed run asks for step k first, with no history: the batch must not depend on it.
    ref = MixtureSampler(ARITH, batch_size=8, seed=3, n_buckets=4)
    expected = [ref.batch(s) for s in range(13)]
    order = list(np.random.default_rng(0).permutation(13)) + [12, 0, 7, 7]
    fresh = MixtureSampler(ARITH, batch_size=8, seed=3, n_buckets=4)
    for s in order:
        assert _same_batch(fresh.batch(int(s)), expected[int(s)])
    # Iteration serves the same stream from step 0.
    it = iter(MixtureSampler(ARITH, batch_size=8, seed=3, n_buckets=4))
    for s in range(6):
        assert _same_batch(next(it), expected[s])


def test_sampler_batches_have_batch_size_rows_and_respect_ranges() -> None:
    sampler = MixtureSampler(ARITH, batch_size=16, seed=0, n_buckets=4)
    ranges = {t.name: (t.min_length, t.max_length) for t in ARITH}
    for step in range(8):
        b = sampler.batch(step)
        assert len(b) == 16
        for task, length in zip(b.tasks, b.lengths.tolist(), strict=True):
            lo, hi = ranges[task]
            assert lo <= length <= hi


def test_sampler_respects_task_weights() -> None:
    specs = [TaskSpec("copy", 1, 4, weight=3.0), TaskSpec("reverse", 1, 4, weight=1.0)]
    sampler = MixtureSampler(specs, batch_size=250, seed=0, n_buckets=4)
    counts = collections.Counter(t for s in range(16) for t in sampler.batch(s).tasks)
    n = sum(counts.values())
    # 4000 draws: the binomial standard deviation of the share is ~0.007.
    assert counts["copy"] / n == pytest.approx(0.75, abs=0.03)


def test_sampler_default_weights_are_uniform() -> None:
    sampler = MixtureSampler(ARITH, batch_size=300, seed=0, n_buckets=1)
    counts = collections.Counter(t for s in range(10) for t in sampler.batch(s).tasks)
    for t in ARITH:
        assert counts[t.name] / 3000 == pytest.approx(1 / 3, abs=0.04)


def test_sampler_lengths_uniform_over_range() -> None:
    sampler = MixtureSampler([TaskSpec("reverse_add", 2, 7)], batch_size=300, seed=1, n_buckets=4)
    lengths = np.concatenate([sampler.batch(s).lengths.numpy() for s in range(20)])
    counts = np.bincount(lengths, minlength=9)
    assert counts[:2].sum() == 0 and counts[8:].sum() == 0
    expected = len(lengths) / 6  # 1000 per length; sd ~ 29
    assert np.all(np.abs(counts[2:8] - expected) < 0.15 * expected)


def _mean_real_fraction(specs: list[TaskSpec], n_buckets: int, n_batches: int = 16) -> float:
    sampler = MixtureSampler(specs, batch_size=32, seed=0, n_buckets=n_buckets)
    return float(np.mean([sampler.batch(s).real_fraction for s in range(n_batches)]))


def test_bucketing_reduces_padding() -> None:
    specs = [TaskSpec("reverse_add", 1, 6), TaskSpec("no_carry", 1, 12)]
    plain = _mean_real_fraction(specs, n_buckets=1)
    bucketed = _mean_real_fraction(specs, n_buckets=8)
    assert bucketed > plain + 0.1
    assert bucketed > 0.9


def test_bucketed_pool_serves_every_example_once() -> None:
    # Bucketing only reorders a pool: the multiset of examples equals the unbucketed draw.
    sampler = MixtureSampler(ARITH, batch_size=8, seed=2, n_buckets=4)
    rows = set()
    for s in range(4):
        b = sampler.batch(s)
        for i in range(len(b)):
            rows.add(tuple(b.tokens[i, : int(b.seq_len[i])].tolist()))
    rng = np.random.default_rng([2, 0])
    drawn = sampler.sample_examples(32, rng)
    expect = {tuple(VOCAB.encode(["<bos>", *ex.prompt, *ex.target])) for ex in drawn}
    assert rows == expect


def test_sampler_refuses_sequences_beyond_n_ctx() -> None:
    sampler = MixtureSampler([TaskSpec("copy", 8, 8)], batch_size=4, seed=0, n_ctx=10)
    with pytest.raises(InterpError, match="n_ctx=10"):
        sampler.batch(0)


# --- evaluation sets ------------------------------------------------------------------------


def test_eval_examples_fixed_and_prefix_consistent() -> None:
    a = eval_examples("reverse_add", 5, 20, seed=0)
    b = eval_examples("reverse_add", 5, 20, seed=0)
    assert [ex.prompt + ex.target for ex in a] == [ex.prompt + ex.target for ex in b]
    small = eval_examples(get_task("reverse_add"), 5, 7, seed=0)
    assert [ex.prompt for ex in small] == [ex.prompt for ex in a[:7]]
    other_seed = eval_examples("reverse_add", 5, 20, seed=1)
    assert [ex.prompt for ex in other_seed] != [ex.prompt for ex in a]
    # Tasks that share an input format still get their own streams.
    nc = eval_examples("no_carry", 5, 20, seed=0)
    assert [ex.prompt[1:] for ex in nc] != [ex.prompt[1:] for ex in a]
    assert all(ex.length == 5 and ex.task == "reverse_add" for ex in a)


def test_eval_sets_disjoint_from_training_stream() -> None:
    sampler = MixtureSampler([TaskSpec("reverse_add", 6, 6)], batch_size=64, seed=0, n_buckets=1)
    train_rows = {tuple(r.tolist()) for s in range(4) for r in sampler.batch(s).tokens}
    ev = encode(eval_examples("reverse_add", 6, 64, seed=0))
    overlap = sum(tuple(r.tolist()) in train_rows for r in ev.tokens)
    # 10^12 possible operand pairs: any overlap would mean shared random streams.
    assert overlap == 0


def test_eval_batches_one_batch_per_length() -> None:
    batches = eval_batches("copy", [1, 3, 5], 8, seed=0, n_ctx=16)
    assert sorted(batches) == [1, 3, 5]
    for L, b in batches.items():
        assert len(b) == 8 and set(b.lengths.tolist()) == {L}
        assert b.real_fraction == 1.0  # fixed-format task: no padding within one length
    with pytest.raises(InterpError, match="n_ctx"):
        eval_batches("copy", [10], 8, n_ctx=16)
