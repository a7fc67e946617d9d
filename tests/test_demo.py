"""The demo driver, on its seconds-scale variant: every stage runs and leaves its artifacts."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_demo_writes_every_stage(quick_demo):
    out, report = quick_demo
    assert report == out / "report.html" and report.is_file()
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 2 and any(r.startswith("baseline-") for r in runs)
    for r in runs:
        assert (out / "runs" / r / "DONE").is_file()
    adir = out / "analysis"
    for name in ("meta", "accuracy", "scores", "overlap", "attention", "transfer", "causal",
                 "correlations"):  # fmt: skip
        assert (adir / f"{name}.parquet").is_file(), name
    summary = (out / "summary.txt").read_text()
    assert "interp demo summary" in summary and "causal" in summary


def test_demo_leads_with_the_zoo_family(quick_demo):
    """The zoo part is computed from the copied weights: one entry per condition (quick), the
    final checkpoint only, and the summary and report open with the per-condition table."""
    from interp.cli.demo import zoo_names

    out, report = quick_demo
    names = zoo_names(quick=True)
    assert names and len({n.rsplit("_s", 1)[0] for n in names}) == len(names)
    zdir = out / "zoo"
    for n in names:
        idx = (zdir / "runs" / n / "checkpoints" / "index.json").read_text()
        assert idx.count("safetensors") == 1  # the final checkpoint only
    fam = pd.read_parquet(zdir / "analysis" / "family.parquet")
    assert set(fam["run"]) == set(names)
    assert ((fam["ci_lo"] <= fam["accuracy"]) & (fam["accuracy"] <= fam["ci_hi"])).all()
    assert set(fam["n"]) == {8}
    scores = pd.read_parquet(zdir / "analysis" / "scores.parquet")
    assert set(scores["run"]) == set(names) - {n for n in names if "_main_" in n}
    summary = (out / "summary.txt").read_text()
    lines = summary.splitlines()
    assert lines[2].startswith("zoo family") and "zoo primary test" in summary
    assert "family b4_* from its shipped tables: skipped (--quick)" in lines
    html = report.read_text()
    assert html.index("Transfer across the zoo family") < html.index("Live runs")


def test_demo_tables_are_consistent(quick_demo):
    out, _ = quick_demo
    adir = out / "analysis"
    acc = pd.read_parquet(adir / "accuracy.parquet")
    meta = pd.read_parquet(adir / "meta.parquet")
    scores = pd.read_parquet(adir / "scores.parquet")
    # Every run was evaluated at each of its checkpoints (10, 20, 30, 40).
    assert set(acc["run"]) == set(meta["run"])
    assert sorted(acc["step"].unique()) == [10, 20, 30, 40]
    assert acc["accuracy"].between(0, 1).all()
    # Heads are scored for all three tasks of the transfer run at every checkpoint, 2x2 heads,
    # on the main range, plus each auxiliary's own map on the transfer range (issue 10).
    transfer_run = meta.loc[meta["kind"] != "baseline", "run"].item()
    s = scores[(scores["run"] == transfer_run) & scores["length"].isna()]
    assert set(s["task"]) == {
        "reverse_add", "no_carry", "carry_only", "no_carry@transfer", "carry_only@transfer"
    }  # fmt: skip
    assert s.groupby(["step", "task", "method", "metric"]).size().eq(4).all()
    causal = pd.read_parquet(adir / "causal.parquet")
    assert set(causal["range"]) == {"train", "transfer"}
    assert set(causal["effect"]) == {"topk", "random", "diff"}


def test_rerun_skips_finished_cells(quick_demo, tmp_path):
    from interp.cli.demo import ANALYSES
    from interp.runs.analysis_spec import load_analysis_spec
    from interp.runs.sweep import run_sweep

    out, _ = quick_demo
    ckpt = next((out / "runs").iterdir()) / "checkpoints" / "index.json"
    before = ckpt.read_bytes()
    spec, _ = load_analysis_spec(ANALYSES / "demo_quick.toml")
    df = run_sweep(spec, out, executor="serial", progress=False)
    assert ckpt.read_bytes() == before  # nothing retrained
    assert df["run"].nunique() == 2


def test_summary_says_why_instead_of_printing_nan():
    """A live run too short to learn anything: the gap and the checkpoint correlation are
    undefined, and the summary says so in words."""
    import numpy as np

    from interp.cli.demo import _live_lines

    tables = {
        "meta": pd.DataFrame({"run": ["r"], "kind": ["transfer"], "main": ["reverse_add"],
                              "main_max": [3]}),  # fmt: skip
        "transfer": pd.DataFrame({"step": [40], "main_transfer_acc": [0.0],
                                  "baseline_transfer_acc": [0.0], "transfer_strength": [0.0],
                                  "gap": [np.nan]}),  # fmt: skip
        "correlations": pd.DataFrame({"view": ["checkpoints"], "statistic": ["map_diff"],
                                      "metric": ["gap"], "method": ["spearman"], "run": ["r"],
                                      "n": [0], "r": [np.nan],
                                      "reason": ["fewer than 3 checkpoints with a gap"]}),
    }  # fmt: skip
    text = "\n".join(_live_lines(tables))
    assert "nan" not in text.lower().replace("map_diff", "")
    assert "generalization gap undefined" in text
    assert "Spearman(map_diff, gap): fewer than 3 checkpoints with a gap" in text


def test_the_full_demo_analyses_the_first_seeds_of_every_condition():
    """The live zoo part is the first ZOO_DEMO_SEEDS seeds of each observational condition of
    the family (15 entries, the budget the demo was timed with), never a masked arm."""
    from interp.cli.demo import zoo_names
    from interp.core.resources import ZOO_DEMO_SEEDS, ZOO_FAMILY
    from interp.zoo.family_sweep import condition_of, seed_of

    names = zoo_names(quick=False)
    conditions = {condition_of(n) for n in names}
    assert conditions == {"both", "main", "control1", "nocarry", "carry"}
    assert all(n.startswith(ZOO_FAMILY) for n in names)
    assert sorted(seed_of(n) for n in names) == sorted(list(range(ZOO_DEMO_SEEDS)) * 5)
