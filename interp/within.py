"""The within-run view, made honest: per-run slopes after convergence, combined across runs.

The paper's view relates overlap to transfer over the checkpoints of one run. Two things make a
p-value from one run's checkpoints invalid: the checkpoints are autocorrelated (a random walk of
8 points "correlates" with another one far more often than 5% of the time), and both series
track training progress (an untrained checkpoint has gap 1 and flat head maps). So this module
never tests inside a run. It:

1. **Includes a run only after it has learned its tasks** (a rule fixed before looking at the
   result): a checkpoint *converged* when the main task's accuracy at its maximum training
   length is ``>= MAIN_MIN`` (0.95) and *each* auxiliary's pooled accuracy over its own training
   lengths is ``>= AUX_MIN`` (0.9). Only checkpoints from the first converged one on that are
   themselves converged are kept (post-convergence), so the early "nothing learned yet" stretch
   that drives the confounded correlation never enters.
2. **Summarises each run by one number** (no p-value, no interval), with training progress
   removed:

   * ``diff`` (default): the correlation of the first differences of overlap and of transfer
     (empirical logit), after projecting both on the first difference of ``log(step)``. A trend
     ``a + b log(step)`` in either series is removed exactly, and differencing turns a random
     walk into independent steps. Needs at least 3 kept checkpoints.
   * ``partial``: the partial correlation of the levels given ``1, log(step)`` and the main
     task's in-distribution accuracy (logit). Needs at least 5 kept checkpoints.

3. **Combines the runs by a sign-flip test.** Under the null hypothesis (overlap and transfer are
   unrelated beyond the removed trend, and one series' noise is symmetric), each run's summary is
   symmetric about 0 and runs are independent, so flipping the signs of the per-run summaries at
   random gives the null distribution of their mean. All ``2^m`` sign patterns are enumerated up
   to ``m = 16`` runs; the two-sided p-value is the fraction with ``|mean| >= |observed|``.
   Validity rests on independence *across runs* only; the autocorrelation inside a run is
   irrelevant because each run contributes one number. With ``m`` runs the smallest p-value is
   ``2 / 2^m``, so fewer than 6 runs are reported as ``not testable (n=m)``. The interval is a
   percentile bootstrap over runs.

What it cannot fix: a trend that is not linear in ``log(step)`` (``diff``) or in the covariates
(``partial``) survives the adjustment and is shared by every run, which the sign-flip test would
then read as an effect. The between-run test (:mod:`interp.between`) does not have this
weakness, which is why it is the primary test.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from interp.between import not_testable
from interp.errors import InterpError, unknown_choice
from interp.run_table import DEFAULT_N
from interp.stats import empirical_logit

MAIN_MIN = 0.95
AUX_MIN = 0.9
STATISTICS = ("diff", "partial")
MIN_CHECKPOINTS = {"diff": 3, "partial": 5}
MIN_RUNS = 6
"""With fewer runs the sign-flip test cannot reach a two-sided p-value of 0.05 (2 / 2^5 > 0.05)."""


def convergence(acc: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """The pre-declared inclusion rule at every checkpoint (module docstring).

    Args:
        acc: accuracy per ``run, step, task, length`` (``n`` used for pooling when present).
        meta: run metadata (:mod:`interp.transfer`).

    Returns:
        One row per ``(run, step)`` of a run with auxiliaries: ``main_at_max`` (main accuracy at
        its maximum training length), ``aux_min`` (the lowest auxiliary's pooled accuracy over
        its training lengths ``1..aux_max``), ``converged`` and ``post_convergence``.
    """
    from interp.transfer import normalize_meta

    m = normalize_meta(meta)
    a = acc.copy()
    a["n_"] = a["n"].astype(float) if "n" in a.columns else float(DEFAULT_N)
    a["k_"] = (a["accuracy"] * a["n_"]).round()
    rows = []
    for info in m.itertuples(index=False):
        aux = list(info.aux)
        if not aux or info.kind == "baseline":
            continue
        r = a[a["run"] == info.run]
        main = r[(r["task"] == info.main) & (r["length"] == info.main_max)]
        main_acc = main.groupby("step")["accuracy"].mean()
        own = r[r["task"].isin(aux) & r["length"].between(1, info.aux_max)]
        per_aux = own.groupby(["step", "task"])[["k_", "n_"]].sum()
        aux_min = (per_aux["k_"] / per_aux["n_"]).groupby("step").min()
        for step in sorted(set(r["step"])):
            rows.append(
                {
                    "run": info.run,
                    "step": int(step),
                    "main_at_max": float(main_acc.get(step, np.nan)),
                    "aux_min": float(aux_min.get(step, np.nan)),
                }
            )
    out = pd.DataFrame(rows, columns=["run", "step", "main_at_max", "aux_min"])
    out["converged"] = (out["main_at_max"] >= MAIN_MIN) & (out["aux_min"] >= AUX_MIN)
    first = out[out["converged"]].groupby("run")["step"].min()
    out["post_convergence"] = out["converged"] & (out["step"] >= out["run"].map(first))
    return out


def _resid(v: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Residual of ``v`` ``[..., n]`` after least squares on ``Z`` ``[..., n, q]``."""
    pinv = np.linalg.pinv(Z)
    return v - (Z @ (pinv @ v[..., None]))[..., 0]


