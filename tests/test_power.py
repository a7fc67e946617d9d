"""The family's power simulation: its fast tests equal the package's, its data match the zoo."""

from __future__ import annotations

import numpy as np
import pytest

from interp.stats.permutation import permutation_p, within_permutations
from interp.stats.power import (
    N_TRANSFER_ITEMS,
    ZOO_CONDITIONS,
    label_permutation_p,
    mde,
    power_primary,
    simulate_transfer,
    within_permutation_indices,
    within_ranks,
    within_slope_p,
)


def test_fast_primary_p_value_equals_freedman_lane_with_condition_only() -> None:
    """The matrix-product shortcut is the package's Freedman-Lane test, not an approximation."""
    rng = np.random.default_rng(0)
    x, k, codes = simulate_transfer(ZOO_CONDITIONS, 0.5, 20, rng)
    y = within_ranks(k, codes)
    perms = within_permutation_indices(codes, 300, rng)
    fast = within_slope_p(x, y, codes, perms)
    n = len(codes)
    dummies = np.stack([(codes == c).astype(float) for c in range(1, 4)], -1)
    X = np.concatenate(
        [np.ones((20, n, 1)), x[..., None], np.broadcast_to(dummies, (20, n, 3))], -1
    )
    slow = permutation_p(X, y, perms, exact=False, chunk=50)
    np.testing.assert_allclose(fast, slow)
    # Random within-condition permutations are permutations that keep every row in its block.
    assert all((codes[p] == codes).all() and sorted(p) == list(range(n)) for p in perms[:50])
    ref, _ = within_permutations(codes, 5, rng)
    assert ref.shape[1] == perms.shape[1]


def test_simulated_transfer_has_the_zoos_floor() -> None:
    """both: ~1 in 6 seeds at the floor, the others near logit -2; carry only and control never
    transfer (0 of 1536 in every zoo seed)."""
    rng = np.random.default_rng(1)
    x, k, codes = simulate_transfer(ZOO_CONDITIONS, 0.0, 2000, rng)
    both, ctrl = k[:, codes == 0], k[:, codes == 3]
    assert 0.12 <= np.mean(both <= 1) <= 0.21
    on = both[both > 1]
    logit = np.log(on / (N_TRANSFER_ITEMS - on))
    assert -2.4 <= np.median(logit) <= -1.6
    assert np.mean(ctrl <= 1) > 0.99
    # Overlap is standardised within condition: the effect is per within-condition SD.
    assert np.allclose(x[:, codes == 0].std(1), 1.0)


def test_within_ranks_tie_the_floor_and_mde_interpolates() -> None:
    r = within_ranks(np.array([[0, 0, 0, 5, 9, 0, 0]]), np.array([0, 0, 0, 0, 0, 1, 1]))
    assert r[0, :3].tolist() == pytest.approx([0.3] * 3) and r[0, 3] == pytest.approx(0.7)
    assert r[0, 5] == r[0, 6]
    assert mde([0, 1, 2], [0.05, 0.6, 1.0]) == pytest.approx(1.5)
    assert np.isnan(mde([0, 1], [0.05, 0.5]))


def test_primary_power_holds_level_and_grows_with_the_effect() -> None:
    pw = power_primary([0.0, 1.0], n_datasets=300, n_perm=200, seed=3)
    assert pw["rank"][0] <= 0.09 and pw["rank"][1] > 0.8


def test_label_permutation_is_exact_when_enumerable() -> None:
    v = np.array([[5.0, 6.0, 7.0, 0.0, 0.1]])
    is_b = np.array([False, False, False, True, True])
    # The most extreme of C(5, 2) = 10 labellings and its mirror image (none here): 1/10.
    assert label_permutation_p(v, is_b, np.random.default_rng(0))[0] == pytest.approx(0.1)
