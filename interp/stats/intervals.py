"""Correlations and effect sizes with honest uncertainty: bootstrap CIs and permutation p-values.

The paper reports that head overlap "correlates" with the generalization gap but gives no
coefficient and no test. This module supplies the missing statistics, with nothing model-specific
in it, so the same functions serve the correlational analysis (:mod:`interp.stats.transfer`) and the
causal test (:mod:`interp.causal.top_k`).

**Bootstrap confidence interval (percentile).** The sampling distribution of a statistic is
approximated by recomputing it on ``n_boot`` resamples drawn with replacement from the data; the
``alpha/2`` and ``1 - alpha/2`` quantiles of those replicates form the interval. For a
correlation the *pairs* ``(x_i, y_i)`` are resampled together, which keeps their dependence. The
percentile interval is simple and transformation-respecting, but slightly too narrow for small
``n`` (it undercovers by a few points at ``n ~ 20``); the test suite measures its coverage.

**Permutation p-value (two-sided).** Under the null hypothesis of no association every pairing of
``x`` with ``y`` is equally likely, so shuffling ``y`` ``n_perm`` times gives draws of the
statistic under the null. The p-value is ``(1 + #{|r_perm| >= |r_obs|}) / (1 + n_perm)``: the
``+1`` counts the observed pairing as one of the permutations, which makes the test exact (valid
at any ``n``) and keeps the p-value away from an impossible 0. The smallest reachable p-value is
therefore ``1 / (1 + n_perm)``.

**Spearman** is Pearson on ranks (ties get their average rank). It measures monotone rather than
linear association and is robust to the heavy tails that accuracy-derived metrics often have.

**Degenerate inputs never crash.** With fewer than 3 complete pairs, or a constant variable, a
correlation is undefined; the functions return NaN for ``r``, the interval and the p-value, and
say why in ``reason`` (``""`` when the result is valid). Pairs with a NaN in either variable are
dropped first. Bootstrap resamples that happen to be constant (likely when ``n`` is tiny) are
left out of the quantiles; if more than half of them are, the interval is reported as NaN.

Every random draw comes from ``numpy.random.default_rng(seed)``, so results are reproducible and
the global numpy state is never touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from interp.core.errors import InterpError

METHODS = ("pearson", "spearman")
REASON_FEW = "fewer than 3 complete pairs"
REASON_CONSTANT = "constant input"
REASON_EMPTY = "no values"


@dataclass(frozen=True)
class CorrResult:
    """A correlation with its bootstrap interval and permutation p-value.

    Attributes:
        r: the correlation coefficient (NaN when undefined).
        ci_low: lower end of the percentile bootstrap interval.
        ci_high: upper end of the percentile bootstrap interval.
        p_value: two-sided permutation p-value.
        n: number of complete pairs used.
        method: ``"pearson"`` or ``"spearman"``.
        reason: why the result is NaN (``""`` when it is valid).
    """

    r: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    method: str
    reason: str = ""

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass(frozen=True)
class MeanCI:
    """A mean (or difference of means) with a percentile bootstrap interval.

    Attributes:
        estimate: the point estimate on the original data.
        ci_low: lower end of the interval.
        ci_high: upper end of the interval.
        n: number of values (for a difference, ``n_a + n_b``).
        p_value: a one-sided bootstrap p-value for differences (NaN for plain means).
        reason: why the result is NaN (``""`` when it is valid).
    """

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    p_value: float = float("nan")
    reason: str = ""

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _clean_pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise InterpError(f"x and y must have the same length, got {len(xa)} and {len(ya)}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep]


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of ``x``, ``y`` (shape ``[reps, n]``); NaN for constant rows."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    sxx = (xc * xc).sum(-1)
    syy = (yc * yc).sum(-1)
    sxy = (xc * yc).sum(-1)
    # A relative tolerance, not == 0: a constant column leaves round-off residue after centring.
    scale_x = np.maximum((x * x).sum(-1), 1e-300)
    scale_y = np.maximum((y * y).sum(-1), 1e-300)
    bad = (sxx <= 1e-24 * scale_x) | (syy <= 1e-24 * scale_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    r = np.clip(r, -1.0, 1.0)
    r[bad] = np.nan
    return r


def _ranks(a: np.ndarray) -> np.ndarray:
    return rankdata(a, axis=-1, method="average")


def _is_constant(a: np.ndarray) -> bool:
    return bool(np.all(a == a[0]))


def _percentile_ci(reps: np.ndarray, alpha: float) -> tuple[float, float]:
    ok = reps[np.isfinite(reps)]
    if len(ok) == 0 or len(ok) < 0.5 * len(reps):
        return float("nan"), float("nan")
    lo, hi = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _check_counts(n_boot: int, n_perm: int, alpha: float) -> None:
    for name, v in (("n_boot", n_boot), ("n_perm", n_perm)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise InterpError(f"{name} must be a positive integer, got {v!r}")
    if not 0 < alpha < 1:
        raise InterpError(f"alpha must be in (0, 1), got {alpha!r}")


def _correlation(
    x: Sequence[float],
    y: Sequence[float],
    method: str,
    n_boot: int,
    n_perm: int,
    seed: int,
    alpha: float,
    chunk: int = 1000,
) -> CorrResult:
    if method not in METHODS:
        raise InterpError(
            f"unknown correlation method {method!r}; valid choices: pearson, spearman"
        )
    _check_counts(n_boot, n_perm, alpha)
    xa, ya = _clean_pairs(x, y)
    n = len(xa)
    nan = float("nan")
    if n < 3:
        return CorrResult(nan, nan, nan, nan, n, method, REASON_FEW)
    if _is_constant(xa) or _is_constant(ya):
        return CorrResult(nan, nan, nan, nan, n, method, REASON_CONSTANT)
    rank = method == "spearman"

    def stat(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        if rank:
            xs, ys = _ranks(xs), _ranks(ys)
        return _rowwise_pearson(xs, ys)

    r_obs = float(stat(xa[None], ya[None])[0])
    # Two streams from one seed: the bootstrap and the permutations do not share draws, so
    # changing n_perm leaves the interval unchanged and vice versa.
    boot_rng, perm_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    boots = []
    for start in range(0, n_boot, chunk):  # chunks bound memory at n_boot * n floats
        m = min(chunk, n_boot - start)
        idx = boot_rng.integers(0, n, size=(m, n))
        boots.append(stat(xa[idx], ya[idx]))
    ci_low, ci_high = _percentile_ci(np.concatenate(boots), alpha)
    # Ranks are invariant under permutation, so Spearman ranks once and permutes the ranks.
    xp, yp = (_ranks(xa), _ranks(ya)) if rank else (xa, ya)
    exceed = 0
    for start in range(0, n_perm, chunk):
        m = min(chunk, n_perm - start)
        perm = perm_rng.permuted(np.broadcast_to(yp, (m, n)), axis=1)
        r_perm = _rowwise_pearson(np.broadcast_to(xp, (m, n)), perm)
        # The tolerance counts permutations that tie the observed |r| up to round-off.
        exceed += int(np.sum(np.abs(r_perm) >= abs(r_obs) - 1e-12))
    p = (1 + exceed) / (1 + n_perm)
    return CorrResult(r_obs, ci_low, ci_high, float(p), n, method)


def pearson(
    x: Sequence[float],
    y: Sequence[float],
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> CorrResult:
    """Pearson correlation with a pairs-bootstrap percentile CI and a permutation p-value.

    Args:
        x: first variable, ``[n]``.
        y: second variable, ``[n]``; pairs with a NaN in either are dropped.
        n_boot: bootstrap resamples.
        n_perm: permutations for the two-sided p-value.
        seed: seed of the ``numpy.random.Generator``.
        alpha: ``1 - confidence`` of the interval (0.05 gives a 95% CI).

    Returns:
        A :class:`CorrResult`; NaN fields with a ``reason`` for degenerate inputs.
    """
    return _correlation(x, y, "pearson", n_boot, n_perm, seed, alpha)


def spearman(
    x: Sequence[float],
    y: Sequence[float],
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> CorrResult:
    """Spearman rank correlation; same interface and inference as :func:`pearson`."""
    return _correlation(x, y, "spearman", n_boot, n_perm, seed, alpha)


def correlate(
    df: pd.DataFrame,
    x: str,
    y: str,
    by: str | Sequence[str] | None = None,
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Correlate two columns, optionally within groups, with both methods.

    Args:
        df: a tidy frame holding columns ``x``, ``y`` and ``by``.
        x: name of the first variable's column.
        y: name of the second variable's column.
        by: grouping column(s); each group gets its own correlation.
        n_boot: bootstrap resamples.
        n_perm: permutations.
        seed: base seed; every group and method uses this same seed, so a group's result does not
            depend on which other groups are present.
        methods: any of ``"pearson"``, ``"spearman"``.
        alpha: ``1 - confidence``.

    Returns:
        One row per (group, method) with columns ``*by, x, y, method, r, ci_low, ci_high,
        p_value, n, reason``; ``x`` and ``y`` hold the column *names*.

    Raises:
        InterpError: for a missing column or an unknown method.
    """
    by_cols = [by] if isinstance(by, str) else list(by or [])
    missing = [c for c in [x, y, *by_cols] if c not in df.columns]
    if missing:
        raise InterpError(f"correlate: missing columns {missing}; have {list(df.columns)}")
    for m in methods:
        if m not in METHODS:
            raise InterpError(f"unknown correlation method {m!r}; valid choices: pearson, spearman")
    groups = df.groupby(by_cols, sort=True, dropna=False) if by_cols else [((), df)]
    rows = []
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        for m in methods:
            res = _correlation(sub[x], sub[y], m, n_boot, n_perm, seed, alpha)
            rows.append({**dict(zip(by_cols, key, strict=True)), "x": x, "y": y, **res.to_dict()})
    cols = [*by_cols, "x", "y", "method", "r", "ci_low", "ci_high", "p_value", "n", "reason"]
    return pd.DataFrame(rows, columns=cols)