def _corr0(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Correlation of already-adjusted vectors (no centring; NaN when either is zero)."""
    num = (a * b).sum(-1)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    return np.where(den > 1e-12, r, np.nan)


def run_statistic(
    x: np.ndarray,
    y: np.ndarray,
    step: np.ndarray,
    competence: np.ndarray | None = None,
    statistic: str = "diff",
) -> np.ndarray:
    """The per-run summary (module docstring), batched over leading dimensions.

    Args:
        x: overlap per checkpoint, ``[..., n]`` (checkpoints in step order).
        y: transfer (logit) per checkpoint, ``[..., n]``.
        step: training steps, ``[n]`` (shared) or ``[..., n]``.
        competence: in-distribution accuracy (logit), ``[..., n]`` (``partial`` only).
        statistic: ``diff`` or ``partial``.

    Returns:
        ``[...]`` correlations in ``[-1, 1]`` (NaN when undefined).
    """
    if statistic not in STATISTICS:
        raise unknown_choice("within-run statistic", statistic, STATISTICS)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ls = np.broadcast_to(np.log(np.asarray(step, np.float64)), x.shape)
    if statistic == "diff":
        dx, dy, dl = np.diff(x, axis=-1), np.diff(y, axis=-1), np.diff(ls, axis=-1)
        Z = dl[..., None]
        return _corr0(_resid(dx, Z), _resid(dy, Z))
    cols = [np.ones_like(x), ls]
    if competence is not None:
        cols.append(np.broadcast_to(np.asarray(competence, np.float64), x.shape))
    Z = np.stack(cols, axis=-1)
    return _corr0(_resid(x, Z), _resid(y, Z))


def sign_flip_p(stats: np.ndarray, n_flip: int = 20_000, seed: int = 0) -> np.ndarray:
    """Two-sided sign-flip p-value of the mean of per-run statistics, batched.

    Args:
        stats: ``[..., m]`` one value per run (no NaNs).
        n_flip: random sign patterns when ``m > 16`` (else all ``2^m`` are enumerated).
        seed: generator seed for the random patterns.

    Returns:
        ``[...]`` p-values.
    """
    s = np.asarray(stats, np.float64)
    m = s.shape[-1]
    if m <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=m)))
        exact = True
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_flip, m))
        exact = False
    obs = np.abs(s.mean(-1))
    null = np.abs(s @ signs.T / m)  # [..., P]
    hits = (null >= obs[..., None] - 1e-12).sum(-1)
    return hits / len(signs) if exact else (1 + hits) / (1 + len(signs))


def _logit(df: pd.DataFrame, col: str) -> np.ndarray:
    n = df[f"{col}_n"].to_numpy(float) if f"{col}_n" in df.columns else DEFAULT_N
    return empirical_logit(df[col].to_numpy(float) * n, n)


def per_run(
    table: pd.DataFrame, conv: pd.DataFrame | None = None, statistic: str = "diff"
) -> pd.DataFrame:
    """Each run's summary over its post-convergence checkpoints (no test, no interval).

    Args:
        table: :func:`interp.run_table.run_table` with ``step="all"``.
        conv: :func:`convergence` output (default: every checkpoint counts as converged).
        statistic: ``diff`` or ``partial``.

    Returns:
        One row per (run, method, metric, statistic): keys, ``condition, kind, n_checkpoints``
        (kept), ``value`` (the run's summary, NaN when excluded) and ``reason`` (why excluded).
    """
    if statistic not in STATISTICS:
        raise unknown_choice("within-run statistic", statistic, STATISTICS)
    need = ["run", "step", "statistic", "overlap", "transfer_acc", "competence", "condition"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise InterpError(f"within-run table is missing columns {missing}")
    t = table
    if conv is not None:
        t = t.merge(conv[["run", "step", "post_convergence"]], on=["run", "step"], how="left")
        t = t[t["post_convergence"].fillna(False).astype(bool)]
    keys = [k for k in ("method", "metric", "statistic") if k in table.columns]
    rows = []
    runs = table.groupby(["run", *keys], sort=True)
    for key, full in runs:
        kd = dict(zip(["run", *keys], key, strict=True))
        sub = t
        for k, v in kd.items():
            sub = sub[sub[k] == v]
        sub = sub.sort_values("step")
        row = {
            **kd,
            "condition": full["condition"].iloc[0],
            "kind": full["kind"].iloc[0] if "kind" in full.columns else "",
            "within": statistic,
            "n_checkpoints": len(sub),
        }
        need_n = MIN_CHECKPOINTS[statistic]
        if len(sub) < need_n:
            rows.append(
                {
                    **row,
                    "value": np.nan,
                    "reason": f"excluded: {len(sub)} post-convergence checkpoints, "
                    f"{statistic} needs {need_n}",
                }
            )
            continue
        v = run_statistic(
            sub["overlap"].to_numpy(float),
            _logit(sub, "transfer_acc"),
            sub["step"].to_numpy(float),
            _logit(sub, "competence") if statistic == "partial" else None,
            statistic,
        )
        rows.append(
            {
                **row,
                "value": float(v),
                "reason": ""
                if np.isfinite(v)
                else "excluded: a series is constant after adjustment",
            }
        )
    return pd.DataFrame(rows)


def combine(
    runs: pd.DataFrame,
    by: Sequence[str] = ("kind",),
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Sign-flip test across runs of the per-run summaries, per group.

    Args:
        runs: :func:`per_run` output.
        by: grouping besides method/metric/statistic (default: related vs control runs).
        n_boot: bootstrap resamples over runs for the interval of the mean.
        seed: generator seed.
        alpha: ``1 - confidence``.

    Returns:
        One row per group: keys, ``mean, ci_low, ci_high, p_value, n_runs, n_excluded, reason``.
    """
    keys = [k for k in ("method", "metric", "statistic", "within", *by) if k in runs.columns]
    rows = []
    rng = np.random.default_rng(seed)
    for key, sub in runs.groupby(keys, sort=True):
        kd = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        v = sub["value"].to_numpy(float)
        ok = v[np.isfinite(v)]
        m = len(ok)
        nan = float("nan")
        row = {
            **kd,
            "mean": float(ok.mean()) if m else nan,
            "n_runs": m,
            "n_excluded": int(len(v) - m),
        }
        if m < MIN_RUNS:
            rows.append(
                {
                    **row,
                    "ci_low": nan,
                    "ci_high": nan,
                    "p_value": nan,
                    "reason": not_testable(m, f"the sign-flip test needs {MIN_RUNS} runs"),
                }
            )
            continue
        boots = ok[rng.integers(0, m, size=(n_boot, m))].mean(1)
        lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
        rows.append(
            {
                **row,
                "ci_low": float(lo),
                "ci_high": float(hi),
                "p_value": float(sign_flip_p(ok)),
                "reason": "",
            }
        )
    cols = [*keys, "mean", "ci_low", "ci_high", "p_value", "n_runs", "n_excluded", "reason"]
    return pd.DataFrame(rows, columns=cols)
