"""The family's statistics from shipped per-checkpoint tables (interp.zoo.family_tables).

A synthetic family is laid out as zoo entries (the real b4 specs, as config.json) with tables in
the layout analyses/family/checkpoint_tables.py writes, with planted effects, so each test can
fail: the intervention's arms differ when planted, the masked runs stay out of the
observational tests, and an entry without tables is listed, not dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp import zoo
from interp.core.io import write_json, write_parquet
from interp.report import family_results
from interp.runs.spec import load_spec
from interp.scoring.overlap import overlap_table
from interp.zoo import family_tables as ft

STEPS = [500, 1000, 1500, 2000, 2400, 2800, 3000, 3200, 3400, 3600, 3800, 4000]
N = 256


def _entry(root, name, rng, transfer, overlap_shift, tables=True):
    spec = load_spec(zoo.SPEC_DIR / f"{name}.toml")
    d = root / name
    d.mkdir(parents=True)
    write_json(d / "config.json", spec.to_dict())
    (d / "spec.toml").write_text((zoo.SPEC_DIR / f"{name}.toml").read_text())
    if not tables:
        return
    acc_rows, head_rows = [], []
    base = rng.normal(0, 1, (4, 4))
    for i, step in enumerate(STEPS):
        grow = (i + 1) / len(STEPS)
        for task in spec.task_names:
            for L in range(1, 13):
                if L <= 6 or task != spec.main:
                    p = min(1.0, 0.5 + grow)
                else:
                    p = transfer * grow
                k = int(rng.binomial(N, p))
                acc_rows.append(
                    {
                        "step": step,
                        "task": task,
                        "length": L,
                        "accuracy": k / N,
                        "n": N,
                        "logprob": -1.0,
                        "correct": k,
                    }
                )
            for rng_name, lengths in (("shared", 6), ("transfer", 6)):
                if rng_name == "transfer" and task == spec.main:
                    continue
                noise = rng.normal(0, 0.1 + overlap_shift * (task != spec.main), (4, 4))
                for metric in ("exact_match", "frac_lost"):
                    for layer in range(4):
                        for head in range(4):
                            head_rows.append(
                                {
                                    "step": step,
                                    "range": rng_name,
                                    "task": task,
                                    "layer": layer,
                                    "head": head,
                                    "score": float(base[layer, head] + noise[layer, head]),
                                    "method": "mean_ablation",
                                    "metric": metric,
                                    "clean": 0.9,
                                    "n": N * lengths,
                                }
                            )
    acc = pd.DataFrame(acc_rows)
    acc["ci_lo"], acc["ci_hi"] = 0.0, 1.0
    acc.insert(0, "run", name)
    heads = pd.DataFrame(head_rows)
    heads.insert(0, "run", name)
    (d / "tables").mkdir()
    write_parquet(d / "tables" / ft.ACCURACY_FILE, acc)
    write_parquet(d / "tables" / ft.HEADS_FILE, heads)


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    rng = np.random.default_rng(0)
    for s in range(6):
        _entry(root, f"b4_both_s{s}", rng, transfer=rng.uniform(0.1, 0.6), overlap_shift=0.2)
        _entry(root, f"b4_shared_s{s}", rng, transfer=0.5, overlap_shift=0.0)
        _entry(root, f"b4_disjoint_s{s}", rng, transfer=0.0, overlap_shift=0.0)
    for cond in ("main", "control1", "nocarry", "carry"):
        for s in range(3):
            _entry(
                root,
                f"b4_{cond}_s{s}",
                rng,
                transfer=0.0 if cond != "nocarry" else 0.2,
                overlap_shift=0.5 if cond == "control1" else 0.2,
            )
    _entry(root, "b4_carry_s3", rng, 0.0, 0.2, tables=False)
    return root, ft.analyze("b4_", root)


def test_every_table_is_there_and_entries_without_tables_are_listed(family):
    _, t = family
    for key in (
        "meta",
        "accuracy",
        "overlap",
        "seeds",
        "runs",
        "between",
        "contrasts",
        "within_runs",
        "within",
        "arms",
        "results",
    ):
        assert key in t and len(t[key]), key
    meta = t["meta"].set_index("run")
    assert not meta.loc["b4_carry_s3", "tables"] and meta["tables"].sum() == len(meta) - 1
    assert "b4_carry_s3" not in set(t["accuracy"]["run"])


def test_masked_runs_stay_out_of_the_observational_tests(family):
    _, t = family
    obs = set(t["runs"]["run"])
    assert not any("_shared_" in r or "_disjoint_" in r for r in obs)
    assert {f"b4_both_s{s}" for s in range(6)} <= obs
    assert not any(r.startswith("b4_main") for r in obs)  # baselines have no overlap


def test_overlap_by_step_is_overlap_table_of_the_shared_range(family):
    root, t = family
    _, heads = ft.entry_tables("b4_both_s0", root)
    sub = heads[
        (heads["step"] == 4000) & (heads["range"] == "shared") & (heads["metric"] == "exact_match")
    ].assign(length=pd.NA)
    want = overlap_table(sub, None, k=ft.K).sort_values(["task_a", "task_b", "statistic"])
    got = t["overlap"]
    got = got[
        (got["run"] == "b4_both_s0") & (got["step"] == 4000) & (got["metric"] == "exact_match")
    ].sort_values(["task_a", "task_b", "statistic"])
    np.testing.assert_allclose(got["value"].to_numpy(), want["value"].to_numpy())


def test_the_planted_intervention_effect_is_found_and_competence_is_not(family):
    _, t = family
    arms = t["arms"].set_index("value")
    tr = arms.loc["transfer_acc"]
    assert (tr["n_a"], tr["n_b"]) == (6, 6)
    assert tr["p_value"] <= 0.01 and tr["ci_low"] > 0 and tr["estimate"] > 3
    assert arms.loc["competence", "p_value"] > 0.05
    paired = arms.loc["transfer_acc (paired by seed)"]
    assert paired["n_a"] == 6 and paired["p_value"] <= 0.05 and not paired["reason"]


def test_the_transfer_contrast_is_read_as_confounded_when_competence_differs(family):
    """PLAN section 8: read the intervention only at comparable in-distribution accuracy. With
    the planted arms (equal competence) the transfer row is plain; with the competence row
    made significant, the same transfer row says it is confounded."""
    _, t = family
    res = t["results"].set_index("question")
    row = "transfer: shared heads vs disjoint heads (intervention)"
    assert res.loc[row, "verdict"].startswith("the arms differ")
    assert "confounded" not in res.loc[row, "verdict"]
    # power beside the test: the minimum detectable shift at 6 seeds per arm, or why none
    assert np.isfinite(res.loc[row, "mde"]) or "power never reaches 80%" in res.loc[row, "verdict"]
    arms = t["arms"].copy()
    arms.loc[arms["value"] == "competence", "p_value"] = 0.008
    res2 = ft.results_table({**t, "arms": arms}).set_index("question")
    assert "; but competence differs too" in res2.loc[row, "verdict"]
    assert "p = 0.008" in res2.loc[row, "verdict"] and "confounded" in res2.loc[row, "verdict"]
    exploratory = res[res["role"] == "exploratory"]
    assert list(exploratory.index) == [
        f"transfer: shared vs disjoint, runs with competence >= {ft.COMPETENT} only"
    ]
    # The exploratory contrast carries its power too (unequal arms: the competent runs).
    ex = exploratory.iloc[0]
    assert np.isfinite(ex["mde"]) or "power never reaches 80%" in ex["verdict"], ex


def test_intervention_power_takes_unequal_arms():
    from interp.stats.power import power_intervention

    equal = power_intervention([3.0], 4, n_datasets=200, seed=1)
    assert power_intervention([3.0], (4, 4), n_datasets=200, seed=1) == equal
    # 8 against 3 can reach a two-sided 0.05 (smallest exact p 2/165); 3 against 3 cannot (0.1)
    assert power_intervention([5.0], (8, 3), n_datasets=200, seed=1)[0] > 0.2
    assert power_intervention([5.0], (3, 3), n_datasets=200, seed=1)[0] == 0.0


def test_seed_table_counts_the_transfer_range_at_the_final_checkpoint(family):
    root, t = family
    acc, _ = ft.entry_tables("b4_disjoint_s0", root)
    row = t["seeds"].set_index("run").loc["b4_disjoint_s0"]
    final = acc[
        (acc["step"] == 4000) & (acc["task"] == "reverse_add") & acc["length"].between(7, 12)
    ]
    assert row["correct"] == final["correct"].sum() == 0 and row["n"] == 6 * N
    assert row["ci_lo"] == 0 and 0 < row["ci_hi"] < 0.01


def test_results_table_has_one_row_per_question_with_power(family):
    _, t = family
    res = t["results"]
    assert (res["role"] == "primary").sum() == 1 and (res["role"] == "sensitivity").sum() <= 1
    prim = res[res["role"] == "primary"].iloc[0]
    assert np.isfinite(prim["mde"]) and np.isfinite(prim["p_value"])
    assert "minimum detectable effect" in prim["verdict"] or prim["p_value"] <= 0.05
    assert res["question"].str.contains("within runs").sum() == 1  # the primary combination
    assert res["question"].str.contains("intervention").any()


def test_few_pairs_are_not_testable(family):
    _, t = family
    seeds = t["seeds"][~t["seeds"]["run"].isin(["b4_shared_s5", "b4_shared_s4"])]
    row = ft.paired_arms(seeds)
    assert row["n_pairs"] == 4 and np.isnan(row["p_value"]) and "not testable" in row["reason"]


def test_a_family_without_tables_is_one_clear_error(tmp_path):
    _entry(tmp_path, "b4_both_s0", np.random.default_rng(1), 0.3, 0.1, tables=False)
    with pytest.raises(Exception, match="ships per-checkpoint tables"):
        ft.analyze("b4_", tmp_path)


def test_checkpoint_tables_script_writes_what_family_tables_reads(tmp_path, monkeypatch):
    """analyses/family/checkpoint_tables.py on a 4-step run of the family's own spec (a small
    model): one accuracy row per checkpoint, task and length 1..12; head maps on the shared
    range for every task and on the transfer range for the auxiliaries only."""
    import runpy
    import sys
    import tomllib
    from pathlib import Path

    from interp.core.io import read_parquet
    from interp.runs.spec import TrainSpec
    from interp.runs.train import train

    d = tomllib.loads((zoo.SPEC_DIR / "b4_both_s0.toml").read_text())
    d["model"] = {**d["model"], "n_layers": 1, "d_model": 32, "d_mlp": 64}
    d["train"] = {**d["train"], "steps": 4, "checkpoint_steps": [2, 4], "autocast": "off",
                  "compile": False}  # fmt: skip
    d["eval"] = {**d["eval"], "examples": 8}
    run, out = tmp_path / "run", tmp_path / "tables"
    train(TrainSpec.from_dict(d), run, progress=False)
    script = Path(__file__).resolve().parent.parent / "analyses" / "family" / "checkpoint_tables.py"
    argv = [str(script), str(run), str(out), "--examples", "8", "--transfer-examples", "4"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")  # in-process: no second interpreter start
    acc = read_parquet(out / ft.ACCURACY_FILE)
    heads = read_parquet(out / ft.HEADS_FILE)
    tasks = {"reverse_add", "no_carry", "carry_only"}
    assert len(acc) == 2 * 3 * 12 and set(acc["step"]) == {2, 4} and set(acc["task"]) == tasks
    assert (acc["n"] == 8).all() and (acc["correct"] == (acc["accuracy"] * 8).round()).all()
    shared = heads[heads["range"] == "shared"]
    transfer = heads[heads["range"] == "transfer"]
    assert set(shared["task"]) == tasks and set(transfer["task"]) == tasks - {"reverse_add"}
    assert set(heads["metric"]) == {"exact_match", "frac_lost"}
    assert (shared["n"] == 6 * 8).all() and (transfer["n"] == 6 * 4).all()
    assert len(shared) == 2 * 3 * 2 * 4  # steps x tasks x metrics x heads (1 layer)
    ov = ft.overlap_by_step(heads)
    assert set(ov["step"]) == {2, 4} and (ov["run"] == "b4_both_s0").all()


def test_cli_zoo_family_writes_the_tables_and_prints_one_line_per_question(
    family, tmp_path, monkeypatch, capsys
):
    from interp.cli import main
    from interp.zoo import registry

    root, t = family
    monkeypatch.setattr(registry, "ZOO_DIR", root)
    assert main(["zoo", "family", "--out", str(tmp_path / "fam")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("family b4_* from its shipped tables (30 of 60 planned runs")
    assert len(out) == 1 + len(t["results"]) + 1
    assert any("intervention" in line and "p = " in line for line in out)
    md = (tmp_path / "fam" / "results.md").read_text()
    assert "| shared | 0 |" in md and "| disjoint | 5 |" in md
    for key in ("results", "seeds", "runs", "arms"):
        assert (tmp_path / "fam" / f"{key}.parquet").is_file()
    assert main(["zoo", "family", "--prefix", "zz_", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interp: error: no zoo entries named zz_")


def test_the_repository_family_is_read_from_its_shipped_tables(monkeypatch):
    """What `make demo` prints for the family, and the results table in the docs: the entries'
    committed tables analysed (or, before any entry ships them, one line saying there are none),
    never a model run; ``analyses/family/results.md`` is what ``interp zoo family`` writes now."""
    import functools
    from pathlib import Path

    from interp.cli.demo import shipped_family_lines

    # One analysis of the shipped family (about 14 s) serves both the demo's lines and the
    # results.md check below.
    monkeypatch.setattr(ft, "analyze", functools.cache(ft.analyze))

    lines = shipped_family_lines(quick=False)
    assert lines[0].startswith(f"family {ft.PREFIX}* from its shipped tables")
    shipped = [n for n in zoo.names() if n.startswith(ft.PREFIX) and ft.has_tables(n)]
    if not shipped:
        assert len(lines) == 1 and "none" in lines[0]
        return
    assert f"({len(shipped)} of " in lines[0] and len(lines) > 1
    results = Path(__file__).resolve().parent.parent / "analyses" / "family" / "results.md"
    assert results.read_text() == family_results.markdown(ft.analyze(ft.PREFIX)), (
        "analyses/family/results.md is stale: run `interp zoo family`"
    )


def test_the_plan_was_committed_before_any_family_result():
    """The README quotes the commit of analyses/family/PLAN.md; it precedes every b4 entry."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    assert "`analyses/family/PLAN.md`, was committed in `7e549ef`" in " ".join(readme.split())
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")

    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return r.stdout.strip()

    if git("rev-parse", "--is-shallow-repository") == "true" or not git(
        "cat-file", "-t", "7e549ef"
    ):
        pytest.skip("history not available (shallow clone)")
    assert (
        git("log", "--diff-filter=A", "--format=%h", "--", "analyses/family/PLAN.md")
        .split()[-1]
        .startswith("7e549ef")
    )
    plan_time = int(git("log", "-1", "--format=%ct", "7e549ef"))
    firsts = git("log", "--diff-filter=A", "--format=%ct", "--", "models/zoo/b4_*/tables").split()
    assert all(int(t) >= plan_time for t in firsts)
