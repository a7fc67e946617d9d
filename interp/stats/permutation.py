"""The machinery of the between-run test: batched least squares and within-condition resampling.

:mod:`interp.stats.between` fits ``logit(transfer) ~ overlap + covariates + condition`` on one row
per
run and tests the overlap coefficient. This module holds the pieces that test is made of, each
vectorised over many datasets or resamples at once:

* :func:`ols_t`: the coefficient and its *t* value for a batch of OLS fits (NaN when singular);
* :func:`design`: the design matrix ``[1, overlap, covariates, condition dummies]``, dropping a
  covariate that is constant or collinear with the columns before it;
* :func:`within_permutations` and :func:`stratified_bootstrap`: row permutations and bootstrap
  resamples that never move a run out of its condition (all permutations when there are few);
* :func:`permutation_p`: the two-sided permutation p-value of the *t* value under the
  Freedman-Lane or the permute-overlap scheme.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from interp.core.errors import InterpError


def ols_t(
    X: np.ndarray, y: np.ndarray, j: int = 1, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient ``j`` and its t value for a batch of OLS fits.

    Args:
        X: designs, ``[..., n, p]``.
        y: responses, ``[..., n]``.
        j: the coefficient of interest.
        tol: a fit whose ``X'X`` has ``min/max`` eigenvalue below this is singular (NaN).

    Returns:
        ``(beta_j, t_j)``, each of shape ``[...]``; NaN for singular fits or no residual df.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, p = X.shape[-2:]
    xtx = np.swapaxes(X, -1, -2) @ X
    ev = np.linalg.eigvalsh(xtx)
    ok = ev[..., 0] > tol * np.maximum(ev[..., -1], 1e-300)
    safe = np.where(ok[..., None, None], xtx, np.eye(p))
    inv = np.linalg.inv(safe)
    beta = inv @ (np.swapaxes(X, -1, -2) @ y[..., None])
    resid = y - (X @ beta)[..., 0]
    df = n - p
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = (resid**2).sum(-1) / df if df > 0 else np.full(resid.shape[:-1], np.nan)
        se = np.sqrt(s2 * inv[..., j, j])
        b = beta[..., j, 0]
        t = b / se
    b = np.where(ok, b, np.nan)
    t = np.where(ok & (se > 0), t, np.nan)
    return b, t


def design(
    df: pd.DataFrame, covariates: Sequence[str], x: str = "overlap"
) -> tuple[np.ndarray, list[str], list[str]]:
    """``[1, x, covariates..., condition dummies]`` with constant/collinear covariates dropped."""
    n = len(df)
    cols = [np.ones(n), df[x].to_numpy(np.float64)]
    names = ["const", x]
    conds = sorted(df["condition"].astype(str).unique())
    dummies = [(df["condition"].astype(str) == c).to_numpy(np.float64) for c in conds[1:]]
    base = np.column_stack(cols + dummies) if dummies else np.column_stack(cols)
    kept, dropped = [], []
    for c in covariates:
        v = df[c].to_numpy(np.float64)
        trial = np.column_stack([base, v])
        tol = 1e-8 * max(1.0, float(np.abs(trial).max()))
        if np.ptp(v) == 0 or np.linalg.matrix_rank(trial, tol=tol) < trial.shape[1]:
            dropped.append(c)
            continue
        base = trial
        kept.append(c)
    # Reorder to [const, x, covariates, dummies] for readability; the fit is the same.
    k = len(dummies)
    order = [0, 1, *range(2 + k, 2 + k + len(kept)), *range(2, 2 + k)]
    return base[:, order], names + kept, dropped


def condition_blocks(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices of each distinct code (each condition), in sorted code order."""
    return [np.flatnonzero(codes == c) for c in np.unique(codes)]


