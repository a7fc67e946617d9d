"""Dose-matched graded ablation (interp.causal.dose) on the arith_a zoo model (2 layers x 4
heads)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformer_lens.utilities import get_act_name

from interp.causal.dose import SET_TYPES, dose_matched, fraction_lost, match_dose, typed_sets
from interp.causal.head_sets import ablate_sets
from interp.core.errors import InterpError
from interp.scoring.ablation import reference_mean
from interp.scoring.evaluate import answer_logprob_from_logits
from interp.tasks.batches import layout_groups, task_batch

SETS = [((0, 1),), ((1, 0), (1, 2)), ((0, 3), (1, 1))]


@pytest.fixture(scope="module")
def model(arith_a_model):
    return arith_a_model


@pytest.fixture(scope="module")
def batch(model):
    return task_batch(model, "reverse_add", [3], 48, seed=7)


def test_graded_ablation_at_zero_is_clean_and_at_one_is_mean_ablation(model, batch) -> None:
    em0, lp0, cem, clp = ablate_sets(model, batch, SETS, alpha=[0.0] * 3)
    assert all(torch.equal(em0[i], cem) for i in range(3))
    assert torch.allclose(lp0, clp.expand_as(lp0), atol=1e-5)
    em1, lp1, _, _ = ablate_sets(model, batch, SETS, alpha=[1.0] * 3)
    em_m, lp_m, _, _ = ablate_sets(model, batch, SETS)
    assert torch.equal(em1, em_m) and torch.equal(lp1, lp_m)


def test_graded_ablation_matches_a_hand_written_hook(model, batch) -> None:
    a = 0.35
    _, lp, _, _ = ablate_sets(model, batch, SETS[1:2], alpha=[a])
    ((key, rows),) = layout_groups(batch).items()
    sub = batch.select(rows)
    mean = reference_mean(model, key, int(sub.seq_len.max()) - 1, sub, 512)

    def hook(z, hook):
        z = z.clone()
        for h in (0, 2):
            z[:, :, h] = (1 - a) * z[:, :, h] + a * mean[1, : z.shape[1], h]
        return z

    with torch.no_grad():
        logits = model.run_with_hooks(sub.tokens, fwd_hooks=[(get_act_name("z", 1), hook)])
    want = answer_logprob_from_logits(logits, sub).float()
    assert torch.allclose(lp[0, rows], want, atol=1e-4)


def test_match_dose_hits_the_target_or_marks_it_unreached(model, batch) -> None:
    df = match_dose(model, batch, SETS, target=0.2, iters=8)
    assert list(df.columns) == ["alpha", "d_id", "d_id_full", "reached"]
    assert df["alpha"].between(0, 1).all()
    # Unreachable sets stay at full strength; reached ones deliver what the row says.
    assert (df.loc[~df["reached"], "alpha"] == 1.0).all()
    again, _ = fraction_lost(model, batch, SETS, torch.tensor(df["alpha"].to_numpy()))
    np.testing.assert_allclose(again, df["d_id"].to_numpy())
    ok = df[df["reached"]]
    assert len(ok) > 0
    assert (abs(ok["d_id"] - 0.2) <= abs(ok["d_id_full"] - 0.2) + 1e-12).all()
    assert (abs(ok["d_id"] - 0.2) < 0.1).all()
    with pytest.raises(InterpError, match="target"):
        match_dose(model, batch, SETS, target=0.0)


def test_typed_sets_follow_the_predeclared_rule() -> None:
    # main top-2: L0H0, L0H1; aux top-2: L0H1, L1H0 -> shared {L0H1}, main-only {L0H0},
    # aux-only {L1H0}.
    ranking = pd.DataFrame(
        {
            "layer": [0, 0, 1, 1],
            "head": [0, 1, 0, 1],
            "main_norm": [1.0, 0.8, 0.1, 0.0],
            "aux_norm": [0.0, 1.0, 0.9, 0.2],
        }
    )
    got = typed_sets(ranking, k=2, max_size=2)
    assert got == [("shared", ((0, 1),)), ("main_only", ((0, 0),)), ("aux_only", ((1, 0),))]
    k3 = typed_sets(ranking, k=3, max_size=2)
    assert [t for t, _ in k3].count("shared") == 3  # {L0H1, L1H0}: two singletons and a pair
    with pytest.raises(InterpError):
        typed_sets(ranking, k=5)


def test_dose_matched_end_to_end(model) -> None:
    sets, summary = dose_matched(
        model, "reverse_add", ["no_carry", "carry_only"], (1, 3), (4, 6),
        n_examples=16, k=3, max_size=2, iters=5,
    )  # fmt: skip
    assert set(sets["type"]) <= set(SET_TYPES) and len(sets)
    assert list(summary["type"]) == list(SET_TYPES)
    assert summary["n_sets"].sum() == len(sets)
    assert sets["d_t"].between(0, 1).all() or sets["d_t"].isna().all()
