"""Power of the family's tests, simulated before training (``analyses/family/PLAN.md``).

A test that cannot detect the effect it looks for answers "no evidence" whatever the truth is.
This module simulates the planned family many times over, with the variances and the floor that
the zoo's 15 ``r4_*`` runs show, and runs each planned test on every simulated family, so the
plan can say, per test, how often it detects an effect of a given size (its *power*) and the
smallest effect it detects 80% of the time (its *minimum detectable effect*, MDE).

**The transfer model (the floor).** A run's main-task transfer (``k`` of ``n`` items correct in
the transfer range 7..12) is all-or-nothing at this scale: half the zoo's runs are at 0 of 1536,
the transferring ``both`` runs at 11-14%. So a run has a latent propensity
``z = mu_c + effect * overlap + sigma_c * u`` (``overlap`` standardised within condition,
``u ~ N(0, 1)``): it transfers only if ``z > tau_c`` (a hurdle), and then ``k ~ Binomial(n,
expit(z))``; otherwise ``k ~ Binomial(n, expit(-12))`` (0 in practice). ``effect`` is in logits
per within-condition standard deviation of overlap. The condition parameters
(:data:`ZOO_CONDITIONS`) reproduce the zoo: ``both`` transfers in 5 of 6 seeds at logit about
-2 (spread 0.6-0.8), ``no carry`` in about half, ``carry only`` and the control never.

**The tests** are the planned ones, made fast by exact algebra rather than approximated:

* primary: within-condition slope of the outcome on overlap, condition as a factor, with the
  Freedman-Lane within-condition permutation p-value. With condition as the only covariate the
  Freedman-Lane residuals are the within-condition centred outcomes, so the permutation
  distribution of ``|t|`` is that of ``|sum x~ y~_perm|`` (``t`` is monotone in the partial
  correlation, whose denominators a within-condition permutation leaves unchanged): one matrix
  product per chunk of permutations (:func:`within_slope_p`; a test checks it against
  :func:`interp.stats.permutation.permutation_p`). Two outcomes: the within-condition mid-rank of
  the
  count (:func:`within_ranks`, the pre-declared primary) and the empirical logit (secondary);
* related vs control: difference in mean overlap, exact-in-distribution label permutations;
* within-run: the sign-flip test over runs of :func:`interp.stats.within.run_statistic` on simulated
  checkpoint series with shared saturating trends;
* head sets: the sign-flip test over runs of per-run slopes, effect in between-run SDs;
* intervention: ``disjoint`` vs ``shared`` difference in transfer (rank outcome), all
  ``C(10, 5)`` label assignments.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int
from scipy.stats import rankdata

from interp.stats.intervals import empirical_logit

FLOOR_LOGIT = -12.0
"""Latent logit of a run that does not transfer: ``expit(-12) * 1536 ~ 1e-2`` items."""


@dataclass(frozen=True)
class Condition:
    """One condition of the family: its run count and its transfer hurdle (module docstring).

    Attributes:
        name: condition name.
        n_runs: seeds planned.
        mu: mean latent transfer logit.
        sigma: seed-to-seed spread of the latent logit.
        tau: hurdle: a run transfers only when its latent logit exceeds this.
    """

    name: str
    n_runs: int
    mu: float
    sigma: float
    tau: float


ZOO_CONDITIONS = (
    # both: transferring seeds at pooled logits -1.8, -2.0, -2.1, -1.8, about -3.3 (the extra
    # seed), one seed at 0 of 1536: P(z < tau) = P(u < -1) = 0.16.
    Condition("both", 20, -2.0, 0.8, -2.8),
    # no carry: one seed at -1.3, one at -4.4 (18 of 1536): transfers about half the time.
    Condition("nocarry", 6, -2.5, 1.5, -2.5),
    # carry only and control 1: 0 of 1536 in every zoo seed.
    Condition("carry", 6, -8.0, 0.8, -2.8),
    Condition("control1", 6, -8.0, 0.8, -2.8),
)
N_TRANSFER_ITEMS = 6 * 256
"""Transfer-range items per run in the plan: lengths 7..12 at 256 items each."""


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def simulate_transfer(
    conditions: Sequence[Condition],
    effect: float,
    n_datasets: int,
    rng: np.random.Generator,
    n_items: int = N_TRANSFER_ITEMS,
) -> tuple[Float[np.ndarray, "D n"], Int[np.ndarray, "D n"], Int[np.ndarray, " n"]]:
    """Simulated families: standardised overlap, transfer counts and condition codes.

    Returns:
        ``(overlap [D, n], k [D, n], codes [n])``.
    """
    codes = np.concatenate([np.full(c.n_runs, i) for i, c in enumerate(conditions)])
    mu = np.concatenate([np.full(c.n_runs, c.mu) for c in conditions])
    sigma = np.concatenate([np.full(c.n_runs, c.sigma) for c in conditions])
    tau = np.concatenate([np.full(c.n_runs, c.tau) for c in conditions])
    n = len(codes)
    x = rng.standard_normal((n_datasets, n))
    for c in np.unique(codes):  # exact within-condition standardisation: effect per SD
        b = codes == c
        xc = x[:, b] - x[:, b].mean(1, keepdims=True)
        x[:, b] = xc / np.maximum(xc.std(1, keepdims=True), 1e-12)
    z = mu + effect * x + sigma * rng.standard_normal((n_datasets, n))
    p = _expit(np.where(z > tau, z, FLOOR_LOGIT))
    k = rng.binomial(n_items, p)
    return x, k, codes


def within_ranks(v: Float[np.ndarray, "D n"], codes: Int[np.ndarray, " n"]) -> np.ndarray:
    """Mid-ranks of ``v`` within each condition, scaled to ``(rank - 0.5) / n_c`` in (0, 1).

    Ties (every run at 0 correct) share their average rank, so a floor of ``m`` runs becomes one
    value however many items each run had: one lucky item moves a run by one rank at most.
    """
    out = np.empty_like(np.asarray(v, np.float64))
    for c in np.unique(codes):
        b = codes == c
        out[:, b] = (rankdata(v[:, b], axis=-1) - 0.5) / b.sum()
    return out


def _center_within(v: np.ndarray, codes: np.ndarray) -> np.ndarray:
    out = np.array(v, np.float64)
    for c in np.unique(codes):
        b = codes == c
        out[..., b] -= out[..., b].mean(-1, keepdims=True)
    return out


def within_permutation_indices(
    codes: Int[np.ndarray, " n"], n_perm: int, rng: np.random.Generator
) -> Int[np.ndarray, "P n"]:
    """``n_perm`` random row permutations that keep every row inside its condition."""
    keys = rng.random((n_perm, len(codes))) + codes[None, :] * 2.0
    order = np.argsort(keys, axis=1, kind="stable")
    slots = np.argsort(codes, kind="stable")
    out = np.empty_like(order)
    out[:, slots] = order
    return out


def within_slope_p(
    x: Float[np.ndarray, "D n"],
    y: Float[np.ndarray, "D n"],
    codes: Int[np.ndarray, " n"],
    perms: Int[np.ndarray, "P n"],
    chunk: int = 512,
) -> Float[np.ndarray, " D"]:
    """Two-sided within-condition permutation p-value of the overlap slope (condition factor
    only), batched over datasets; equal to Freedman-Lane's (module docstring).

    Returns:
        ``[D]`` p-values ``(1 + #hits) / (1 + P)``; NaN where either variable is constant
        within every condition.
    """
    xc, yc = _center_within(x, codes), _center_within(y, codes)
    obs = np.abs((xc * yc).sum(-1))
    hits = np.zeros(len(x))
    for s in range(0, len(perms), chunk):
        pm = perms[s : s + chunk]
        stat = np.abs(np.einsum("dn,dpn->dp", xc, yc[:, pm]))
        hits += (stat >= obs[:, None] * (1 - 1e-12) - 1e-12).sum(1)
    p = (1 + hits) / (1 + len(perms))
    bad = ((xc**2).sum(-1) < 1e-20) | ((yc**2).sum(-1) < 1e-20)
    return np.where(bad, np.nan, p)


def label_permutation_p(
    v: Float[np.ndarray, "D n"], is_b: np.ndarray, rng: np.random.Generator, n_perm: int = 2000
) -> Float[np.ndarray, " D"]:
    """Two-sided permutation p-value of ``mean(v[~is_b]) - mean(v[is_b])``, batched: every label
    assignment when there are at most 20,000, else ``n_perm`` random ones (+1 rule)."""
    n, n_b = len(is_b), int(np.sum(is_b))
    total = math.comb(n, n_b)
    if total <= 20_000:
        combos = np.array(list(itertools.combinations(range(n), n_b)))
        exact = True
    else:
        combos = np.argsort(rng.random((n_perm, n)), axis=1)[:, :n_b]
        exact = False
    mask = np.zeros((len(combos), n))
    np.put_along_axis(mask, combos, 1.0, axis=1)
    tot = v.sum(-1, keepdims=True)
    sb = v @ mask.T  # [D, P]
    d = (tot - sb) / (n - n_b) - sb / n_b
    obs = v[:, ~is_b].mean(-1) - v[:, is_b].mean(-1)
    hits = (np.abs(d) >= np.abs(obs)[:, None] - 1e-12).sum(1)
    return hits / len(combos) if exact else (1 + hits) / (1 + len(combos))


def mde(effects: Sequence[float], power: Sequence[float], target: float = 0.8) -> float:
    """Smallest effect whose power reaches ``target``, by linear interpolation on the grid
    (NaN when no effect in the grid reaches it)."""
    e, p = np.asarray(effects, float), np.asarray(power, float)
    order = np.argsort(e)
    e, p = e[order], p[order]
    above = np.flatnonzero(p >= target)
    if not len(above):
        return float("nan")
    i = above[0]
    if i == 0:
        return float(e[0])
    return float(e[i - 1] + (target - p[i - 1]) * (e[i] - e[i - 1]) / (p[i] - p[i - 1]))


def power_primary(
    effects: Sequence[float],
    conditions: Sequence[Condition] = ZOO_CONDITIONS,
    n_datasets: int = 500,
    n_perm: int = 400,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, list[float]]:
    """Power of the primary test per effect, for the rank (primary) and logit outcomes."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"rank": [], "logit": []}
    for e in effects:
        x, k, codes = simulate_transfer(conditions, e, n_datasets, rng)
        perms = within_permutation_indices(codes, n_perm, rng)
        for name, y in (
            ("rank", within_ranks(k, codes)),
            ("logit", empirical_logit(k, N_TRANSFER_ITEMS)),
        ):
            p = within_slope_p(x, y, codes, perms)
            # A dataset where the outcome is constant in every condition cannot reject.
            out[name].append(float(np.mean(np.nan_to_num(p, nan=1.0) <= alpha)))
    return out


def power_two_groups(
    effects: Sequence[float],
    n_a: int,
    n_b: int,
    n_datasets: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[float]:
    """Power of the two-sided label-permutation test of a mean difference of ``effect`` SDs
    (normal data): related vs control overlap, or any two-group contrast."""
    rng = np.random.default_rng(seed)
    is_b = np.r_[np.zeros(n_a, bool), np.ones(n_b, bool)]
    out = []
    for e in effects:
        v = rng.standard_normal((n_datasets, n_a + n_b)) + np.where(is_b, 0.0, e)
        out.append(float(np.mean(label_permutation_p(v, is_b, rng) <= alpha)))
    return out


def power_intervention(
    effects: Sequence[float],
    n_per_arm: int | tuple[int, int] = 5,
    n_datasets: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    both: Condition = ZOO_CONDITIONS[0],
) -> list[float]:
    """Power of ``disjoint`` vs ``shared`` on the transfer rank: ``shared`` is the ``both``
    condition; ``disjoint`` has its latent transfer logit lowered by ``effect``.

    ``n_per_arm`` is the seeds per arm, or ``(n_shared, n_disjoint)`` for unequal arms (a
    comparison restricted to a subset of runs, such as the competent ones)."""
    n_s, n_d = (n_per_arm, n_per_arm) if isinstance(n_per_arm, int) else n_per_arm
    rng = np.random.default_rng(seed)
    conds = (Condition("shared", n_s, both.mu, both.sigma, both.tau),)
    is_b = np.r_[np.zeros(n_s, bool), np.ones(n_d, bool)]
    out = []
    for e in effects:
        _, k_s, _ = simulate_transfer(conds, 0.0, n_datasets, rng)
        shifted = Condition("disjoint", n_d, both.mu - e, both.sigma, both.tau)
        _, k_d, _ = simulate_transfer([shifted], 0.0, n_datasets, rng)
        v = rankdata(np.concatenate([k_s, k_d], axis=1), axis=-1)
        out.append(float(np.mean(label_permutation_p(v, is_b, rng) <= alpha)))
    return out


def sign_flip_power(
    effects: Sequence[float],
    n_runs: int,
    n_datasets: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[float]:
    """Power of the sign-flip test of per-run summaries ``~ N(effect, 1)`` (effect in between-run
    SDs): the head-set test's slopes, whose spread no run has measured yet."""
    from interp.stats.within import sign_flip_p

    rng = np.random.default_rng(seed)
    return [
        float(
            np.mean(sign_flip_p(rng.standard_normal((n_datasets, n_runs)) + e, seed=seed) <= alpha)
        )
        for e in effects
    ]


DEFAULT_STEPS = (500, 1000, 1500, 2000, 2400, 2800, 3000, 3200, 3400, 3600, 3800, 4000)
"""The family's checkpoints (dense in the second half)."""


def simulate_checkpoints(
    n_datasets: int,
    n_runs: int,
    steps: Sequence[int],
    rho: float,
    rng: np.random.Generator,
    trend: str = "saturating",
    tau: float = 1000.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlap and transfer-logit series ``[D, m, K]`` of runs with a shared trend plus random
    walks whose steps correlate ``rho`` (the within-run effect), with the steps' spread."""
    s = np.asarray(steps, float)
    K = len(s)
    if trend == "saturating":
        f = 1.0 - np.exp(-s / tau)
    elif trend == "linear":
        f = s / s.max()
    elif trend == "log":
        f = np.log(s) / np.log(s.max())
    else:
        raise ValueError(trend)
    ex = rng.standard_normal((n_datasets, n_runs, K))
    ey = rho * ex + math.sqrt(1 - rho**2) * rng.standard_normal((n_datasets, n_runs, K))
    amp_x = rng.uniform(2.0, 4.0, (n_datasets, n_runs, 1))
    amp_y = rng.uniform(4.0, 8.0, (n_datasets, n_runs, 1))
    x = amp_x * f + 0.3 * np.cumsum(ex, -1)
    y = amp_y * f + 0.3 * np.cumsum(ey, -1)
    return x, y, s


def power_within(
    effects: Sequence[float],
    n_runs: int,
    n_checkpoints: int,
    n_datasets: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    trend: str = "saturating",
) -> list[float]:
    """Power of the within-run sign-flip test (``diff`` statistic) with ``n_checkpoints`` kept
    per run (the last ones of :data:`DEFAULT_STEPS`) and ``rho`` = the effect."""
    from interp.stats.within import run_statistic, sign_flip_p

    rng = np.random.default_rng(seed)
    steps = DEFAULT_STEPS[-n_checkpoints:]
    out = []
    for e in effects:
        x, y, s = simulate_checkpoints(n_datasets, n_runs, steps, e, rng, trend)
        r = run_statistic(x, y, s)
        out.append(float(np.mean(sign_flip_p(r, seed=seed) <= alpha)))
    return out
