"""Evaluation: teacher-forced exact match == greedy decoding, accuracy tables, summary metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from transformer_lens import HookedTransformer

from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig, load_preset
from interp.models.factory import build_model
from interp.runs.spec import TrainSpec
from interp.runs.train import train
from interp.scoring.evaluate import (
    AUX_SOLVED,
    accuracy_table,
    answer_logprob_from_logits,
    decode_examples,
    exact_match,
    exact_match_from_logits,
    generalization_gap,
    greedy_decode,
    transfer_range_accuracy,
    transfer_strength,
)
from interp.tasks import Example
from interp.tasks.batches import Batch, encode, eval_batches, eval_examples
from interp.tasks.vocab import VOCAB


@pytest.fixture(scope="module")
def random_model() -> HookedTransformer:
    cfg = ModelConfig.from_dict({**load_preset("tiny"), "n_ctx": 80, "init_seed": 3})
    return build_model(cfg).eval()


def _mixed_batch() -> Batch:
    """Several tasks and lengths in one right-padded batch, so prompt lengths differ."""
    examples: list[Example] = []
    for task, lengths in (("copy", (1, 3, 6)), ("reverse_add", (1, 4)), ("shortest_path", (4,))):
        for L in lengths:
            examples += eval_examples(task, L, 3, seed=1)
    return encode(examples)


def _self_consistent_batch(model: HookedTransformer, batch: Batch, n_new: int = 4) -> Batch:
    """Replace every other row's target by the model's own greedy continuation.

    A random model gets real targets wrong, so on its own the comparison would only ever see
    ``False``; rows whose target *is* the greedy output must be judged right by both methods.
    """
    examples = []
    for i in range(len(batch)):
        p, s = int(batch.prompt_len[i]), int(batch.seq_len[i])
        prompt = VOCAB.decode(batch.tokens[i, 1:p])
        target = VOCAB.decode(batch.tokens[i, p:s])
        if i % 2 == 0:
            seq = batch.tokens[i : i + 1, :p]
            with torch.no_grad():
                for _ in range(n_new):
                    seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
            target = VOCAB.decode(seq[0, p:])
        examples.append(Example(batch.tasks[i], int(batch.lengths[i]), prompt, target))
    return encode(examples)


def test_exact_match_equals_greedy_on_random_model(random_model: HookedTransformer) -> None:
    batch = _self_consistent_batch(random_model, _mixed_batch())
    tf = exact_match(random_model, batch)
    gd = greedy_decode(random_model, batch)
    assert tf.dtype == torch.bool and tf.shape == (len(batch),)
    assert torch.equal(tf, gd)
    assert tf[::2].all()  # its own continuations
    assert not tf[1::2].any()  # real targets: a random model is wrong
    # Chunking does not change the verdicts.
    assert torch.equal(exact_match(random_model, batch, chunk=4), tf)


def test_greedy_follows_teacher_forcing_until_first_error(random_model: HookedTransformer) -> None:
    # Stronger than the verdicts: up to and including the first teacher-forced mistake, greedy
    # decoding emits exactly the teacher-forced argmax tokens.
    batch = _mixed_batch()
    with torch.no_grad():
        pred = random_model(batch.tokens)[:, :-1].argmax(-1)
        for i in range(len(batch)):
            p, s = int(batch.prompt_len[i]), int(batch.seq_len[i])
            tf_pred = pred[i, p - 1 : s - 1]
            wrong = (tf_pred != batch.tokens[i, p:s]).nonzero()
            k = int(wrong[0]) + 1 if len(wrong) else s - p
            seq = batch.tokens[i : i + 1, :p]
            for _ in range(k):
                seq = torch.cat([seq, random_model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
            assert torch.equal(seq[0, p:], tf_pred[:k])


def test_exact_match_from_logits_by_hand() -> None:
    batch = encode([Example("copy", 1, ["<copy>", "a", "="], ["a", "<eos>"])] * 3)
    V = len(VOCAB)
    logits = torch.zeros(3, batch.n_pos, V)
    ids = batch.tokens[0]
    for pos in range(batch.n_pos - 1):
        logits[:, pos, ids[pos + 1]] = 5.0  # every row predicts the next token...
    logits[1, 0, :] = 0.0
    logits[1, 0, 7] = 9.0  # ...row 1 mispredicts a *prompt* token: not counted
    logits[2, 3, ids[-1]] = 0.0
    logits[2, 3, 8] = 9.0  # row 2 mispredicts the final <eos>: wrong
    assert exact_match_from_logits(logits, batch).tolist() == [True, True, False]
    lp = answer_logprob_from_logits(logits, batch)
    assert lp.shape == (3,) and (lp <= 0).all() and lp[2] < lp[0]


def test_context_refused(random_model: HookedTransformer) -> None:
    batch = eval_batches("copy", [60], 2)[60]  # 1 + 62 + 61 > n_ctx = 80
    with pytest.raises(InterpError, match="n_ctx=80"):
        exact_match(random_model, batch)
    with pytest.raises(InterpError, match="n_ctx=80"):
        greedy_decode(random_model, batch)


def test_accuracy_table_schema(random_model: HookedTransformer) -> None:
    df = accuracy_table(
        random_model,
        ["copy", "reverse_add"],
        {"copy": [1, 2], "reverse_add": [3]},
        n_examples=5,
        step=7,
        run="r0",
    )
    assert list(df.columns) == ["step", "run", "task", "length", "accuracy", "n", "logprob"]
    assert list(zip(df["task"], df["length"], strict=True)) == [
        ("copy", 1),
        ("copy", 2),
        ("reverse_add", 3),
    ]
    assert (df["n"] == 5).all() and (df["step"] == 7).all() and (df["run"] == "r0").all()
    assert df["accuracy"].between(0, 1).all() and (df["logprob"] < 0).all()
    assert df["length"].dtype == np.int64 and df["accuracy"].dtype == np.float64
    shared = accuracy_table(random_model, ["copy"], [1, 2], n_examples=5)
    assert list(shared.columns) == ["task", "length", "accuracy", "n", "logprob"]
    assert shared["logprob"].tolist() == pytest.approx(df["logprob"][:2].tolist())


# --- on a trained model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_copy(tmp_path_factory: pytest.TempPathFactory) -> HookedTransformer:
    """A tiny model trained on copy lengths 1..4 (~8 s): right in range, wrong beyond it."""
    torch.set_num_threads(1)
    spec = TrainSpec.from_dict(
        {
            "name": "copy_tiny",
            "main": "copy",
            "tasks": [{"name": "copy", "lengths": [1, 4]}],
            "model": {"preset": "tiny"},
            "optim": {"lr": 1e-2, "warmup_steps": 20, "weight_decay": 0.0},
            "train": {"steps": 200, "batch_size": 32, "n_buckets": 1, "log_every": 100},
            "eval": {"max_length": 7, "examples": 8},
        }
    )
    model = train(spec, tmp_path_factory.mktemp("copy") / "run", progress=False)
    return model.eval()


def test_exact_match_equals_greedy_on_trained_model(trained_copy: HookedTransformer) -> None:
    lengths = list(range(1, 8))
    accs = []
    for L, batch in eval_batches("copy", lengths, 64, seed=5).items():
        tf = exact_match(trained_copy, batch)
        gd = greedy_decode(trained_copy, batch)
        assert torch.equal(tf, gd), f"length {L}"
        accs.append(tf.float().mean().item())
    # The test is only meaningful if the model is partly right.
    assert 0.0 < float(np.mean(accs)) < 1.0
    assert accs[0] > 0.5 and accs[-1] < 0.5
    # The same, all lengths mixed in one padded batch.
    mixed = encode([ex for L in lengths for ex in eval_examples("copy", L, 16, seed=6)])
    tf = exact_match(trained_copy, mixed)
    assert torch.equal(tf, greedy_decode(trained_copy, mixed))
    assert 0 < int(tf.sum()) < len(mixed)


def test_accuracy_table_matches_exact_match(trained_copy: HookedTransformer) -> None:
    df = accuracy_table(trained_copy, ["copy"], [2, 6], n_examples=32, seed=2)
    for L, batch in eval_batches("copy", [2, 6], 32, seed=2).items():
        row = df[df["length"] == L].iloc[0]
        assert row["accuracy"] == exact_match(trained_copy, batch).float().mean().item()


def test_decode_examples_readable(trained_copy: HookedTransformer) -> None:
    batch = eval_batches("copy", [3], 4, seed=0)[3]
    lines = decode_examples(trained_copy, batch, n=2)
    assert len(lines) == 2
    assert lines[0].startswith("<copy> ") and "(target " in lines[0] and " -> " in lines[0]


def test_exact_match_equals_greedy_on_trained_arithmetic(arith_a_model) -> None:  # noqa: ANN001
    """The zoo's trained group-A model (reverse add trained on 1..3), evaluated to length 6:
    teacher-forced exact match and greedy decoding agree example by example, on a mix of
    right and wrong answers."""
    right = total = 0
    for L, batch in eval_batches("reverse_add", range(1, 7), 128, seed=3).items():
        tf = exact_match(arith_a_model, batch)
        assert torch.equal(tf, greedy_decode(arith_a_model, batch)), f"length {L}"
        right, total = right + int(tf.sum()), total + len(tf)
    assert 0 < right < total


# --- summary metrics on hand-built curves ------------------------------------------------------


def _acc(curves: dict[str, dict[int, float]]) -> pd.DataFrame:
    rows = [
        {"task": t, "length": L, "accuracy": a} for t, c in curves.items() for L, a in c.items()
    ]
    return pd.DataFrame(rows)


def _curve(values: list[float], start: int = 1) -> dict[int, float]:
    return {start + i: v for i, v in enumerate(values)}


def test_gap_zero_for_identical_curves() -> None:
    c = _curve([1, 1, 1, 0.9, 0.7, 0.5, 0.3, 0.1])
    acc = _acc({"main": c, "aux": c})
    assert generalization_gap(acc, "main", ["aux"], main_max=3, aux_max=8) == 0.0


def test_gap_one_when_main_fails_where_aux_succeeds() -> None:
    acc = _acc({"main": _curve([1, 1, 1, 0, 0, 0, 0, 0]), "aux": _curve([1] * 6 + [0.5, 0.2])})
    assert generalization_gap(acc, "main", ["aux"], main_max=3, aux_max=8) == 1.0


def test_gap_intermediate_relative_and_clipped() -> None:
    # Transfer range 3..4 (main_max 2, aux_max 4): relative shortfalls 0.5 and 0 (main is better
    # than aux at 4, clipped to 0). Lengths outside the range are ignored.
    acc = _acc(
        {"main": _curve([0.0, 0.0, 0.4, 0.9, 0.0]), "aux": _curve([1.0, 1.0, 0.8, 0.6, 1.0])}
    )
    assert generalization_gap(acc, "main", ["aux"], 2, 4) == pytest.approx(0.25)


def test_gap_averages_several_auxiliaries() -> None:
    acc = _acc(
        {"main": _curve([0.0, 0.0], 5), "a1": _curve([1.0, 1.0], 5), "a2": _curve([0.0, 0.5], 5)}
    )
    # aux mean: 0.5 at 5, 0.75 at 6; main 0: both relative shortfalls are 1.
    assert generalization_gap(acc, "main", ["a1", "a2"], 4, 6) == 1.0
    acc2 = _acc({"main": _curve([0.25], 5), "a1": _curve([1.0], 5), "a2": _curve([0.0], 5)})
    assert generalization_gap(acc2, "main", ["a1", "a2"], 4, 5) == pytest.approx(0.5)


def test_gap_nan_handling() -> None:
    # Auxiliary unsolved everywhere in the range: no length qualifies.
    unsolved = _acc({"main": _curve([0.0, 0.0]), "aux": _curve([AUX_SOLVED / 2, 0.0])})
    assert math.isnan(generalization_gap(unsolved, "main", ["aux"], 0, 2))
    # Empty transfer range, or no overlapping lengths.
    same = _acc({"main": _curve([1.0] * 4), "aux": _curve([1.0] * 4)})
    assert math.isnan(generalization_gap(same, "main", ["aux"], 4, 4))
    assert math.isnan(generalization_gap(same, "main", ["aux"], 4, 9))
    assert math.isnan(generalization_gap(same, "main", ["missing"], 1, 4))
    # A NaN main accuracy is unknown, not perfect transfer: that length is skipped.
    holes = _acc({"main": _curve([float("nan"), 0.0]), "aux": _curve([1.0, 1.0])})
    assert generalization_gap(holes, "main", ["aux"], 0, 2) == 1.0
    all_nan = _acc({"main": _curve([float("nan")] * 2), "aux": _curve([1.0, 1.0])})
    assert math.isnan(generalization_gap(all_nan, "main", ["aux"], 0, 2))
    # A NaN auxiliary accuracy drops that length too.
    aux_nan = _acc({"main": _curve([1.0, 0.0]), "aux": _curve([float("nan"), 1.0])})
    assert generalization_gap(aux_nan, "main", ["aux"], 0, 2) == 1.0


def test_gap_ignores_other_columns_and_tasks() -> None:
    acc = _acc({"main": _curve([0.5, 0.5]), "aux": _curve([1.0, 1.0]), "other": _curve([0, 0])})
    acc["step"] = 100
    assert generalization_gap(acc, "main", ["aux"], 0, 2) == pytest.approx(0.5)


def test_transfer_strength() -> None:
    with_aux = _acc({"main": _curve([1, 1, 1, 1, 0.5, 0.0])})
    baseline = _acc({"main": _curve([1, 1, 1, 0, 0, 0])})
    assert transfer_strength(with_aux, with_aux, "main", 3, 6) == 0.0
    assert transfer_strength(with_aux, baseline, "main", 3, 6) == pytest.approx(0.5)
    assert transfer_strength(baseline, with_aux, "main", 3, 6) == pytest.approx(-0.5)
    assert transfer_strength(with_aux, baseline, "main", 3, 4) == 1.0
    assert transfer_range_accuracy(with_aux, "main", 4, 6) == pytest.approx(0.5)
    # No lengths in range (or no such task): NaN, never a silent 0.
    assert math.isnan(transfer_range_accuracy(with_aux, "main", 7, 9))
    assert math.isnan(transfer_strength(with_aux, baseline, "main", 6, 9))
    assert math.isnan(transfer_strength(with_aux, _acc({"x": {4: 1.0}}), "main", 3, 6))
