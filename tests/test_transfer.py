"""Transfer tables and overlap-vs-transfer correlations on synthetic data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from interp.core.errors import InterpError
from interp.stats.transfer import (
    CHECKPOINT_REASON,
    checkpoint_metrics,
    normalize_meta,
    pair_overlap,
    parse_aux,
    transfer_correlations,
    transfer_table,
)

MAIN_MAX, AUX_MAX = 4, 8
STEPS = [10, 20, 30, 40, 50, 60]
# group -> (kind, auxiliaries, mean transfer level); the control transfers nothing.
GROUPS = {
    "g_strong": ("transfer", ("a1", "a2"), 0.8),
    "g_weak": ("transfer", ("b1",), 0.4),
    "ctrl": ("control", ("c1",), 0.2),
}
SEEDS = [0, 1, 2, 3]
BASE_Q = 0.1  # the baseline's main-task accuracy in the transfer range


def _acc_rows(run: str, step: int, main: str, aux: tuple[str, ...], q: float) -> list[dict]:
    """Aux solved at every length; main solved in range and at accuracy ``q`` beyond it."""
    rows = []
    for L in range(1, AUX_MAX + 1):
        rows.append(
            {
                "run": run,
                "step": step,
                "task": main,
                "length": L,
                "accuracy": 1.0 if L <= MAIN_MAX else q,
            }
        )
        for a in aux:
            rows.append({"run": run, "step": step, "task": a, "length": L, "accuracy": 1.0})
    return rows


def _q(group: str, seed: int, step: int) -> float:
    """Known transfer level: group level + a seed offset + a checkpoint wiggle, in [0, 1]."""
    level = GROUPS[group][2]
    return float(np.clip(level + 0.05 * (seed - 1.5) + 0.1 * math.sin(step / 7 + seed), 0, 1))


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    meta, acc, ov = [], [], []
    g = np.random.default_rng(0)
    for seed in SEEDS:
        base = f"base-s{seed}"
        meta.append(
            {
                "run": base,
                "group": "baseline",
                "seed": seed,
                "main": "m",
                "aux": "",
                "main_max": MAIN_MAX,
                "aux_max": AUX_MAX,
                "kind": "baseline",
                "baseline": "",
            }
        )
        for step in STEPS:
            acc += _acc_rows(base, step, "m", (), BASE_Q)
        for group, (kind, aux, _) in GROUPS.items():
            run = f"{group}-s{seed}"
            meta.append(
                {
                    "run": run,
                    "group": group,
                    "seed": seed,
                    "main": "m",
                    "aux": ",".join(aux),
                    "main_max": MAIN_MAX,
                    "aux_max": AUX_MAX,
                    "kind": kind,
                    "baseline": base,
                    "positional": "rope",
                }
            )
            for step in STEPS:
                q = _q(group, seed, step)
                acc += _acc_rows(run, step, "m", aux, q)
                for i, a in enumerate(aux):
                    # "sim" tracks transfer (similarity; stored in both pair orders), "dist" is
                    # noise; a pair between two auxiliaries must be ignored.
                    ta, tb = ("m", a) if i % 2 == 0 else (a, "m")
                    ov.append((run, step, ta, tb, "sim", q + 0.001 * g.normal()))
                    ov.append((run, step, ta, tb, "dist", g.normal()))
                ov.append((run, step, aux[0], "zz", "sim", 99.0))
    overlap = pd.DataFrame(ov, columns=["run", "step", "task_a", "task_b", "statistic", "value"])
    return overlap, pd.DataFrame(acc), pd.DataFrame(meta)


def test_parse_aux_accepts_strings_and_sequences() -> None:
    assert parse_aux("a, b,") == ("a", "b")
    assert parse_aux(["a", "b"]) == ("a", "b")
    assert parse_aux(np.array(["a"])) == ("a",)
    assert parse_aux("") == () and parse_aux(None) == () and parse_aux(float("nan")) == ()


def test_checkpoint_metrics_match_hand_computation(synthetic) -> None:
    _, acc, meta = synthetic
    cm = checkpoint_metrics(acc, meta)
    assert not cm["run"].str.startswith("base").any()  # baselines are references only
    assert len(cm) == len(GROUPS) * len(SEEDS) * len(STEPS)
    for _, r in cm.iterrows():
        group, seed = r["run"].rsplit("-s", 1)
        q = _q(group, int(seed), r["step"])
        # Every aux is solved (accuracy 1), so gap = mean over L of (1 - q) / 1.
        assert r["gap"] == pytest.approx(1 - q)
        assert r["transfer_strength"] == pytest.approx(q - BASE_Q)
        assert r["main_train_acc"] == 1.0 and r["aux_transfer_acc"] == 1.0
        assert r["main_transfer_acc"] == pytest.approx(q)
        assert r["baseline_transfer_acc"] == pytest.approx(BASE_Q)


def test_baseline_step_falls_back_to_the_latest_earlier_checkpoint() -> None:
    meta = pd.DataFrame(
        [
            {
                "run": "r",
                "group": "g",
                "seed": 0,
                "main": "m",
                "aux": ["a"],
                "main_max": MAIN_MAX,
                "aux_max": AUX_MAX,
                "kind": "transfer",
                "baseline": "b",
            },
            {
                "run": "b",
                "group": "g",
                "seed": 0,
                "main": "m",
                "aux": [],
                "main_max": MAIN_MAX,
                "aux_max": AUX_MAX,
                "kind": "baseline",
                "baseline": None,
            },
            {
                "run": "orphan",
                "group": "g",
                "seed": 1,
                "main": "m",
                "aux": ("a",),
                "main_max": MAIN_MAX,
                "aux_max": AUX_MAX,
                "kind": "transfer",
                "baseline": float("nan"),
            },
        ]
    )
    acc = []
    for step in (5, 10, 20, 30):
        acc += [{**row, "run": "r", "step": step} for row in _rows_q(step / 100)]
        acc += [{**row, "run": "orphan", "step": step} for row in _rows_q(0.5)]
    for step in (10, 30):  # the baseline has no checkpoint at 5 and 20
        acc += [{**row, "run": "b", "step": step} for row in _rows_q(step / 1000)]
    cm = checkpoint_metrics(pd.DataFrame(acc), meta).set_index(["run", "step"])
    ts = cm["transfer_strength"]
    assert math.isnan(ts[("r", 5)])  # no baseline checkpoint at or before step 5
    assert ts[("r", 10)] == pytest.approx(0.10 - 0.010)
    assert ts[("r", 20)] == pytest.approx(0.20 - 0.010)  # baseline step 10 stands in
    assert ts[("r", 30)] == pytest.approx(0.30 - 0.030)
    assert cm.loc[("orphan", slice(None)), "transfer_strength"].isna().all()
    assert cm.loc[("orphan", slice(None)), "gap"].notna().all()


def _rows_q(q: float) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in ("run", "step")}
        for r in _acc_rows("", 0, "m", ("a",), q)
    ]


def test_pair_overlap_averages_auxiliaries_in_either_order(synthetic) -> None:
    overlap, _, meta = synthetic
    po = pair_overlap(overlap, meta)
    assert list(po.columns) == ["run", "step", "statistic", "overlap", "n_pairs"]
    sim = po[po["statistic"] == "sim"].set_index(["run", "step"])
    strong = sim.loc[("g_strong-s0", 10)]
    assert strong["n_pairs"] == 2  # (m, a1) and (a2, m); the (a1, zz) pair is ignored
    assert strong["overlap"] == pytest.approx(_q("g_strong", 0, 10), abs=0.05)
    assert (sim["overlap"] < 2).all()  # the 99.0 decoys never leak in
    assert set(po["run"]) == {f"{g}-s{s}" for g in GROUPS for s in SEEDS}


def test_transfer_table_joins_one_row_per_run_step_statistic(synthetic) -> None:
    overlap, acc, meta = synthetic
    t = transfer_table(overlap, acc, meta)
    assert len(t) == len(GROUPS) * len(SEEDS) * len(STEPS) * 2
    assert not t.duplicated(["run", "step", "statistic"]).any()
    for c in ("group", "seed", "kind", "aux", "positional", "overlap", "gap", "transfer_strength"):
        assert c in t.columns
    assert set(t.loc[t["group"] == "g_strong", "aux"]) == {"a1,a2"}
    sim = t[t["statistic"] == "sim"]
    # overlap ~ q and gap = 1 - q by construction
    assert np.allclose(sim["overlap"] + sim["gap"], 1.0, atol=0.05)
    # A run missing from the accuracy table drops out rather than producing NaN rows.
    t2 = transfer_table(overlap, acc[acc["run"] != "ctrl-s0"], meta)
    assert "ctrl-s0" not in set(t2["run"]) and len(t2) == len(t) - 2 * len(STEPS)


def test_aux_as_list_or_string_gives_the_same_table(synthetic) -> None:
    overlap, acc, meta = synthetic
    listed = meta.copy()
    listed["aux"] = [tuple(a.split(",")) if a else () for a in meta["aux"]]
    pd.testing.assert_frame_equal(
        transfer_table(overlap, acc, meta), transfer_table(overlap, acc, listed)
    )


def test_correlations_recover_the_planted_relation_in_every_view(synthetic) -> None:
    overlap, acc, meta = synthetic
    t = transfer_table(overlap, acc, meta)
    c = transfer_correlations(t, n_boot=200, n_perm=200, seed=0)
    assert set(c["view"]) == {"checkpoints", "seeds", "groups"}
    assert set(c["method"]) == {"pearson", "spearman"}
    assert set(c["metric"]) == {"gap", "transfer_strength"}
    key = ["view", "run", "group", "statistic", "metric", "method"]
    assert not c.duplicated(key).any()

    ck = c[(c["view"] == "checkpoints") & (c["statistic"] == "sim")]
    assert len(ck) == len(GROUPS) * len(SEEDS) * 2 * 2
    assert (ck["n"] == len(STEPS)).all()
    gap = ck[ck["metric"] == "gap"]
    ts = ck[ck["metric"] == "transfer_strength"]
    assert (gap["r"] < -0.9).all() and (ts["r"] > 0.9).all()  # similarity: gap down, TS up
    # One run's checkpoints are not independent: the view is descriptive, never a test.
    assert ck[["ci_low", "ci_high", "p_value"]].isna().all().all()
    assert (ck["reason"] == CHECKPOINT_REASON).all()

    seeds = c[(c["view"] == "seeds") & (c["statistic"] == "sim")]
    assert set(seeds["group"]) == set(GROUPS) and (seeds["n"] == len(SEEDS)).all()
    assert (seeds["run"] == "").all()

    groups = c[(c["view"] == "groups") & (c["statistic"] == "sim") & (c["metric"] == "gap")]
    assert len(groups) == 2 and (groups["n"] == len(GROUPS)).all()  # controls included
    assert (groups["r"] < -0.9).all() and (groups["group"] == "").all()

    noise = c[(c["view"] == "checkpoints") & (c["statistic"] == "dist")]
    assert noise["r"].abs().mean() < 0.6  # the unrelated statistic shows no systematic link


def test_correlation_summaries_last_vs_mean(synthetic) -> None:
    overlap, acc, meta = synthetic
    t = transfer_table(overlap, acc, meta)
    last = transfer_correlations(t, views=["seeds"], metrics=["gap"], n_boot=20, n_perm=20)
    mean = transfer_correlations(
        t, views=["seeds"], metrics=["gap"], at="mean", n_boot=20, n_perm=20
    )
    assert set(last["view"]) == {"seeds"} and set(last["metric"]) == {"gap"}
    assert len(last) == len(mean) == len(GROUPS) * 2 * 2
    assert not np.allclose(last["r"], mean["r"])
    with pytest.raises(InterpError, match="'at'"):
        transfer_correlations(t, at="median")


def test_degenerate_views_return_nan_with_a_reason(synthetic) -> None:
    overlap, acc, meta = synthetic
    one_seed = meta[meta["seed"].isin([0, -1]) | (meta["kind"] == "baseline")]
    t = transfer_table(overlap, acc, one_seed)
    c = transfer_correlations(t, views=["seeds"], n_boot=20, n_perm=20)
    assert c["r"].isna().all() and (c["n"] == 1).all() and (c["reason"] != "").all()


def test_bad_inputs_raise_interp_error(synthetic) -> None:
    overlap, acc, meta = synthetic
    with pytest.raises(InterpError, match="missing columns"):
        transfer_table(overlap.drop(columns="statistic"), acc, meta)
    with pytest.raises(InterpError, match="missing columns"):
        checkpoint_metrics(acc.drop(columns="accuracy"), meta)
    with pytest.raises(InterpError, match="missing columns"):
        normalize_meta(meta.drop(columns="baseline"))
    with pytest.raises(InterpError, match="more than once"):
        normalize_meta(pd.concat([meta, meta.iloc[:1]]))
    t = transfer_table(overlap, acc, meta)
    with pytest.raises(InterpError, match="unknown view"):
        transfer_correlations(t, views=["runs"])


def test_seeds_view_is_not_testable_below_five_runs_and_groups_view_is_descriptive(
    synthetic,
) -> None:
    """n = 3 seeds once gave p = 0.34 beside a '95%' interval [0.9996, 1.0]: now not testable,
    with the same phrase as every other test; the groups view (across conditions) never tests."""
    from interp.stats.transfer import GROUPS_REASON

    overlap, acc, meta = synthetic
    t = transfer_table(overlap, acc, meta)
    c = transfer_correlations(t, n_boot=50, n_perm=200, seed=0)
    seeds = c[c["view"] == "seeds"]
    assert (seeds["n"] < 5).all()  # the fixture has fewer than 5 seeds per group
    assert seeds[["ci_low", "ci_high", "p_value"]].isna().all().all()
    assert seeds["reason"].str.startswith("not testable (n=").all()
    groups = c[c["view"] == "groups"]
    assert groups[["ci_low", "ci_high", "p_value"]].isna().all().all()
    assert (groups.loc[groups["r"].notna(), "reason"] == GROUPS_REASON).all()
    assert "confounded" in GROUPS_REASON and "across conditions" in GROUPS_REASON


def test_seeds_view_interval_is_fisher_z_with_enough_runs() -> None:
    from interp.stats.transfer import _seed_rules

    res = pd.DataFrame(
        {"r": [0.5, 0.5], "n": [12, 12], "method": ["pearson", "spearman"],
         "ci_low": 0.0, "ci_high": 0.0, "p_value": 0.1, "reason": ""}
    )  # fmt: skip
    out = _seed_rules(res)
    z, q = np.arctanh(0.5), 1.959964
    assert out["ci_low"].iloc[0] == pytest.approx(np.tanh(z - q / 3), rel=1e-5)
    assert out["ci_high"].iloc[1] == pytest.approx(np.tanh(z + q * np.sqrt(1.125) / 3), rel=1e-5)
    assert (out["p_value"] == 0.1).all() and (out["reason"] == "").all()
