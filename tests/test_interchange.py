"""Cross-task interchange patching (interp.causal.interchange) on the arith_a zoo model."""

from __future__ import annotations

import pytest
import torch
from transformer_lens.utilities import get_act_name

from interp.causal.interchange import interchange_batch, interchange_scores, swap_task_token
from interp.core.errors import InterpError
from interp.scoring.evaluate import answer_logprob_from_logits
from interp.tasks.batches import task_batch
from interp.tasks.vocab import VOCAB


@pytest.fixture(scope="module")
def model(arith_a_model):
    return arith_a_model


@pytest.fixture(scope="module")
def batch(model):
    return task_batch(model, "reverse_add", [4, 5], 16, seed=3)


def test_swap_changes_only_the_task_token(batch) -> None:
    src = swap_task_token(batch, "reverse_add", "no_carry")
    diff = src.tokens != batch.tokens
    assert diff[:, 1].all() and not diff[:, 0].any() and not diff[:, 2:].any()
    assert (src.tokens[:, 1] == VOCAB.encode(["<nocarry>"])[0]).all()
    with pytest.raises(InterpError, match="operand layout"):
        swap_task_token(batch, "reverse_add", "copy_first_op")
    with pytest.raises(InterpError, match="only"):
        swap_task_token(batch, "no_carry", "carry_only")


def test_patching_from_identical_prompts_is_a_no_op(model, batch) -> None:
    for metric in ("exact_match", "logprob"):
        patched, clean, src = interchange_batch(model, batch, batch, metric)
        assert torch.allclose(src, clean)
        assert torch.allclose(patched, clean.expand_as(patched), atol=1e-4)


def test_one_head_patch_matches_a_hand_written_hook(model, batch) -> None:
    src = swap_task_token(batch, "reverse_add", "no_carry")
    patched, clean, _ = interchange_batch(model, batch, src, "logprob")
    rows = torch.nonzero(batch.lengths == 4).flatten()
    sub, s = batch.select(rows), src.select(rows)
    name = get_act_name("z", 1)
    with torch.no_grad():
        _, cache = model.run_with_cache(s.tokens, names_filter=lambda n: n == name)

        def hook(z, hook):
            z = z.clone()
            z[:, :, 2] = cache[name][:, :, 2]
            return z

        logits = model.run_with_hooks(sub.tokens, fwd_hooks=[(name, hook)])
    want = answer_logprob_from_logits(logits, sub).double()
    assert torch.allclose(patched[1, 2, rows], want, atol=1e-4)
    # The swapped prompt really is a different input.
    assert not torch.allclose(patched, clean.expand_as(patched), atol=1e-4)


def test_interchange_scores_table(model) -> None:
    df = interchange_scores(model, "reverse_add", ["no_carry", "carry_only"], [4], n_examples=8)
    assert len(df) == 2 * 2 * 8
    assert set(df["metric"]) == {"exact_match", "logprob"}
    assert df["effect"].notna().all() and (df["lengths"] == "4-4").all()
