"""Secondary between-run comparisons: related auxiliaries against controls, arm against arm.

Exploratory companions of the primary test (:mod:`interp.stats.intervals.between`): they compare run
groups instead of regressing on overlap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from interp.core.errors import InterpError
from interp.stats.between import MIN_PERMUTATIONS, prepare
from interp.stats.intervals import empirical_logit, mde_two_groups, not_testable
from interp.stats.run_table import DEFAULT_N, is_control

# Secondary: related vs control (:func:`interp.stats.run_table.is_control` names the controls)


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
    (:func:`interp.stats.intervals.mde_two_groups`).

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
