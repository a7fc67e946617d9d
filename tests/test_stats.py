"""Statistics: interval coverage, p-value calibration, degenerate inputs, the tidy frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from interp.core.errors import InterpError
from interp.stats.intervals import (
    REASON_CONSTANT,
    REASON_FEW,
    bootstrap_diff_ci,
    bootstrap_mean_ci,
    correlate,
    pearson,
    rank_p_value,
    spearman,
)

REPS = 200
NOMINAL = 0.95
# Coverage over REPS independent datasets is Binomial(REPS, true coverage) / REPS. Allow 3.5
# standard errors below the nominal rate (the percentile bootstrap is known to undercover by a
# point or two at moderate n) and require the interval not to be grossly conservative either.
SE = math.sqrt(NOMINAL * (1 - NOMINAL) / REPS)
LOW, HIGH = NOMINAL - 3.5 * SE, 0.995


def _bivariate(rng: np.random.Generator, n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    return z[:, 0], z[:, 1]


@pytest.mark.parametrize(
    "fn,truth",
    [
        (pearson, 0.5),
        # Population Spearman correlation of a bivariate normal: (6 / pi) * arcsin(rho / 2).
        (spearman, 6 / math.pi * math.asin(0.25)),
    ],
)
def test_bootstrap_ci_covers_the_truth_at_the_nominal_rate(fn, truth) -> None:
    hits, widths = 0, []
    for i in range(REPS):
        x, y = _bivariate(np.random.default_rng(10_000 + i), 50, 0.5)
        res = fn(x, y, n_boot=300, n_perm=10, seed=i)
        hits += res.ci_low <= truth <= res.ci_high
        widths.append(res.ci_high - res.ci_low)
        assert res.ci_low <= res.r <= res.ci_high
    assert LOW <= hits / REPS <= HIGH, hits / REPS
    # The theoretical SE of r at n=50, rho=0.5 is (1 - rho^2) / sqrt(n) ~ 0.106: a 95% interval
    # is about 4 SE wide. Guards against intervals that cover by being uselessly wide.
    assert 0.25 < np.mean(widths) < 0.6


def test_permutation_p_values_are_uniform_under_the_null() -> None:
    ps = []
    for i in range(REPS):
        g = np.random.default_rng(20_000 + i)
        ps.append(pearson(g.normal(size=25), g.normal(size=25), n_boot=10, n_perm=199, seed=i))
    p = np.array([r.p_value for r in ps])
    assert np.all((p > 0) & (p <= 1))
    # Size of the test at 5% and 50%: binomial tolerance around the nominal rates.
    assert abs(np.mean(p <= 0.05) - 0.05) < 3.5 * math.sqrt(0.05 * 0.95 / REPS)
    assert abs(np.mean(p <= 0.5) - 0.5) < 3.5 * math.sqrt(0.25 / REPS)
    assert sps.kstest(p, "uniform").pvalue > 0.001


@pytest.mark.parametrize("fn", [pearson, spearman])
def test_strong_correlation_gets_the_smallest_p_value(fn) -> None:
    x, y = _bivariate(np.random.default_rng(1), 40, 0.9)
    res = fn(x, y, n_boot=200, n_perm=499, seed=3)
    assert res.p_value == pytest.approx(1 / 500)
    assert res.ci_low > 0.6 and res.r > 0.75 and res.reason == ""
    neg = fn(x, -y, n_boot=200, n_perm=499, seed=3)  # two-sided: sign does not matter
    assert neg.p_value == pytest.approx(1 / 500) and neg.r == pytest.approx(-res.r)


def test_point_estimates_match_scipy_and_spearman_is_rank_invariant() -> None:
    g = np.random.default_rng(5)
    x, y = g.normal(size=30), g.normal(size=30)
    y = y + x
    assert pearson(x, y, 10, 10).r == pytest.approx(sps.pearsonr(x, y).statistic)
    assert spearman(x, y, 10, 10).r == pytest.approx(sps.spearmanr(x, y).statistic)
    # A monotone transform changes Pearson but not Spearman, including its interval.
    s1, s2 = spearman(x, y, 100, 50, seed=1), spearman(np.exp(x), y**3, 100, 50, seed=1)
    assert (s1.r, s1.ci_low, s1.ci_high, s1.p_value) == pytest.approx(
        (s2.r, s2.ci_low, s2.ci_high, s2.p_value)
    )
    assert pearson(np.exp(x), y**3, 10, 10).r != pytest.approx(pearson(x, y, 10, 10).r)


def test_seeded_and_reproducible() -> None:
    g = np.random.default_rng(7)
    x, y = g.normal(size=20), g.normal(size=20)
    a, b, c = (pearson(x, y, 200, 200, seed=s) for s in (1, 1, 2))
    assert a == b
    assert (a.ci_low, a.p_value) != (c.ci_low, c.p_value)


@pytest.mark.parametrize(
    "x,y,reason,n",
    [
        ([1.0, 2.0], [3.0, 1.0], REASON_FEW, 2),
        ([], [], REASON_FEW, 0),
        ([1.0, 2.0, float("nan"), 4.0], [1.0, float("nan"), 3.0, 0.0], REASON_FEW, 2),
        ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], REASON_CONSTANT, 4),
        ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0], REASON_CONSTANT, 3),
    ],
)
@pytest.mark.parametrize("fn", [pearson, spearman])
def test_degenerate_inputs_give_nan_with_a_reason(fn, x, y, reason, n) -> None:
    res = fn(x, y, n_boot=50, n_perm=50)
    assert res.reason == reason and res.n == n
    assert all(math.isnan(v) for v in (res.r, res.ci_low, res.ci_high, res.p_value))


def test_nan_pairs_are_dropped_not_propagated() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0, float("nan")]
    y = [2.0, 4.1, 5.9, 8.2, 9.9, 1.0]
    res = pearson(x, y, 100, 100)
    assert res.n == 5 and res.r > 0.99 and res.reason == ""


def test_tiny_n_with_mostly_constant_resamples_does_not_crash() -> None:
    # n=3: a resample is constant with probability 3/27 per variable; the CI is still defined.
    res = pearson([0.0, 1.0, 2.0], [0.0, 1.0, 3.0], n_boot=500, n_perm=10)
    assert res.reason == "" and res.ci_low <= res.ci_high


def test_bad_arguments_raise_interp_error() -> None:
    with pytest.raises(InterpError, match="same length"):
        pearson([1, 2, 3], [1, 2])
    with pytest.raises(InterpError, match="n_boot"):
        pearson([1, 2, 3], [1, 2, 3], n_boot=0)
    with pytest.raises(InterpError, match="alpha"):
        spearman([1, 2, 3], [1, 2, 3], alpha=1.5)


def test_correlate_returns_a_tidy_frame_per_group_and_method() -> None:
    g = np.random.default_rng(0)
    n = 30
    x = g.normal(size=3 * n)
    grp = np.repeat(["pos", "neg", "flat"], n)
    y = np.where(grp == "pos", x, np.where(grp == "neg", -x, 0.0)) + 0.1 * g.normal(size=3 * n)
    y[grp == "flat"] = 1.0  # constant: undefined correlation in that group
    df = pd.DataFrame({"g": grp, "a": x, "b": y})
    out = correlate(df, "a", "b", by="g", n_boot=100, n_perm=100)
    assert list(out.columns) == [
        "g",
        "x",
        "y",
        "method",
        "r",
        "ci_low",
        "ci_high",
        "p_value",
        "n",
        "reason",
    ]
    assert len(out) == 6 and set(out["method"]) == {"pearson", "spearman"}
    r = out.set_index(["g", "method"])["r"]
    assert (r["pos"] > 0.9).all() and (r["neg"] < -0.9).all() and r["flat"].isna().all()
    assert (out.loc[out["g"] == "flat", "reason"] == REASON_CONSTANT).all()
    assert (out["n"] == n).all() and (out["x"] == "a").all() and (out["y"] == "b").all()
    # A group's result does not depend on the other groups present (same seed per group).
    alone = correlate(df[df["g"] == "pos"], "a", "b", n_boot=100, n_perm=100)
    pos = out[out["g"] == "pos"].drop(columns="g").reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, pos)
    no_by = correlate(df, "a", "b", methods=["spearman"], n_boot=50, n_perm=50)
    assert len(no_by) == 1 and no_by["n"].item() == 3 * n
    with pytest.raises(InterpError, match="missing columns"):
        correlate(df, "a", "zzz")
    with pytest.raises(InterpError, match="kendall"):
        correlate(df, "a", "b", methods=["kendall"])


def test_bootstrap_mean_ci_covers_the_mean() -> None:
    hits = 0
    for i in range(REPS):
        v = np.random.default_rng(30_000 + i).exponential(size=60)  # skewed, true mean 1
        ci = bootstrap_mean_ci(v, n_boot=300, seed=i)
        hits += ci.ci_low <= 1.0 <= ci.ci_high
        assert ci.estimate == pytest.approx(v.mean()) and ci.n == 60
    # Skewed data at n=60: the percentile interval undercovers slightly more.
    assert LOW - 0.02 <= hits / REPS <= HIGH


def test_bootstrap_mean_ci_edge_cases() -> None:
    one = bootstrap_mean_ci([0.3], n_boot=50)
    assert (one.estimate, one.ci_low, one.ci_high) == pytest.approx((0.3, 0.3, 0.3))
    empty = bootstrap_mean_ci([float("nan")], n_boot=50)
    assert math.isnan(empty.estimate) and empty.n == 0 and empty.reason


def test_bootstrap_diff_ci_detects_a_shift_and_not_its_absence() -> None:
    g = np.random.default_rng(11)
    a, b = g.normal(1.0, 1.0, size=200), g.normal(0.0, 1.0, size=50)
    d = bootstrap_diff_ci(a, b, n_boot=1000, seed=1)
    assert d.estimate == pytest.approx(a.mean() - b.mean())
    assert 0 < d.ci_low < 1.0 < d.ci_high and d.p_value < 0.01 and d.n == 250
    same = bootstrap_diff_ci(g.normal(size=100), g.normal(size=100), n_boot=1000, seed=1)
    assert same.ci_low < 0 < same.ci_high and same.p_value > 0.01
    # Paired: a constant per-pair shift is recovered exactly, with a degenerate interval.
    base = g.normal(size=30)
    p = bootstrap_diff_ci(base + 0.5, base, n_boot=200, paired=True)
    assert (p.estimate, p.ci_low, p.ci_high) == pytest.approx((0.5, 0.5, 0.5)) and p.n == 30
    assert math.isnan(bootstrap_diff_ci([], [1.0]).estimate)


def test_rank_p_value() -> None:
    null = np.arange(99, dtype=float)  # 0..98
    assert rank_p_value(1000.0, null) == pytest.approx(1 / 100)
    assert rank_p_value(-1.0, null) == pytest.approx(1.0)
    assert rank_p_value(49.0, null) == pytest.approx(51 / 100)  # 49..98 are >= 49
    assert rank_p_value(-1.0, null, greater=False) == pytest.approx(1 / 100)
    assert math.isnan(rank_p_value(1.0, []))
