"""Analysis specs: every figure spec in ``analyses/`` expands at both scales and runs end to end
through ``interp sweep SPEC --analyze`` (shrunk to the tiny preset by ``tests/tinyscale.py``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest
from tinyscale import shrink_file, to_toml

from interp.cli.commands import main
from interp.core.errors import InterpError
from interp.runs.analysis import analyze_path, read_config
from interp.runs.analysis_spec import AnalysisConfig, load_analysis_spec
from interp.runs.sweep_spec import expand

ANALYSES = Path(__file__).resolve().parent.parent / "analyses"
SPECS = sorted(ANALYSES.glob("*.toml"))


def test_there_are_figure_specs():
    names = {p.stem for p in SPECS}
    assert {"fig3_arithmetic", "fig10_length_grid", "appendix_b_overlap", "demo"} <= names


@pytest.mark.parametrize("scale", ["cpu", "paper"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_expands(spec: Path, scale: str):
    has_paper = "paper" in tomllib.loads(spec.read_text())
    if scale == "paper" and not has_paper:
        with pytest.raises(InterpError, match="no \\[paper\\] table"):
            load_analysis_spec(spec, scale)
        return
    sweep, cfg = load_analysis_spec(spec, scale)
    assert isinstance(cfg, AnalysisConfig)
    cells = expand(sweep)
    assert cells
    presets = {c.preset for c in cells}
    assert presets == ({"paper"} if scale == "paper" else set(sweep.get("presets", ["cpu"])))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_spec_runs_through_the_cli(spec: Path, tmp_path: Path, capsys):
    tiny = shrink_file(spec, tmp_path / spec.name)
    out = tmp_path / "out"
    argv = ["sweep", str(tiny), "--out", str(out), "--analyze", "--executor", "serial", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    assert (out / "report.html").is_file()
    acc = pd.read_parquet(out / "analysis" / "accuracy.parquet")
    meta = pd.read_parquet(out / "analysis" / "meta.parquet")
    assert set(acc["run"]) == set(meta["run"]) and meta["analyzed"].all()
    # The sweep keeps its [analysis] table, so a later `interp analyze` measures the same way.
    _, cfg = load_analysis_spec(tiny)
    assert read_config(out) == cfg


def test_scale_paper_needs_a_paper_table(tmp_path: Path, capsys):
    spec = ANALYSES / "demo_quick.toml"
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--scale", "paper"]) == 2
    assert "no [paper] table" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "table, needle",
    [
        ("methods = ['bogus']", "unknown method 'bogus'"),
        ("metrics = 'exact_match'", "metrics must be a non-empty list"),
        ("n_examples = 0", "n_examples must be an integer in 1.."),
        ("k = 'three'", "k must be an integer"),
        ("causal = 1", "causal must be true or false"),
        ("checkpoints = 'some'", "checkpoints must be 'all' or 'last'"),
        ("colour = 'red'", "unknown keys ['colour']"),
    ],
)
def test_bad_analysis_table_is_refused_before_training(table, needle, tmp_path: Path, capsys):
    d = tomllib.loads((ANALYSES / "demo_quick.toml").read_text())
    d["analysis"].update(tomllib.loads(table))
    spec = tmp_path / "s.toml"
    spec.write_text(to_toml(d))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--analyze"]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_analyze_a_run_directory(tmp_path: Path, capsys):
    spec = shrink_file(ANALYSES / "cpu" / "arith_a.toml", tmp_path / "a.toml")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    assert main(["analyze", str(run), "--quiet", "--examples", "8", "--k", "2"]) == 0
    tables = {p.stem for p in (run / "analysis").glob("*.parquet")}
    assert {"accuracy", "scores", "overlap", "attention", "causal"} <= tables
    assert main(["report", str(run)]) == 0
    capsys.readouterr()
    assert main(["analyze", str(tmp_path)]) == 2
    assert "neither a run directory nor a sweep" in capsys.readouterr().err
    with pytest.raises(InterpError, match="k must be an integer"):
        analyze_path(run, {"k": 0})