def _values(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def bootstrap_mean_ci(
    values: Sequence[float], n_boot: int = 2000, seed: int = 0, alpha: float = 0.05
) -> MeanCI:
    """Mean with a percentile bootstrap CI (NaN values dropped).

    Args:
        values: the sample, ``[n]``.
        n_boot: bootstrap resamples.
        seed: generator seed.
        alpha: ``1 - confidence``.

    Returns:
        A :class:`MeanCI`; with a single value the interval collapses to it, with none it is NaN.
    """
    _check_counts(n_boot, 1, alpha)
    a = _values(values)
    nan = float("nan")
    if len(a) == 0:
        return MeanCI(nan, nan, nan, 0, reason=REASON_EMPTY)
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(-1)
    lo, hi = _percentile_ci(means, alpha)
    return MeanCI(float(a.mean()), lo, hi, len(a))


def bootstrap_diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    paired: bool = False,
) -> MeanCI:
    """Difference of means ``mean(a) - mean(b)`` with a percentile bootstrap CI.

    The two samples are resampled independently (or, with ``paired``, as pairs), so each keeps its
    own sampling unit: in the causal test ``a`` are per-example drops and ``b`` per-draw drops.
    The reported ``p_value`` is one-sided for ``mean(a) > mean(b)``: the fraction of bootstrap
    differences at or below 0 (with the same ``+1`` correction as a permutation test). It is a
    bootstrap p-value, a companion to the interval rather than an exact test.

    Args:
        a: first sample, ``[n_a]``.
        b: second sample, ``[n_b]`` (``n_b == n_a`` when ``paired``).
        n_boot: bootstrap resamples.
        seed: generator seed.
        alpha: ``1 - confidence``.
        paired: resample ``(a_i, b_i)`` pairs together.

    Returns:
        A :class:`MeanCI` with ``n = n_a + n_b`` (``n_a`` when paired).
    """
    _check_counts(n_boot, 1, alpha)
    nan = float("nan")
    if paired:
        aa, bb = _clean_pairs(a, b)
        if len(aa) == 0:
            return MeanCI(nan, nan, nan, 0, reason=REASON_EMPTY)
        d = aa - bb
        rng = np.random.default_rng(seed)
        diffs = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(-1)
        est, n = float(d.mean()), len(d)
    else:
        aa, bb = _values(a), _values(b)
        if len(aa) == 0 or len(bb) == 0:
            return MeanCI(nan, nan, nan, len(aa) + len(bb), reason=REASON_EMPTY)
        rng_a, rng_b = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        ma = aa[rng_a.integers(0, len(aa), size=(n_boot, len(aa)))].mean(-1)
        mb = bb[rng_b.integers(0, len(bb), size=(n_boot, len(bb)))].mean(-1)
        diffs = ma - mb
        est, n = float(aa.mean() - bb.mean()), len(aa) + len(bb)
    lo, hi = _percentile_ci(diffs, alpha)
    p = (1 + int(np.sum(diffs <= 0))) / (1 + n_boot)
    return MeanCI(est, lo, hi, n, p_value=float(p))


