"""The primary test: across runs, does more head overlap go with more length transfer?

**The unit is the run.** Checkpoints of one run are autocorrelated and share its training
trajectory, so they are not independent observations (:mod:`interp.within` handles them). Runs
of different seeds and conditions are: each was trained from its own seed, so one row per run
is the honest sample. The zoo's 4-layer family has conditions (``both``, ``nocarry``,
``carry``: related auxiliaries; ``control1``: an unrelated one) x seeds.

**The model.** One row per run at its final checkpoint::

    logit(transfer) = b0 + b_overlap * overlap + b_c * competence + b_a * aux + condition

* ``transfer``: the main task's exact-match accuracy pooled over the transfer range
  (``main_max < L <= aux_max``), as an *empirical* logit ``log((k + 1/2) / (n - k + 1/2))``
  from the counts, so a run with no transfer at all is a finite, very negative number;
* ``overlap``: a head-overlap statistic between the main task and its auxiliaries (one method,
  one metric, one statistic per test; never averaged across them);
* ``competence``: the main task's in-distribution accuracy (empirical logit), because a run
  that barely learned the main task can neither transfer nor have crisp head maps;
* ``aux``: the auxiliaries' own accuracy in the transfer range (empirical logit), because the
  main task cannot inherit a length the auxiliary itself does not reach;
* ``condition``: a factor (one dummy per condition after the first), so the overlap
  coefficient is estimated *within* conditions: a difference between conditions in both
  overlap and transfer is not counted as evidence.

It is fitted by ordinary least squares. A covariate that is constant, or a linear combination
of the columns before it (e.g. ``aux`` when every auxiliary is solved), is dropped and listed in
``dropped``, never silently.

**The test.** The null hypothesis is that, given condition and the covariates, transfer does not
depend on overlap. Permutations act *within condition* (a run's values are only exchanged with
another run of the same condition), the model is refitted, and the statistic is the overlap
coefficient's *t* value (a pivot: its null spread does not depend on how collinear overlap is
with the covariates, unlike the raw coefficient's). Two schemes:

* ``freedman_lane`` (default; Freedman & Lane 1983): fit the model *without* overlap, permute
  its residuals within condition, add them back to its fitted values and refit the full model.
  This keeps the covariates' link with transfer intact under the null.
* ``overlap``: permute overlap itself within condition (Manly's scheme). Simple, but when
  overlap is correlated with a covariate (competence, say) the permuted overlap loses that
  correlation, and the test runs a little hot: 6.8-7% false positives at the 5% level in the
  suite's confounded null simulation, against 4-5.5% for Freedman-Lane.

The two-sided p-value is ``(1 + #{|t_perm| >= |t_obs|}) / (1 + n_perm)``. When the
number of distinct within-condition permutations (``prod_c n_c!``) is small they are all
enumerated; when it is below ``MIN_PERMUTATIONS`` (40) no p-value below 0.05 is reachable and the
test reports ``not testable (n=...)`` instead of a number.

**The interval.** The classical t interval ``b +- t_{1-alpha/2, df} se`` of the OLS fit. A
percentile bootstrap over runs resampled within condition (what this replaced) is inflated by
the method with strata of 2-5 runs: with a true effect and exact observations it covered 100%
at 2.5 times the t interval's width (0.94 coverage for the t interval). Beside it, ``mde``: the
coefficient the test detects with 80% power at this design (:func:`interp.stats.mde_t`), quoted
in every "no evidence" line (:func:`describe`).

**The pre-declared models** (:data:`MODELS`, ``analyses/family/PLAN.md``). The primary outcome
is not the logit but the *within-condition rank* of the transfer count
(:func:`within_condition_rank`): half the zoo's runs sit at 0 correct, where one lucky item
moves a run by 1.1 logits, and ranks bound that to one step. The primary model has no covariate
besides condition: competence can be a collider (overlap -> competence <- U -> transfer), and
adjusting for it then creates an effect (29-79% false positives in such simulated nulls). It
is an inclusion rule instead (:data:`COMPETENCE_MIN`). The same model with competence, and the
empirical-logit models (with and without the covariates above), are secondary rows.

**Assumptions.** Runs are independent; within a condition the runs are exchangeable under the
null (same recipe, different seeds); the relation is linear on the logit scale. The test makes
no normality assumption; the *t* value is only a scale-free statistic.

**Secondary: related vs control.** The difference between related and control runs in mean
overlap and in mean transfer (logit), with an exact permutation p-value over the assignments of
the labels to runs and the interval from inverting that test (:func:`related_vs_control`).

**The intervention** (``shared`` vs ``disjoint`` head masks): :func:`arm_contrast`, the exact
rank-sum test of transfer (or competence) between two arms of seeds, with the Hodges-Lehmann
shift and the interval inverting the same test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from scipy.stats import t as t_dist

from interp.errors import InterpError
from interp.permutation import (
    SCHEMES,
    design,
    n_within_permutations,
    ols_t,
    permutation_p,
    stratified_bootstrap,
    within_permutations,
)
from interp.run_table import DEFAULT_N, is_control, run_table
from interp.stats import empirical_logit, mde_t, mde_two_groups

# Re-exported for the tests and callers that imported them from here before the split.
_design, _within_permutations, _stratified_bootstrap = (
    design,
    within_permutations,
    stratified_bootstrap,
)
__all__ = [
    "DEFAULT_N", "PRIMARY", "SCHEMES", "arm_contrast", "between_table", "describe", "is_control",
    "n_within_permutations", "not_testable", "ols_t", "partial_residuals", "permutation_p",
    "prepare", "primary_test", "related_vs_control", "run_table",
]  # fmt: skip

RUN_COLS = ("run", "condition", "seed", "overlap", "transfer_acc", "competence", "aux_acc")
COVARIATES = ("competence", "aux_acc")
OUTCOMES = ("rank", "logit")
MIN_PERMUTATIONS = 40
"""Fewer distinct permutations than this cannot give a two-sided p-value below 0.05."""


def not_testable(n: int, why: str = "") -> str:
    """The one phrase every view uses when it has too few units for a test."""
    return f"not testable (n={n}{', ' + why if why else ''})"


@dataclass(frozen=True)
class PrimaryResult:
    """The overlap coefficient of the between-run model with its test and interval.

    Attributes:
        estimate: the OLS coefficient of overlap (change in logit transfer per unit overlap).
        ci_low: lower end of the classical t interval.
        ci_high: upper end.
        t: the coefficient's t value (the permutation statistic).
        p_value: two-sided within-condition permutation p-value.
        n_runs: runs in the fit.
        n_conditions: conditions among them.
        df_resid: residual degrees of freedom.
        n_perm: permutations used (all of them when ``exact``).
        exact: whether every within-condition permutation was enumerated.
        covariates: covariates kept in the model (comma-joined).
        dropped: covariates dropped as constant or collinear (comma-joined).
        reason: ``""`` or ``not testable (n=...)``.
        outcome: ``rank`` (within-condition mid-rank of the transfer count, the pre-declared
            primary outcome) or ``logit`` (empirical logit of transfer).
        se: the coefficient's OLS standard error.
        mde: the coefficient the test detects with 80% power at this design
            (:func:`interp.stats.mde_t`): what a "no evidence" result could have seen.
    """

    estimate: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float
    n_runs: int
    n_conditions: int
    df_resid: int
    n_perm: int
    exact: bool
    covariates: str
    dropped: str
    reason: str = ""
    outcome: str = "logit"
    se: float = float("nan")
    mde: float = float("nan")
    fitted: dict = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("fitted")
        return d


# --------------------------------------------------------------------------------------------
# The primary test


def _logits(df: pd.DataFrame, col: str) -> np.ndarray:
    n = df[f"{col}_n"] if f"{col}_n" in df.columns else pd.Series(DEFAULT_N, index=df.index)
    n = n.to_numpy(np.float64)
    return empirical_logit(df[col].to_numpy(np.float64) * n, n)


def prepare(runs: pd.DataFrame, covariates: Sequence[str] = COVARIATES) -> pd.DataFrame:
    """Validate a run table and add ``y`` (logit transfer) and logit covariates.

    Accuracies are turned into empirical logits with the counts in ``<col>_n`` columns when
    present (else ``DEFAULT_N`` examples). Rows with a missing value are dropped.

    Raises:
        InterpError: missing columns or a run listed twice.
    """
    need = ["run", "condition", "overlap", "transfer_acc", *covariates]
    missing = [c for c in need if c not in runs.columns]
    if missing:
        raise InterpError(f"run table is missing columns {missing}; have {list(runs.columns)}")
    if runs["run"].duplicated().any():
        raise InterpError("run table lists a run more than once; filter to one statistic first")
    df = runs.copy()
    df["y"] = _logits(df, "transfer_acc")
    for c in covariates:
        if c in ("competence", "aux_acc"):
            df[c] = _logits(df, c)
    keep = df[["overlap", "y", *covariates]].notna().all(axis=1)
    df = df[keep].sort_values(["condition", "run"], kind="stable").reset_index(drop=True)
    df["y_rank"] = within_condition_rank(df)
    return df


def within_condition_rank(df: pd.DataFrame) -> np.ndarray:
    """The floor-robust outcome: each run's mid-rank of its transfer count within its condition,
    scaled to ``(rank - 0.5) / n_c`` in (0, 1).

    Half the zoo's runs sit at 0 correct; on the empirical-logit scale one lucky item moves such
    a run by 1.1 logits (0 of 384 gives -6.65, 1 of 384 gives -5.54), as much as the spread
    between transferring seeds. Ranked, every run at the floor shares one tied rank, and a
    condition whose runs all sit there is constant and carries no weight.
    """
    n = df["transfer_acc_n"] if "transfer_acc_n" in df.columns else DEFAULT_N
    k = np.rint(df["transfer_acc"].to_numpy(np.float64) * np.asarray(n, np.float64))
    out = np.empty(len(df))
    cond = df["condition"].astype(str).to_numpy()
    for c in np.unique(cond):
        b = cond == c
        out[b] = (rankdata(k[b]) - 0.5) / b.sum()
    return out


def primary_test(
    runs: pd.DataFrame,
    covariates: Sequence[str] = COVARIATES,
    n_perm: int = 5000,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    scheme: str = "freedman_lane",
    outcome: str = "logit",
) -> PrimaryResult:
    """The between-run test of overlap on transfer (module docstring).

    Args:
        runs: one row per run: ``run, condition, overlap, transfer_acc`` plus the
            ``covariates`` (accuracies in 0..1; optional ``<col>_n`` example counts).
        covariates: adjustment columns (accuracies are modelled on the logit scale).
        n_perm: random within-condition permutations (all are enumerated when few).
        n_boot: unused, kept for callers (the interval is the classical t interval now).
        seed: generator seed.
        alpha: ``1 - confidence`` of the interval.
        scheme: ``freedman_lane`` (default) or ``overlap`` (see :func:`permutation_p`).
        outcome: ``logit`` (empirical logit of transfer) or ``rank`` (within-condition rank of
            the transfer count, :func:`within_condition_rank`; the pre-declared primary).

    Returns:
        A :class:`PrimaryResult`; ``reason`` says ``not testable (n=...)`` when the runs cannot
        support the test (then every number but ``n_runs`` may be NaN).
    """
    if outcome not in OUTCOMES:
        raise InterpError(f"unknown outcome {outcome!r}; valid: {', '.join(OUTCOMES)}")
    df = prepare(runs, covariates)
    n = len(df)
    n_cond = int(df["condition"].nunique()) if n else 0
    nan = float("nan")

    def fail(why: str, dropped: Sequence[str] = (), kept: Sequence[str] = ()) -> PrimaryResult:
        df_resid = max(n - 1 - len(kept) - max(n_cond, 1), 0)
        return PrimaryResult(
            nan,
            nan,
            nan,
            nan,
            nan,
            n,
            n_cond,
            df_resid,
            0,
            False,
            ",".join(kept),
            ",".join(dropped),
            not_testable(n, why),
            outcome,
        )

    if n < 4:
        return fail("too few runs")
    X, names, dropped = design(df, covariates)
    kept = names[2:]
    p = X.shape[1]
    if n - p < 2:
        return fail(f"{p} parameters leave {n - p} residual df", dropped, kept)
    y = df["y" if outcome == "logit" else "y_rank"].to_numpy(np.float64)
    b_obs, t_obs = ols_t(X, y)
    if not np.isfinite(t_obs):
        return fail("overlap or transfer is constant within every condition", dropped, kept)
    codes = pd.factorize(df["condition"])[0]
    total = n_within_permutations(df["condition"])
    if total < MIN_PERMUTATIONS:
        return fail(f"only {total} within-condition permutations", dropped, kept)
    rng_perm = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
    perms, exact = within_permutations(codes, n_perm, rng_perm)
    pval = float(permutation_p(X[None], y[None], perms, exact, scheme)[0])
    # The classical t interval: it covers at the nominal rate under normal errors (0.94 in the
    # issue's simulation), where a percentile bootstrap over strata of 2-5 runs covered 100%
    # at 2.5 times the width. The permutation p-value stays the test.
    se = abs(float(b_obs) / float(t_obs)) if t_obs != 0 else float("nan")
    q = float(t_dist.ppf(1 - alpha / 2, n - p))
    lo, hi = float(b_obs) - q * se, float(b_obs) + q * se
    fitted = {
        "X": X,
        "y": y,
        "names": names,
        "run": df["run"].tolist(),
        "condition": df["condition"].astype(str).tolist(),
    }
    return PrimaryResult(
        float(b_obs),
        lo,
        hi,
        float(t_obs),
        float(pval),
        n,
        n_cond,
        n - p,
        len(perms),
        exact,
        ",".join(kept),
        ",".join(dropped),
        "",
        outcome,
        se,
        mde_t(se, n - p, alpha),
        fitted,
    )


def partial_residuals(res: PrimaryResult) -> pd.DataFrame:
    """Component-plus-residual values of overlap: ``e + b_overlap * overlap``, per run.

    Plotted against overlap, their slope is exactly the fitted overlap coefficient, and the
    scatter shows whether one run drives it.
    """
    f = res.fitted
    if not f:
        return pd.DataFrame(columns=["run", "condition", "overlap", "partial_residual"])
    X, y = f["X"], f["y"]
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    e = y - X @ beta
    return pd.DataFrame(
        {
            "run": f["run"],
            "condition": f["condition"],
            "overlap": X[:, 1],
            "partial_residual": e + beta[1] * X[:, 1],
        }
    )


# --------------------------------------------------------------------------------------------
# Secondary: related vs control (:func:`interp.run_table.is_control` names the controls)


def related_vs_control(
    runs: pd.DataFrame,
    values: Sequence[str] = ("overlap", "y"),
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Difference of means between related and control runs, per value column.

    The p-value is exact: every assignment of the control labels to the runs (``C(n, n_ctrl)``)
    is enumerated and the two-sided p-value is the fraction whose ``|difference|`` reaches the
    observed one. The interval inverts that same test: the shifts ``d`` for which the test of
    "related values minus ``d``" against the controls does not reject (:func:`_shift_interval`),
    so it excludes 0 exactly when ``p <= alpha``. (The percentile bootstrap it replaces excluded
    0 at p = 0.095 and, with 3 control runs, in 15.5% of null datasets.) ``mde`` is the
    difference the test would detect with 80% power at these group sizes and the pooled spread
    (:func:`interp.stats.mde_two_groups`).

    Args:
        runs: a :func:`prepare`d run table (``y`` = logit transfer), or any table with
            ``condition`` and the ``values`` columns; ``kind`` (``related``/``control``) is
            taken from the table when present, else from :func:`is_control`.
        values: columns to contrast.
        n_boot: unused, kept for callers (the interval inverts the test now).
        seed: seed of the random labellings (used only beyond 50,000 assignments).
        alpha: ``1 - confidence``.

    Returns:
        One row per value: ``value, related_mean, control_mean, diff, ci_low, ci_high, p_value,
        n_related, n_control, mde, reason``.
    """
    df = runs if "y" in runs.columns or "y" not in values else prepare(runs)
    kind = (
        df["kind"].astype(str).eq("control")
        if "kind" in df.columns
        else df["condition"].map(is_control)
    ).to_numpy(bool)
    n_c, n_r = int(kind.sum()), int((~kind).sum())
    rows = []
    rng = np.random.default_rng(seed)
    for v in values:
        x = df[v].to_numpy(np.float64)
        row = {"value": v, "n_related": n_r, "n_control": n_c}
        nan = float("nan")
        total = math.comb(n_r + n_c, n_c) if n_c and n_r else 0
        if n_c < 2 or n_r < 2 or total < MIN_PERMUTATIONS:
            rows.append(
                {
                    **row,
                    "related_mean": x[~kind].mean() if n_r else nan,
                    "control_mean": x[kind].mean() if n_c else nan,
                    "diff": nan,
                    "ci_low": nan,
                    "ci_high": nan,
                    "p_value": nan,
                    "mde": nan,
                    "reason": not_testable(n_r + n_c, f"{n_r} related, {n_c} control"),
                }
            )
            continue
        obs = x[~kind].mean() - x[kind].mean()
        n = len(x)
        if total <= 50_000:
            combos = np.array(list(itertools.combinations(range(n), n_c)))
        else:
            combos = np.argsort(rng.random((20_000, n)), axis=1)[:, :n_c]
        mask = np.zeros((len(combos), n), dtype=bool)
        np.put_along_axis(mask, combos, True, axis=1)
        d = (x * ~mask).sum(1) / n_r - (x * mask).sum(1) / n_c
        exact = total <= 50_000
        hits = int(np.sum(np.abs(d) >= abs(obs) - 1e-12))
        p = hits / len(d) if exact else (1 + hits) / (1 + len(d))
        xr, xc = x[~kind], x[kind]
        lo, hi = _shift_interval(x, ~kind, mask, obs, exact, alpha)
        pooled = math.sqrt(
            (((xr - xr.mean()) ** 2).sum() + ((xc - xc.mean()) ** 2).sum()) / (n - 2)
        )
        rows.append(
            {
                **row,
                "related_mean": xr.mean(),
                "control_mean": xc.mean(),
                "diff": obs,
                "ci_low": float(lo),
                "ci_high": float(hi),
                "p_value": float(p),
                "mde": mde_two_groups(pooled, n_r, n_c, alpha),
                "reason": "",
            }
        )
    cols = [
        "value",
        "related_mean",
        "control_mean",
        "diff",
        "ci_low",
        "ci_high",
        "p_value",
        "n_related",
        "n_control",
        "mde",
        "reason",
    ]
    return pd.DataFrame(rows, columns=cols)


