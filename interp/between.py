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

**The interval.** A percentile bootstrap over runs, resampled within condition (each condition
keeps its count, so the condition dummies stay estimable). Resamples in which the model is
singular (e.g. every resampled run of a condition is the same run) are left out; with more
than half of them singular the interval is NaN. With 2-5 runs per condition the interval is
rough; it describes the spread of the coefficient, the permutation p-value is the test.

**Assumptions.** Runs are independent; within a condition the runs are exchangeable under the
null (same recipe, different seeds); the relation is linear on the logit scale. The test makes
no normality assumption; the *t* value is only a scale-free statistic.

**Secondary: related vs control.** The difference between related and control runs in mean
overlap and in mean transfer (logit), with an exact permutation p-value over the assignments of
the labels to runs and a stratified bootstrap interval (:func:`related_vs_control`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

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
from interp.stats import empirical_logit

# Re-exported for the tests and callers that imported them from here before the split.
_design, _within_permutations, _stratified_bootstrap = (
    design,
    within_permutations,
    stratified_bootstrap,
)
__all__ = [
    "DEFAULT_N", "PRIMARY", "SCHEMES", "between_table", "describe", "is_control",
    "n_within_permutations", "not_testable", "ols_t", "partial_residuals", "permutation_p",
    "prepare", "primary_test", "related_vs_control", "run_table",
]  # fmt: skip

RUN_COLS = ("run", "condition", "seed", "overlap", "transfer_acc", "competence", "aux_acc")
COVARIATES = ("competence", "aux_acc")
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
        ci_low: lower end of the bootstrap-over-runs percentile interval.
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
    return df[keep].sort_values(["condition", "run"], kind="stable").reset_index(drop=True)


def primary_test(
    runs: pd.DataFrame,
    covariates: Sequence[str] = COVARIATES,
    n_perm: int = 5000,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    scheme: str = "freedman_lane",
) -> PrimaryResult:
    """The between-run test of overlap on transfer (module docstring).

    Args:
        runs: one row per run: ``run, condition, overlap, transfer_acc`` plus the
            ``covariates`` (accuracies in 0..1; optional ``<col>_n`` example counts).
        covariates: adjustment columns (accuracies are modelled on the logit scale).
        n_perm: random within-condition permutations (all are enumerated when few).
        n_boot: bootstrap resamples over runs.
        seed: generator seed.
        alpha: ``1 - confidence`` of the interval.
        scheme: ``freedman_lane`` (default) or ``overlap`` (see :func:`permutation_p`).

    Returns:
        A :class:`PrimaryResult`; ``reason`` says ``not testable (n=...)`` when the runs cannot
        support the test (then every number but ``n_runs`` may be NaN).
    """
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
        )

    if n < 4:
        return fail("too few runs")
    X, names, dropped = design(df, covariates)
    kept = names[2:]
    p = X.shape[1]
    if n - p < 2:
        return fail(f"{p} parameters leave {n - p} residual df", dropped, kept)
    y = df["y"].to_numpy(np.float64)
    b_obs, t_obs = ols_t(X, y)
    if not np.isfinite(t_obs):
        return fail("overlap is constant within every condition", dropped, kept)
    codes = pd.factorize(df["condition"])[0]
    total = n_within_permutations(df["condition"])
    if total < MIN_PERMUTATIONS:
        return fail(f"only {total} within-condition permutations", dropped, kept)
    rng_perm, rng_boot = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    perms, exact = within_permutations(codes, n_perm, rng_perm)
    pval = float(permutation_p(X[None], y[None], perms, exact, scheme)[0])
    idx = stratified_bootstrap(codes, n_boot, rng_boot)
    b_boot, _ = ols_t(X[idx], y[idx])
    ok = b_boot[np.isfinite(b_boot)]
    lo, hi = (nan, nan)
    if len(ok) >= 0.5 * n_boot:
        lo, hi = (float(v) for v in np.quantile(ok, [alpha / 2, 1 - alpha / 2]))
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
    observed one. The interval is a percentile bootstrap, resampling runs within each kind.

    Args:
        runs: a :func:`prepare`d run table (``y`` = logit transfer), or any table with
            ``condition`` and the ``values`` columns; ``kind`` (``related``/``control``) is
            taken from the table when present, else from :func:`is_control`.
        values: columns to contrast.
        n_boot: bootstrap resamples.
        seed: generator seed.
        alpha: ``1 - confidence``.

    Returns:
        One row per value: ``value, related_mean, control_mean, diff, ci_low, ci_high, p_value,
        n_related, n_control, reason``.
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
        hits = int(np.sum(np.abs(d) >= abs(obs) - 1e-12))
        p = hits / len(d) if total <= 50_000 else (1 + hits) / (1 + len(d))
        xr, xc = x[~kind], x[kind]
        br = xr[rng.integers(0, n_r, size=(n_boot, n_r))].mean(1)
        bc = xc[rng.integers(0, n_c, size=(n_boot, n_c))].mean(1)
        lo, hi = np.quantile(br - bc, [alpha / 2, 1 - alpha / 2])
        rows.append(
            {
                **row,
                "related_mean": xr.mean(),
                "control_mean": xc.mean(),
                "diff": obs,
                "ci_low": float(lo),
                "ci_high": float(hi),
                "p_value": float(p),
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
        "reason",
    ]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------
# Tables over methods, metrics and statistics

KEYS = ("method", "metric", "statistic")
PRIMARY = {"method": "mean_ablation", "metric": "exact_match", "statistic": "map_diff"}
"""The pre-declared primary combination; every other row is exploratory."""


def between_table(
    runs: pd.DataFrame,
    covariates: Sequence[str] = COVARIATES,
    primary: dict[str, str] | None = None,
    **kw: object,
) -> pd.DataFrame:
    """:func:`primary_test` for every ``(method, metric, statistic)`` in a long run table.

    Nothing is averaged across methods, metrics or statistics: each combination is its own row,
    and the column ``primary`` marks the pre-declared one (``PRIMARY``); the others are
    exploratory (no multiplicity correction is applied to them, so read them as such).

    Returns:
        One row per combination: the keys, ``primary`` and :class:`PrimaryResult`'s fields.
    """
    keys = [k for k in KEYS if k in runs.columns]
    primary = PRIMARY if primary is None else primary
    rows = []
    groups = runs.groupby(keys, sort=True) if keys else [((), runs)]
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        kd = dict(zip(keys, key, strict=True))
        res = primary_test(sub, covariates, **kw)  # type: ignore[arg-type]
        is_primary = all(kd.get(k) == v for k, v in primary.items() if k in kd)
        rows.append({**kd, "primary": is_primary, **res.to_dict()})
    return pd.DataFrame(rows)


def describe(row: dict | pd.Series) -> str:
    """One sentence saying what a :func:`between_table` row found, in words."""
    label = "/".join(str(row[k]) for k in KEYS if k in row and pd.notna(row[k]))
    head = f"primary test (between runs, {label})" if label else "primary test (between runs)"
    if row.get("reason"):
        return f"{head}: {row['reason']}; {row['n_runs']} runs in {row['n_conditions']} conditions"
    verdict = (
        "overlap is related to transfer beyond competence, auxiliary accuracy and condition"
        if row["p_value"] <= 0.05
        else "no evidence that overlap is related to transfer beyond competence, auxiliary "
        "accuracy and condition"
    )
    return (
        f"{head}: {verdict}; coefficient {row['estimate']:+.2f} logit per unit overlap "
        f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}], permutation p = {row['p_value']:.3f} "
        f"({row['n_runs']} runs, {row['n_conditions']} conditions)"
    )