def rank_p_value(observed: float, null_draws: Sequence[float], greater: bool = True) -> float:
    """One-sided Monte-Carlo (rank) p-value of ``observed`` among draws from the null.

    ``(1 + #{draw >= observed}) / (1 + n)`` for ``greater`` (``<=`` otherwise): the observed value
    counts as one more exchangeable draw, which keeps the test exact under the null.

    Args:
        observed: the statistic of the real configuration.
        null_draws: the statistic on null configurations, ``[n]`` (NaNs dropped).
        greater: the alternative is "observed is larger than the null".
    """
    d = _values(null_draws)
    if not np.isfinite(observed) or len(d) == 0:
        return float("nan")
    hits = np.sum(d >= observed - 1e-12) if greater else np.sum(d <= observed + 1e-12)
    return float((1 + int(hits)) / (1 + len(d)))


def clopper_pearson(
    k: Sequence[float] | float, n: Sequence[float] | float, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) binomial interval for ``k`` successes out of ``n``, elementwise.

    The interval inverts two one-sided binomial tests, so it never undercovers; it is the right
    interval for an exact-match accuracy of ``k`` correct examples out of ``n`` (``k = 0`` gives
    a lower end of 0, ``k = n`` an upper end of 1). ``k`` is rounded to the nearest integer, so
    ``accuracy * n`` may be passed directly.

    Args:
        k: successes (array-like or scalar).
        n: trials, same shape (or broadcastable); ``n = 0`` gives NaN.
        alpha: ``1 - confidence``.

    Returns:
        ``(low, high)`` arrays of the broadcast shape.
    """
    from scipy.stats import beta

    if not 0 < alpha < 1:
        raise InterpError(f"alpha must be in (0, 1), got {alpha!r}")
    k_a = np.rint(np.asarray(k, dtype=np.float64))
    n_a = np.asarray(n, dtype=np.float64)
    k_a, n_a = np.broadcast_arrays(k_a, n_a)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k_a > 0, beta.ppf(alpha / 2, k_a, n_a - k_a + 1), 0.0)
        hi = np.where(k_a < n_a, beta.ppf(1 - alpha / 2, k_a + 1, n_a - k_a), 1.0)
    bad = ~(n_a > 0) | (k_a < 0) | (k_a > n_a)
    lo, hi = np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)
    return lo, hi


def empirical_logit(k: Sequence[float] | float, n: Sequence[float] | float) -> np.ndarray:
    """``log((k + 1/2) / (n - k + 1/2))``: the logit of a proportion that stays finite at 0 and n.

    The half-count correction (Haldane-Anscombe) makes an accuracy of 0 of 1024 a large negative
    number rather than minus infinity, so runs without any transfer still enter a regression.
    """
    k_a = np.asarray(k, dtype=np.float64)
    n_a = np.asarray(n, dtype=np.float64)
    return np.log((k_a + 0.5) / (n_a - k_a + 0.5))


def mde_t(se: float, df: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect of a two-sided t test: ``(t_{1-alpha/2} + t_power) * se``.

    The normal-theory shift a test with standard error ``se`` and ``df`` degrees of freedom
    detects with probability ``power`` at level ``alpha``. Beside a "no evidence" line it says
    what the design could have seen: an effect below it may well be there. It is an
    approximation for permutation and sign-flip tests (exact under normal errors), which is why
    the plan's simulated power (:mod:`interp.stats.power`) is the reference.

    Returns:
        The MDE (NaN for a non-finite ``se`` or ``df < 1``).
    """
    from scipy.stats import t as t_dist

    if not np.isfinite(se) or not df >= 1:
        return float("nan")
    return float((t_dist.ppf(1 - alpha / 2, df) + t_dist.ppf(power, df)) * se)


def mde_mean(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """:func:`mde_t` for a mean of ``n`` values with spread ``sd`` (``se = sd / sqrt(n)``)."""
    if n < 2:
        return float("nan")
    return mde_t(sd / math.sqrt(n), n - 1, alpha, power)


def mde_two_groups(sd: float, n_a: int, n_b: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """:func:`mde_t` for a difference of two means with pooled spread ``sd``."""
    if n_a < 1 or n_b < 1 or n_a + n_b < 3:
        return float("nan")
    return mde_t(sd * math.sqrt(1 / n_a + 1 / n_b), n_a + n_b - 2, alpha, power)


def not_testable(n: int, why: str = "") -> str:
    """The one phrase every view uses when it has too few units for a test."""
    return f"not testable (n={n}{', ' + why if why else ''})"
