"""Run directory -> analysis tables: per-checkpoint accuracy, scores, overlap; merging writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from interp.core.errors import InterpError
from interp.report.plots import write_overlap_figures
from interp.runs.pipeline import (
    analyze_run,
    common_lengths,
    overlap_run,
    run_meta,
    score_lengths,
    score_plan,
    score_run,
)
from interp.runs.spec import TrainSpec
from interp.runs.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = TrainSpec.from_dict(
        {
            "name": "pipe",
            "group": "arith_a",
            "main": "reverse_add",
            "tasks": [
                {"name": "reverse_add", "lengths": [1, 2]},
                {"name": "no_carry", "lengths": [1, 3]},
            ],
            "model": {"preset": "tiny"},
            "train": {"steps": 6, "batch_size": 8, "checkpoint_every": 3, "log_every": 3},
            "eval": {"examples": 4},
        }
    )
    out = tmp_path_factory.mktemp("pipe") / "run"
    train(spec, out, progress=False)
    return out


def test_lengths_and_meta(run_dir: Path):
    from interp.runs.loader import read_run_spec

    spec = read_run_spec(run_dir)
    assert score_lengths(spec, "reverse_add") == [1, 2]
    assert score_lengths(spec, "no_carry") == [1, 2, 3]
    assert common_lengths(spec, spec.task_names) == [1, 2]
    meta = run_meta(run_dir)
    assert (meta["main_max"], meta["aux_max"], meta["kind"]) == (2, 3, "transfer")


def test_analyze_run_covers_every_checkpoint(run_dir: Path):
    out = analyze_run(run_dir, n_examples=4, k=2, progress=False)
    assert sorted(out["accuracy"]["step"].unique()) == [3, 6]
    sc = out["scores"]
    assert sorted(sc["step"].unique()) == [3, 6]
    # 3 maps (reverse_add, no_carry on 1..2; no_carry@transfer on 3) x 2 metrics (exact_match,
    # frac_lost) x 2 layers x 2 heads per checkpoint (aggregate rows).
    agg = sc[sc["length"].isna()]
    assert agg.groupby("step").size().eq(24).all()
    assert set(agg["task"]) == {"reverse_add", "no_carry", "no_carry@transfer"}
    assert set(agg["metric"]) == {"exact_match", "frac_lost"}
    ov = out["overlap"]
    assert {"map_diff", "cosine", "spearman", "jaccard@2", "attn_diff"} <= set(ov["statistic"])
    assert sorted(ov["step"].unique()) == [3, 6]


def test_score_plan_compares_like_with_like(run_dir: Path):
    from interp.runs.loader import read_run_spec

    spec = read_run_spec(run_dir)
    plan = score_plan(spec, spec.task_names)
    assert plan == [
        ("reverse_add", "reverse_add", [1, 2]),
        ("no_carry", "no_carry", [1, 2]),
        ("no_carry@transfer", "no_carry", [3]),
    ]
    assert score_plan(spec, ["no_carry"], lengths=[2]) == [("no_carry", "no_carry", [2])]
    with pytest.raises(InterpError, match="give lengths"):
        score_plan(spec, ["copy"])


def test_overlap_rows_never_mix_methods_or_metrics(run_dir: Path):
    out = analyze_run(run_dir, steps=[6], n_examples=4, k=2, progress=False)
    ov = out["overlap"]
    keys = ["step", "method", "metric", "task_a", "task_b", "statistic"]
    assert not ov.duplicated(keys).any()
    assert set(ov["metric"]) == {"exact_match", "frac_lost"}
    pairs = set(zip(ov["task_a"], ov["task_b"], strict=True))
    assert ("reverse_add", "no_carry") in pairs
    assert ("reverse_add", "no_carry@transfer") in pairs


def test_single_checkpoint_commands_add_to_the_tables(run_dir: Path):
    analyze_run(run_dir, n_examples=4, k=2, progress=False)
    score_run(run_dir, checkpoint=3, methods=["zero_ablation"], n_examples=4, progress=False)
    scores = pd.read_parquet(run_dir / "analysis" / "scores.parquet")
    # The earlier mean-ablation rows of both steps are kept; zero ablation is added at step 3.
    assert set(zip(scores["step"], scores["method"], strict=True)) == {
        (3, "mean_ablation"),
        (6, "mean_ablation"),
        (3, "zero_ablation"),
    }
    overlap_run(run_dir, checkpoint=6, k=2, n_examples=4)
    ov = pd.read_parquet(run_dir / "analysis" / "overlap.parquet")
    assert sorted(ov["step"].unique()) == [3, 6]
    # Figures are the presentation stage's (interp.report.plots), drawn from these tables by the
    # CLI.
    assert not (run_dir / "analysis" / "overlap_matrix.html").exists()
    assert (run_dir / "analysis" / "overlap_matrix.html") in write_overlap_figures(run_dir, 6)
    assert (run_dir / "analysis" / "overlap_matrix.html").is_file()


def test_bad_steps_and_choices(run_dir: Path):
    with pytest.raises(InterpError, match="available steps: 3, 6"):
        score_run(run_dir, steps=[4], progress=False)
    with pytest.raises(InterpError, match="valid choices"):
        score_run(run_dir, methods=["nope"], progress=False)
    with pytest.raises(InterpError, match="unknown task"):
        score_run(run_dir, tasks=["bogus"], progress=False)