def _shift_interval(
    x: np.ndarray,
    related: np.ndarray,
    mask: np.ndarray,
    obs: float,
    exact: bool,
    alpha: float,
    grid: int = 801,
) -> tuple[float, float]:
    """The shifts ``d`` not rejected by the label-permutation test of ``x - d * related``.

    Shifting the related runs by ``d`` shifts every labelling's difference linearly: a labelling
    with ``mask`` (its control set) gets ``A - d * B``, where ``A`` and ``B`` are its
    differences of ``x`` and of the related indicator, and the observed difference becomes
    ``obs - d``. So one pass over the labellings gives the p-value at every ``d`` of a grid
    around ``obs``; the interval is the accepted grid points' range.
    """
    r = related.astype(np.float64)
    n_r, n_c = int(related.sum()), int((~related).sum())
    A = (x * ~mask).sum(1) / n_r - (x * mask).sum(1) / n_c
    B = (r * ~mask).sum(1) / n_r - (r * mask).sum(1) / n_c
    span = 2.0 * (float(np.ptp(x)) + 1e-12)

    def pvals(d: np.ndarray) -> np.ndarray:
        out = np.empty(len(d))
        for s in range(0, len(d), 64):  # bounds memory at 64 x labellings
            dd = d[s : s + 64, None]
            hits = (np.abs(A[None] - dd * B[None]) >= np.abs(obs - dd) - 1e-12).sum(1)
            out[s : s + 64] = hits / len(A) if exact else (1 + hits) / (1 + len(A))
        return out

    # 0 is on the grid, so the interval and the p-value agree on it exactly.
    d = np.union1d(np.linspace(obs - span, obs + span, grid), [0.0, obs])
    acc = pvals(d) > alpha
    if not acc.any():
        return float("nan"), float("nan")
    i, j = np.flatnonzero(acc)[[0, -1]]
    lo, hi = float(d[i]), float(d[j])
    # Refine each end by bisection between the last accepted and first rejected grid points.
    for end, out in ((i, i - 1), (j, j + 1)):
        if not 0 <= out < len(d):
            continue
        a, b = float(d[end]), float(d[out])
        for _ in range(30):
            m = 0.5 * (a + b)
            a, b = (m, b) if pvals(np.array([m]))[0] > alpha else (a, m)
        if end == i:
            lo = a
        else:
            hi = a
    return lo, hi