def within_permutations(
    codes: np.ndarray, n_perm: int, rng: np.random.Generator, max_exact: int = 20_000
) -> tuple[np.ndarray, bool]:
    """Index arrays ``[P, n]`` permuting within blocks of equal ``codes``: all of them when
    there are at most ``max_exact`` (``exact``), else ``n_perm`` random ones."""
    blocks = condition_blocks(codes)
    n_total = math.prod(math.factorial(len(b)) for b in blocks)
    n = len(codes)
    if n_total <= max_exact:
        per_block = [list(itertools.permutations(b.tolist())) for b in blocks]
        out = np.empty((n_total, n), dtype=np.int64)
        for i, combo in enumerate(itertools.product(*per_block)):
            for b, perm in zip(blocks, combo, strict=True):
                out[i, b] = perm
        return out, True
    keys = rng.random((n_perm, n)) + codes[None, :] * 2.0
    order = np.argsort(keys, axis=1, kind="stable")
    # argsort of (code + U) lists block c's rows in random order at block c's sorted slots;
    # mapping slot -> original row position keeps every row inside its own block.
    slots = np.argsort(codes, kind="stable")
    out = np.empty_like(order)
    out[:, slots] = order
    return out, False


def stratified_bootstrap(codes: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Resample indices ``[B, n]`` with replacement within each block."""
    out = np.empty((n_boot, len(codes)), dtype=np.int64)
    for b in condition_blocks(codes):
        out[:, b] = b[rng.integers(0, len(b), size=(n_boot, len(b)))]
    return out


SCHEMES = ("freedman_lane", "overlap")


def permutation_p(
    X: np.ndarray,
    y: np.ndarray,
    perms: np.ndarray,
    exact: bool,
    scheme: str = "freedman_lane",
    chunk: int = 256,
) -> np.ndarray:
    """Two-sided permutation p-values of column 1's t value for a batch of datasets.

    Args:
        X: designs ``[D, n, p]`` (column 1 is the tested one).
        y: responses ``[D, n]``.
        perms: row permutations ``[P, n]`` shared by all datasets (within condition).
        exact: ``perms`` is the complete set (identity included): ``p = #hits / P``; else
            the observed labelling counts as one more draw: ``(1 + #hits) / (1 + P)``.
        scheme: ``freedman_lane`` permutes the residuals of the model without column 1 and
            adds them back to its fitted values; ``overlap`` permutes column 1 itself.
        chunk: permutations per batched fit (bounds memory at ``D * chunk * n * p``).

    Returns:
        ``[D]`` p-values (NaN where the observed fit is singular).
    """
    if scheme not in SCHEMES:
        raise InterpError(f"unknown permutation scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    D, n, p = X.shape
    _, t_obs = ols_t(X, y)
    if scheme == "freedman_lane":
        Z = np.delete(X, 1, axis=-1)
        fit = (Z @ (np.linalg.pinv(Z) @ y[..., None]))[..., 0]
        resid = y - fit
    hits = np.zeros(D)
    valid = np.zeros(D)
    for s in range(0, len(perms), chunk):
        pm = perms[s : s + chunk]
        if scheme == "freedman_lane":
            Xp = np.broadcast_to(X[:, None], (D, len(pm), n, p))
            yp = fit[:, None, :] + resid[:, pm]
        else:
            Xp = np.broadcast_to(X[:, None], (D, len(pm), n, p)).copy()
            Xp[:, :, :, 1] = X[:, pm, 1]
            yp = np.broadcast_to(y[:, None], (D, len(pm), n))
        _, t = ols_t(Xp, yp)
        ok = np.isfinite(t)
        valid += ok.sum(1)
        hits += (ok & (np.abs(t) >= np.abs(t_obs)[:, None] - 1e-9)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_val = hits / valid if exact else (1 + hits) / (1 + valid)
    return np.where(np.isfinite(t_obs), p_val, np.nan)


def n_within_permutations(conditions: Sequence[str]) -> int:
    """Distinct within-condition permutations of the runs (ties ignored)."""
    _, counts = np.unique(np.asarray(conditions, dtype=str), return_counts=True)
    return math.prod(math.factorial(int(c)) for c in counts)
