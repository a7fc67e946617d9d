"""The between-run statistics over every method, metric and statistic, one row each.

The pre-declared primary combination (:data:`PRIMARY`) is tested by
:func:`interp.stats.intervals.between.primary_test`; every other row is exploratory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from interp.stats.between import primary_test

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
        runs: a long run table (:func:`interp.stats.run_table.run_table`).
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