# --------------------------------------------------------------------------------------------
# The intervention: two arms of seeds (``shared`` vs ``disjoint`` head masks)


def _rank_sum_p(
    y: np.ndarray, in_b: np.ndarray, combos_mask: np.ndarray, shifts: np.ndarray
) -> np.ndarray:
    """Two-sided exact rank-sum (Wilcoxon-Mann-Whitney) p-values of ``y_a - d`` vs ``y_b`` for
    every shift ``d`` in ``shifts``, over all label assignments (``combos_mask`` ``[P, n]``,
    True = arm b). The statistic is the difference of mean mid-ranks; ``|.| >=`` counts."""
    n_b = int(in_b.sum())
    n_a = len(y) - n_b
    out = np.empty(len(shifts))
    for i, d in enumerate(shifts):
        v = np.where(in_b, y, y - d)
        r = rankdata(v)
        sb = combos_mask @ r
        stat = (r.sum() - sb) / n_a - sb / n_b
        obs = r[~in_b].mean() - r[in_b].mean()
        out[i] = np.mean(np.abs(stat) >= abs(obs) - 1e-9)
    return out


def arm_contrast(
    runs: pd.DataFrame,
    arm_a: str = "shared",
    arm_b: str = "disjoint",
    value: str = "transfer_acc",
    alpha: float = 0.05,
) -> dict:
    """The intervention's test: do arm ``a``'s seeds score higher on ``value`` than arm ``b``'s?

    Outcome: the empirical logit of ``value`` (``transfer_acc`` or ``competence``, with counts
    from ``<value>_n``). Test: the exact two-sided rank-sum permutation test (every assignment
    of the arm labels to the runs; robust to the floor, where many seeds tie at 0 correct).
    Estimate: the Hodges-Lehmann shift (median of the pairwise differences a - b, logits), and
    its interval inverts the same test: the shifts ``d`` for which ``a - d`` vs ``b`` is not
    rejected, so it excludes 0 exactly when ``p <= alpha``. With fewer than 40 label
    assignments (e.g. 3 + 3 seeds) no p-value of 0.05 is reachable: ``not testable``.

    Args:
        runs: one row per run with ``condition`` and ``value`` (``<value>_n`` optional);
            ``condition`` holds the arm labels (map the zoo's condition strings, which name the
            head masks, to ``shared`` / ``disjoint`` first).
        arm_a: condition of arm a (``shared``: sharing forced).
        arm_b: condition of arm b (``disjoint``: sharing impossible).
        value: the accuracy column to contrast.
        alpha: ``1 - confidence``.

    Returns:
        ``{value, arm_a, arm_b, n_a, n_b, median_a, median_b, estimate, ci_low, ci_high,
        p_value, reason}``; medians are accuracies, the estimate and interval logits.
    """
    df = runs[runs["condition"].isin([arm_a, arm_b])]
    n = df[f"{value}_n"] if f"{value}_n" in df.columns else pd.Series(DEFAULT_N, index=df.index)
    y = empirical_logit(df[value].to_numpy(np.float64) * n.to_numpy(np.float64), n)
    in_b = df["condition"].eq(arm_b).to_numpy()
    n_a, n_b = int((~in_b).sum()), int(in_b.sum())
    acc = df[value].to_numpy(np.float64)
    nan = float("nan")
    row = {
        "value": value, "arm_a": arm_a, "arm_b": arm_b, "n_a": n_a, "n_b": n_b,
        "median_a": float(np.median(acc[~in_b])) if n_a else nan,
        "median_b": float(np.median(acc[in_b])) if n_b else nan,
    }  # fmt: skip
    total = math.comb(n_a + n_b, n_b) if n_a and n_b else 0
    if total < MIN_PERMUTATIONS:
        why = not_testable(n_a + n_b, f"{n_a} {arm_a}, {n_b} {arm_b}: {total} label assignments")
        return {**row, "estimate": nan, "ci_low": nan, "ci_high": nan, "p_value": nan,
                "reason": why}  # fmt: skip
    if total > 200_000:
        raise InterpError(f"arm_contrast enumerates every labelling; {total} are too many")
    combos = np.array(list(itertools.combinations(range(n_a + n_b), n_b)))
    mask = np.zeros((len(combos), n_a + n_b))
    np.put_along_axis(mask, combos, 1.0, axis=1)
    est = float(np.median(y[~in_b][:, None] - y[in_b][None, :]))
    p = float(_rank_sum_p(y, in_b, mask, np.array([0.0]))[0])
    # The test of a - d vs b changes only where d crosses a pairwise difference, so those, the
    # midpoints between them and 0 are every shift that can matter: the interval is exact.
    pw = np.unique(y[~in_b][:, None] - y[in_b][None, :])
    mids = (pw[1:] + pw[:-1]) / 2
    d = np.union1d(np.concatenate([pw, mids, [pw[0] - 1.0, pw[-1] + 1.0]]), [0.0, est])
    ok = d[_rank_sum_p(y, in_b, mask, d) > alpha]
    lo, hi = (float(ok.min()), float(ok.max())) if len(ok) else (nan, nan)
    return {**row, "estimate": est, "ci_low": lo, "ci_high": hi, "p_value": p, "reason": ""}


