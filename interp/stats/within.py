"""The within-run view, made honest: per-run slopes after convergence, combined across runs.

The paper's view relates overlap to transfer over the checkpoints of one run. Two things make a
p-value from one run's checkpoints invalid: the checkpoints are autocorrelated (a random walk of
8 points "correlates" with another one far more often than 5% of the time), and both series
track training progress (an untrained checkpoint has gap 1 and flat head maps). So this module
never tests inside a run. It:

1. **Includes a run only after it has learned its tasks** (a rule fixed before the family's
   results existed, from the zoo's per-checkpoint tables; ``analyses/family/PLAN.md``): a
   checkpoint is *converged* when the main task's pooled accuracy over its training lengths
   ``1..main_max`` is ``>= MAIN_MIN`` (0.9) and *each* auxiliary's pooled accuracy over the same
   lengths (the one range on which sharedness is measured everywhere) is ``>= AUX_MIN`` (0.9).
   Only converged checkpoints from the first converged one on are kept. The old rule (each
   auxiliary >= 0.9 over its own lengths 1..12) asked for length generalisation of the
   auxiliary itself and was met by no zoo run; the new one keeps 9 and 6 of the 10 checkpoints
   of the two zoo runs with per-checkpoint tables. A run enters the test with at least
   ``MIN_CHECKPOINTS`` (5) kept checkpoints and some transfer (``transfer_acc >= MIN_TRANSFER``
   at one of them at least); a run that never transfers is "not applicable", with the reason.
2. **Summarises each run by one number** (no p-value, no interval), with training progress
   removed:

   * ``diff`` (default): the correlation of the first differences of overlap and of transfer
     (empirical logit), after projecting both on the first differences of ``log(step)`` and of
     ``exp(-step / TAU)``. A trend ``a + b log(step) + c exp(-step / TAU)`` in either series is
     removed exactly: a saturating learning curve (``TAU`` = 1000 steps, the zoo's curves) as
     well as a log-step one, which the log-step term alone left in (9.8% false positives at 5%
     with a shared saturating trend). Differencing turns a random walk into independent steps.
     Needs at least 5 kept checkpoints (4 differences, 2 left after the trend).
   * ``partial``: the partial correlation of the levels given ``1, log(step),
     exp(-step / TAU)`` and the main task's in-distribution accuracy (logit). Needs at least 5
     kept checkpoints.

3. **Combines the runs by a sign-flip test.** Under the null hypothesis (overlap and transfer are
   unrelated beyond the removed trend, and one series' noise is symmetric), each run's summary is
   symmetric about 0 and runs are independent, so flipping the signs of the per-run summaries at
   random gives the null distribution of their mean. All ``2^m`` sign patterns are enumerated up
   to ``m = 16`` runs; the two-sided p-value is the fraction with ``|mean| >= |observed|``.
   Validity rests on independence *across runs* only; the autocorrelation inside a run is
   irrelevant because each run contributes one number. With ``m`` runs the smallest p-value is
   ``2 / 2^m``, so fewer than 6 runs are reported as ``not testable (n=m)``. The interval
   inverts the same test: the shifts ``d`` for which the sign-flip test of ``summary - d`` does
   not reject (:func:`sign_flip_ci`), so it excludes 0 exactly when ``p <= alpha``. Beside it,
   ``mde``: the shift the one-sample t test would detect with 80% power at this ``m`` and
   spread (:func:`interp.stats.intervals.mde_mean`), so a "no evidence" line says what it could
   have seen.

What it cannot fix: a trend of another shape (in either series) survives the adjustment and is
shared by every run, which the sign-flip test would then read as an effect. The between-run
test (:mod:`interp.stats.between`) does not have this weakness, which is why it is the primary test.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from interp.core.errors import InterpError, unknown_choice
from interp.stats.intervals import empirical_logit, mde_mean, not_testable
from interp.stats.run_table import DEFAULT_N

MAIN_MIN = 0.9
AUX_MIN = 0.9
MIN_TRANSFER = 0.01
"""A run whose transfer-range accuracy never reaches 1% at a kept checkpoint has no transfer to
relate to overlap: not applicable (16 of 1536 items; the zoo's floor runs sit at 0-1)."""
TAU = 1000.0
"""Time constant (steps) of the saturating trend removed from every run's series."""
STATISTICS = ("diff", "partial")
MIN_CHECKPOINTS = {"diff": 5, "partial": 5}
MIN_RUNS = 6
"""With fewer runs the sign-flip test cannot reach a two-sided p-value of 0.05 (2 / 2^5 > 0.05)."""


def convergence(acc: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """The pre-declared inclusion rule at every checkpoint (module docstring).

    Args:
        acc: accuracy per ``run, step, task, length`` (``n`` used for pooling when present).
        meta: run metadata (:mod:`interp.stats.transfer`).

    Returns:
        One row per ``(run, step)`` of a run with auxiliaries: ``main_at_max`` (main accuracy at
        its maximum training length), ``aux_min`` (the lowest auxiliary's pooled accuracy over
        its training lengths ``1..aux_max``), ``converged`` and ``post_convergence``.
    """
    from interp.stats.transfer import normalize_meta

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
        main = r[(r["task"] == info.main) & r["length"].between(1, info.main_max)]
        pooled = main.groupby("step")[["k_", "n_"]].sum()
        main_acc = pooled["k_"] / pooled["n_"]
        own = r[r["task"].isin(aux) & r["length"].between(1, info.main_max)]
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
    st = np.asarray(step, np.float64)
    ls = np.broadcast_to(np.log(st), x.shape)
    sat = np.broadcast_to(np.exp(-st / TAU), x.shape)
    if statistic == "diff":
        dx, dy = np.diff(x, axis=-1), np.diff(y, axis=-1)
        Z = np.stack([np.diff(ls, axis=-1), np.diff(sat, axis=-1)], axis=-1)
        return _corr0(_resid(dx, Z), _resid(dy, Z))
    cols = [np.ones_like(x), ls, sat]
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
        table: :func:`interp.stats.run_table.run_table` with ``step="all"``.
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
        if not (sub["transfer_acc"].to_numpy(float) >= MIN_TRANSFER).any():
            rows.append(
                {
                    **row,
                    "value": np.nan,
                    "reason": f"not applicable: no transfer (transfer accuracy below "
                    f"{MIN_TRANSFER} at every kept checkpoint)",
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


def sign_flip_ci(
    values: np.ndarray, alpha: float = 0.05, n_flip: int = 20_000, seed: int = 0, grid: int = 401
) -> tuple[float, float]:
    """Interval for the centre of per-run summaries, by inverting the sign-flip test.

    The shifts ``d`` for which the two-sided sign-flip test of ``values - d`` has ``p > alpha``
    (on a grid of ``grid`` points over the values' range, refined to one grid step): the
    interval excludes 0 exactly when the test of the values rejects at ``alpha``, so the two
    can never disagree the way a bootstrap interval beside an exact p-value can.

    Returns:
        ``(low, high)``; NaN when no shift is accepted on the grid.
    """
    v = np.asarray(values, np.float64)
    lo, hi = float(v.min()), float(v.max())
    pad = 1e-9 + 1e-6 * (hi - lo)
    d = np.linspace(lo - pad, hi + pad, grid)
    p = sign_flip_p(v[None, :] - d[:, None], n_flip, seed)
    ok = d[p > alpha]
    if not len(ok):
        return float("nan"), float("nan")
    return float(ok.min()), float(ok.max())


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
        n_boot: unused (kept for callers): the interval now inverts the sign-flip test.
        seed: generator seed.
        alpha: ``1 - confidence``.

    Returns:
        One row per group: keys, ``mean, ci_low, ci_high, p_value, n_runs, n_excluded, mde,
        reason``; ``ci_*`` invert the sign-flip test (:func:`sign_flip_ci`), ``mde`` is the
        shift detectable with 80% power (:func:`interp.stats.intervals.mde_mean`), ``n_excluded``
        counts
        runs excluded or not applicable (their reasons are in :func:`per_run`'s rows).
    """
    keys = [k for k in ("method", "metric", "statistic", "within", *by) if k in runs.columns]
    rows = []
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
            "mde": mde_mean(float(ok.std(ddof=1)), m, alpha) if m >= 2 else nan,
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
        lo, hi = sign_flip_ci(ok, alpha, seed=seed)
        rows.append(
            {
                **row,
                "ci_low": float(lo),
                "ci_high": float(hi),
                "p_value": float(sign_flip_p(ok, seed=seed)),
                "reason": "",
            }
        )
    cols = [*keys, "mean", "ci_low", "ci_high", "p_value", "n_runs", "n_excluded", "mde", "reason"]
    return pd.DataFrame(rows, columns=cols)


def head_set_runs(sets: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Every run of ``meta`` with an auxiliary, with its head-set slope or why it has none.

    :func:`interp.causal.head_sets.causal_sets` gives a run's slope only when its main task has
    clean-correct examples in the transfer range: ``d_T`` is a fraction of them, so a run that
    does not transfer has ``d_T = NaN`` and no slope. Such runs (and runs without a transfer
    range, which are never ablated) are listed as ``not applicable`` with the reason, never
    dropped silently: the controls should be the ones listed.

    Args:
        sets: the ``causal_sets`` table (``run, slope, clean_t`` per set).
        meta: run metadata with ``run, kind`` (and ``condition``).

    Returns:
        One row per run: ``run, kind, statistic, value, reason`` (``kind`` related/control).
    """
    from interp.stats.run_table import is_control

    per = sets.groupby("run", sort=True).agg(
        value=("slope", "first"),
        clean_t=("clean_t", "first") if "clean_t" in sets.columns else ("slope", "size"),
    )
    rows = []
    for m in meta.itertuples(index=False):
        if str(getattr(m, "kind", "")) == "baseline":
            continue
        cond = str(getattr(m, "condition", "") or "")
        kind = "control" if str(m.kind) == "control" or is_control(cond) else "related"
        row = {"run": m.run, "kind": kind, "statistic": "residual_slope"}
        if m.run not in per.index:
            rows.append({**row, "value": np.nan, "reason": "not applicable: no transfer range"})
            continue
        r = per.loc[m.run]
        if "clean_t" in sets.columns and not r["clean_t"] > 0:
            why = "not applicable: no clean-correct main-task example in the transfer range"
            rows.append({**row, "value": np.nan, "reason": why + " (d_T undefined)"})
        elif not np.isfinite(r["value"]):
            rows.append({**row, "value": np.nan, "reason": "excluded: slope undefined"})
        else:
            rows.append({**row, "value": float(r["value"]), "reason": ""})
    return pd.DataFrame(rows, columns=["run", "kind", "statistic", "value", "reason"])


def head_set_summary(sets: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """The sign-flip test of the head-set slopes per kind (:func:`combine`), with the runs that
    have no slope listed in ``not_applicable`` (``run: reason; ...``)."""
    per = head_set_runs(sets, meta)
    out = combine(per, by=("kind",))
    missing = per[per["value"].isna()]
    out["not_applicable"] = [
        "; ".join(f"{r.run}: {r.reason}" for r in missing[missing["kind"] == k].itertuples())
        for k in out["kind"]
    ]
    return out
