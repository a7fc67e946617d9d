"""The between-run primary test: OLS pieces, within-condition permutations, the null rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp.between import (
    _design,
    _stratified_bootstrap,
    _within_permutations,
    between_table,
    n_within_permutations,
    ols_t,
    partial_residuals,
    permutation_p,
    prepare,
    primary_test,
    related_vs_control,
    run_table,
)
from interp.errors import InterpError

CONDS = ["both"] * 5 + ["nocarry"] * 2 + ["carry"] * 2 + ["control1"] * 3


def _runs(effect: float, seed: int = 0, noise: float = 0.4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(CONDS)
    comp = rng.uniform(0.85, 1.0, n)
    aux = rng.uniform(0.3, 1.0, n)
    ov = rng.normal(0, 1, n)
    y = -2 + effect * ov + 2 * comp + rng.normal(0, noise, n)
    return pd.DataFrame(
        {
            "run": [f"r{i}" for i in range(n)],
            "condition": CONDS,
            "seed": range(n),
            "overlap": ov,
            "transfer_acc": 1 / (1 + np.exp(-y)),
            "competence": comp,
            "aux_acc": aux,
        }
    )


def test_ols_t_matches_the_textbook_formula() -> None:
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(20), rng.normal(size=(20, 3))])
    y = X @ [1.0, 0.5, -1.0, 2.0] + rng.normal(size=20)
    b, t = ols_t(X, y, j=2)
    beta, rss, *_ = np.linalg.lstsq(X, y, rcond=None)
    se = np.sqrt(rss[0] / 16 * np.linalg.inv(X.T @ X)[2, 2])
    assert b == pytest.approx(beta[2]) and t == pytest.approx(beta[2] / se)
    # A singular design is NaN, not a crash or a huge number.
    Xs = np.column_stack([X, X[:, 1]])
    assert np.isnan(ols_t(Xs, y)[1])


def test_within_condition_permutations_keep_every_run_in_its_condition() -> None:
    codes = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    perms, exact = _within_permutations(codes, 0, np.random.default_rng(0))
    assert exact and len(perms) == 6 * 2 * 24 == n_within_permutations(codes.astype(str))
    assert len({tuple(p) for p in perms}) == len(perms)
    rnd, exact = _within_permutations(codes, 500, np.random.default_rng(0), max_exact=10)
    assert not exact and rnd.shape == (500, 9)
    for p in (*perms, *rnd):
        assert (codes[p] == codes).all() and sorted(p) == list(range(9))
    boot = _stratified_bootstrap(codes, 100, np.random.default_rng(0))
    assert (codes[boot] == codes[None]).all()


def test_design_drops_constant_and_collinear_covariates_and_says_so() -> None:
    df = prepare(_runs(1.0))
    df["aux_acc"] = 3.0
    X, names, dropped = _design(df, ["competence", "aux_acc"])
    assert names == ["const", "overlap", "competence"] and dropped == ["aux_acc"]
    assert X.shape == (12, 3 + 3)
    res = primary_test(_runs(1.0).assign(aux_acc=1.0), n_perm=200, n_boot=200)
    assert res.dropped == "aux_acc" and res.covariates == "competence"


def test_primary_test_finds_a_planted_effect_and_covers_it() -> None:
    res = primary_test(_runs(2.0, noise=0.2), n_perm=500, n_boot=500)
    assert res.reason == "" and res.exact and res.n_perm == 120 * 2 * 2 * 6
    assert res.p_value < 0.05 and res.t > 0
    assert res.ci_low < 2.0 < res.ci_high
    assert res.estimate == pytest.approx(2.0, abs=0.4)
    pr = partial_residuals(res)
    slope = np.polyfit(pr["overlap"], pr["partial_residual"], 1)[0]
    assert slope == pytest.approx(res.estimate)  # the panel's slope is the coefficient


def test_too_few_runs_or_permutations_are_not_testable() -> None:
    few = _runs(1.0).iloc[[0, 1, 5, 7]]
    res = primary_test(few)
    assert np.isnan(res.p_value) and res.reason.startswith("not testable (n=4")
    one_each = _runs(1.0).groupby("condition").head(2)  # 2,2,2,2 -> 16 permutations
    res = primary_test(one_each)
    assert res.reason == "not testable (n=8, 7 parameters leave 1 residual df)"
    res = primary_test(one_each, covariates=())
    assert "not testable (n=8" in res.reason and "16 within-condition permutations" in res.reason
    with pytest.raises(InterpError, match="missing columns"):
        primary_test(_runs(1.0).drop(columns="competence"))


def test_related_vs_control_is_exact_and_signed() -> None:
    df = prepare(_runs(0.0))
    df.loc[df["condition"] == "control1", "overlap"] -= 5
    c = related_vs_control(df, n_boot=200)
    ov = c[c["value"] == "overlap"].iloc[0]
    assert ov["diff"] > 4 and ov["ci_low"] > 0 and ov["n_control"] == 3
    # The most extreme of the C(12, 3) = 220 labellings (and its mirror cannot exist): 1/220.
    assert ov["p_value"] == pytest.approx(1 / 220)
    c2 = related_vs_control(df[df["condition"] != "control1"].tail(4).assign(kind="related"))
    assert c2["reason"].str.startswith("not testable").all()


def test_between_table_keeps_methods_metrics_statistics_apart() -> None:
    a = _runs(2.0, noise=0.2).assign(
        method="mean_ablation", metric="exact_match", statistic="map_diff"
    )
    b = _runs(0.0, seed=3).assign(method="mean_ablation", metric="logprob", statistic="map_diff")
    t = between_table(pd.concat([a, b]), n_perm=200, n_boot=200)
    assert len(t) == 2 and t["primary"].tolist() == [True, False]
    assert set(t["metric"]) == {"exact_match", "logprob"}


def test_run_table_pools_counts_at_the_last_checkpoint() -> None:
    meta = pd.DataFrame(
        {
            "run": ["r", "b"],
            "group": "g",
            "seed": 0,
            "main": "m",
            "aux": ["a1,a2", ""],
            "main_max": 2,
            "aux_max": 4,
            "kind": ["transfer", "baseline"],
            "baseline": ["b", ""],
        }
    )
    acc = []
    for step in (10, 20):
        for task in ("m", "a1", "a2"):
            for L in range(1, 5):
                v = {"m": 0.25 if L > 2 else 1.0, "a1": 1.0, "a2": 0.5}[task] * (step / 20)
                acc.append(
                    {
                        "run": "r",
                        "step": step,
                        "task": task,
                        "length": L,
                        "accuracy": v,
                        "n": 100 if L != 4 else 300,
                    }
                )
    acc = pd.DataFrame(acc)
    ov = pd.DataFrame(
        {
            "run": "r",
            "step": [10, 20, 20, 20],
            "task_a": ["m", "m", "a2", "a1"],
            "task_b": ["a1", "a1", "m", "a2"],
            "statistic": "map_diff",
            "value": [9.0, 0.2, 0.4, 7.0],
            "method": "mean_ablation",
            "metric": "exact_match",
        }
    )
    t = run_table(ov, acc, meta)
    assert len(t) == 1
    r = t.iloc[0]
    assert r["step"] == 20 and r["overlap"] == pytest.approx(0.3) and r["n_aux"] == 2
    assert r["transfer_acc"] == pytest.approx(0.25) and r["transfer_acc_n"] == 400
    assert r["aux_acc"] == pytest.approx(0.75) and r["competence"] == pytest.approx(1.0)
    assert r["condition"] == "a1,a2" and r["kind"] == "related"
    assert run_table(ov, acc, meta, aux_agg="min").iloc[0]["overlap"] == pytest.approx(0.2)
    assert len(run_table(ov, acc, meta, step="all")) == 2


def test_primary_test_holds_its_false_positive_rate_on_confounded_null_data() -> None:
    """400 null datasets: overlap and transfer both depend on competence and condition (a trend
    shared through training progress), but transfer does not depend on overlap. The rejection
    rate at 0.05 must stay within binomial noise of 0.05 (sd 0.011; bound 0.09)."""
    rng = np.random.default_rng(7)
    D, n = 400, len(CONDS)
    codes = pd.factorize(pd.Series(CONDS))[0]
    cond_ov = rng.normal(0, 1, (D, 4))[:, codes]
    cond_y = rng.normal(0, 1, (D, 4))[:, codes]
    comp = rng.uniform(-1, 3, (D, n))
    aux = rng.normal(0, 1, (D, n))
    ov = cond_ov + 1.0 * comp + rng.normal(0, 1, (D, n))
    y = cond_y + 2.0 * comp + 0.5 * aux + rng.standard_t(4, (D, n))
    dummies = np.stack([(codes == c).astype(float) for c in range(1, 4)], -1)
    X = np.concatenate(
        [
            np.ones((D, n, 1)),
            ov[..., None],
            comp[..., None],
            aux[..., None],
            np.broadcast_to(dummies, (D, n, 3)),
        ],
        -1,
    )
    perms, exact = _within_permutations(codes, 199, np.random.default_rng(0), max_exact=0)
    for scheme in ("freedman_lane", "overlap"):
        p = permutation_p(X, y, perms, exact, scheme)
        rate = float(np.mean(p <= 0.05))
        assert 0.01 <= rate <= 0.09, (scheme, rate)  # >= 0.01: a test that never rejects fails
    # Without the competence adjustment the same data give a spurious "effect" most of the time.
    naive = permutation_p(X[..., [0, 1, 3, 4, 5, 6]], y, perms, exact)
    assert np.mean(naive <= 0.05) > 0.2
