"""Per-auxiliary gaps with a count-based "solved" rule, the two-sided curve distance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp.runs.loader import read_run_spec
from interp.stats.metrics import (
    curve_distance,
    gap_per_aux,
    n_distinct,
    seen_lengths,
    solved,
    unseen_lengths,
    with_intervals,
)


def _acc(curves: dict[str, dict[int, float]], n: int = 128) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"task": t, "length": L, "accuracy": a, "n": n}
            for t, c in curves.items()
            for L, a in c.items()
        ]  # fmt: skip
    )


def test_intervals_are_clopper_pearson_from_counts() -> None:
    df = with_intervals(_acc({"m": {1: 0.0, 2: 1.0, 3: 0.5}}, n=128))
    assert df["correct"].tolist() == [0, 128, 64]
    assert df["ci_low"].iloc[0] == 0 and df["ci_high"].iloc[1] == 1
    assert df["ci_high"].iloc[0] == pytest.approx(1 - 0.025 ** (1 / 128))
    assert df["ci_low"].iloc[2] == pytest.approx(0.4105, abs=1e-3)


def test_solved_needs_the_lower_bound_not_a_tiny_fraction() -> None:
    s = solved(_acc({"a": {1: 7 / 128, 2: 64 / 128, 3: 76 / 128, 4: 1.0}}), "a")
    assert s.tolist() == [False, False, True, True]


def test_gap_is_per_auxiliary_and_a_half_solved_pair_does_not_blame_transfer() -> None:
    # a1 solves 4..6, a2 does not; the main task matches a1 exactly.
    acc = _acc({"m": {1: 1, 2: 1, 3: 1, 4: 0.9, 5: 0.9, 6: 0.9},
                "a1": {L: 0.9 for L in range(1, 7)},
                "a2": {1: 1, 2: 1, 3: 1, 4: 0.02, 5: 0.0, 6: 0.0}})  # fmt: skip
    g = gap_per_aux(acc, "m", ["a1", "a2"], 3, 6).set_index("aux")
    assert g.loc["a1", "gap"] == pytest.approx(0.0) and g.loc["a1", "n_solved"] == 3
    assert np.isnan(g.loc["a2", "gap"]) and g.loc["a2", "n_solved"] == 0
    assert g.loc["min", "gap"] == pytest.approx(0.0)


def test_curve_distance_is_two_sided_and_defined_below_the_diagonal() -> None:
    same = _acc({"m": {L: 1.0 for L in range(1, 5)}, "a": {L: 1.0 for L in range(1, 5)}})
    assert curve_distance(same, "m", ["a"], 4, 4) == 0.0  # the diagonal of Fig. 10
    # Aux shorter than main (aux 2, main 4): main solves 1..4, aux only 1..2.
    short = _acc({"m": {L: 1.0 for L in range(1, 5)}, "a": {1: 1, 2: 1, 3: 0, 4: 0}})
    assert curve_distance(short, "m", ["a"], 4, 2) == pytest.approx(0.5)
    # Symmetric: swapping the roles gives the same number.
    swapped = short.replace({"task": {"m": "a", "a": "m"}})
    assert curve_distance(swapped, "m", ["a"], 2, 4) == pytest.approx(0.5)
    zero = _acc({"m": {1: 0.0}, "a": {1: 0.0}})
    assert np.isnan(curve_distance(zero, "m", ["a"], 1, 1))


def test_seen_lengths_of_the_zoo_runs() -> None:
    assert n_distinct("reverse_add", 1) == 100 and n_distinct("reverse_add", 3) == 810_000
    spec = read_run_spec("models/zoo/arith_a")  # 2400 steps x 64, 3 tasks, lengths 1..3
    assert seen_lengths(spec) == [1, 2] and unseen_lengths(spec) == [3]