# --------------------------------------------------------------------------------------------
# Tables over methods, metrics and statistics

KEYS = ("method", "metric", "statistic")
PRIMARY = {"method": "mean_ablation", "metric": "exact_match", "statistic": "map_diff"}
"""The pre-declared primary combination; every other row is exploratory."""


MODELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rank", ()),
    ("rank", ("competence",)),
    ("logit", ()),
    ("logit", ("competence", "aux_acc")),
)
"""The models of every combination, the pre-declared primary first (``analyses/family/PLAN.md``):
the within-condition rank of transfer on overlap and condition, with no other covariate
(competence can be a collider: shared heads are learned heads, and what makes a run competent
may also make it transfer, so adjusting for it can create an effect; it is an inclusion rule,
:data:`COMPETENCE_MIN`, instead). The same with competence, and the empirical-logit rows (the
old model last), are secondary."""
COMPETENCE_MIN = 0.9
"""Inclusion rule: a run enters the between-run test only if its main-task accuracy on the unseen
training lengths is at least this (a run that has not learned its main task cannot transfer it)."""


def _model_name(outcome: str, covariates: Sequence[str]) -> str:
    return " + ".join([outcome, *covariates])


def between_table(
    runs: pd.DataFrame,
    covariates: Sequence[str] | None = None,
    primary: dict[str, str] | None = None,
    models: Sequence[tuple[str, Sequence[str]]] = MODELS,
    competence_min: float = COMPETENCE_MIN,
    sensitivity: bool = True,
    **kw: object,
) -> pd.DataFrame:
    """:func:`primary_test` for every ``(method, metric, statistic)`` and model.

    Nothing is averaged across methods, metrics or statistics: each combination is its own rows,
    one per model (:data:`MODELS`), and the column ``primary`` marks the single pre-declared row
    (``PRIMARY`` with the first model); the others are secondary or exploratory (no multiplicity
    correction is applied to them, so read them as such). Runs below ``competence_min`` are
    excluded from every row and listed in ``excluded`` (never dropped silently).

    Args:
        runs: a long run table (:func:`interp.run_table.run_table`).
        covariates: if given, one logit model with these covariates instead of ``models``
            (the old behaviour).
        primary: the primary combination (default ``PRIMARY``).
        models: ``(outcome, covariates)`` pairs, the primary first.
        competence_min: the inclusion rule (``0`` keeps every run).
        sensitivity: when the rule excludes a run, add the first model fitted on every run
            (``model`` ends in ``(all runs, no competence rule)``).
        **kw: passed to :func:`primary_test`.

    Returns:
        One row per combination and model: the keys, ``primary``, ``model``, ``n_excluded``,
        ``excluded`` and :class:`PrimaryResult`'s fields.
    """
    keys = [k for k in KEYS if k in runs.columns]
    primary = PRIMARY if primary is None else primary
    if covariates is not None:
        models = (("logit", tuple(covariates)),)
    rows = []
    groups = runs.groupby(keys, sort=True) if keys else [((), runs)]
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        kd = dict(zip(keys, key, strict=True))
        low = sub["competence"] < competence_min if "competence" in sub.columns else None
        excluded = "" if low is None else ", ".join(
            f"{r} (competence {c:.2f})"
            for r, c in zip(sub.loc[low, "run"], sub.loc[low, "competence"], strict=True)
        )  # fmt: skip
        kept = sub if low is None else sub[~low]
        is_primary = all(kd.get(k) == v for k, v in primary.items() if k in kd)
        for i, (outcome, cov) in enumerate(models):
            res = primary_test(kept, tuple(cov), outcome=outcome, **kw)  # type: ignore[arg-type]
            rows.append(
                {
                    **kd,
                    "primary": is_primary and i == 0,
                    "model": _model_name(outcome, cov),
                    "n_excluded": int(low.sum()) if low is not None else 0,
                    "excluded": excluded,
                    **res.to_dict(),
                }
            )
        if sensitivity and low is not None and low.any() and covariates is None:
            # The primary model on every run: the inclusion rule selects on competence, a
            # possible collider, so its influence is shown, not assumed away.
            outcome, cov = models[0]
            res = primary_test(sub, tuple(cov), outcome=outcome, **kw)  # type: ignore[arg-type]
            rows.append(
                {
                    **kd,
                    "primary": False,
                    "model": _model_name(outcome, cov) + " (all runs, no competence rule)",
                    "n_excluded": 0,
                    "excluded": "",
                    **res.to_dict(),
                }
            )
    return pd.DataFrame(rows)


def describe(row: dict | pd.Series) -> str:
    """One sentence saying what a :func:`between_table` row found, in words, with the minimum
    detectable effect beside a "no evidence" verdict."""
    label = "/".join(str(row[k]) for k in KEYS if k in row and pd.notna(row[k]))
    model = str(row.get("model", "") or "")
    label = ", ".join(x for x in (label, model) if x)
    head = f"primary test (between runs, {label})" if label else "primary test (between runs)"
    if row.get("reason"):
        return f"{head}: {row['reason']}; {row['n_runs']} runs in {row['n_conditions']} conditions"
    cov = [c for c in str(row.get("covariates", "") or "").split(",") if c]
    beyond = ", ".join([{"aux_acc": "auxiliary accuracy"}.get(c, c) for c in cov] + ["condition"])
    unit = "within-condition rank of transfer" if row.get("outcome") == "rank" else "logit transfer"
    mde = row.get("mde", float("nan"))
    mde_s = (
        f"; the test detects {abs(float(mde)):.2f} with 80% power (minimum detectable effect)"
        if mde is not None and np.isfinite(float(mde))
        else ""
    )
    if row["p_value"] <= 0.05:
        verdict, tail = f"overlap is related to transfer beyond {beyond}", ""
    else:
        verdict, tail = f"no evidence that overlap is related to transfer beyond {beyond}", mde_s
    return (
        f"{head}: {verdict}; coefficient {row['estimate']:+.2f} {unit} per unit overlap "
        f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}], permutation p = {row['p_value']:.3f} "
        f"({row['n_runs']} runs, {row['n_conditions']} conditions){tail}"
    )
