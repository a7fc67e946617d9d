"""The run/sweep directory layout: one owner, the same names the writers use, merging writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from interp import runs as rundir
from interp.core.errors import InterpError
from interp.runs import sweep, train
from interp.runs.dirs import RunDir, SweepDir, ZooEntryDir, meta_row, open_dir, upsert
from interp.runs.spec import TrainSpec
from interp.zoo import registry as zoo


def test_writers_use_the_layout_the_readers_ask_for():
    # train.py and sweep.py take their file names from rundir (and re-export them).
    assert (train.CONFIG, train.METRICS, train.DONE) == (rundir.CONFIG, rundir.METRICS, rundir.DONE)
    assert (sweep.RUNS, sweep.CELLS, sweep.RESULTS, sweep.FAILURES, sweep.SWEEP_JSON) == (
        rundir.RUNS,
        rundir.CELLS,
        rundir.RESULTS,
        rundir.FAILURES,
        rundir.SWEEP_JSON,
    )


def test_open_dir_tells_runs_from_sweeps(tmp_path: Path):
    with pytest.raises(InterpError, match="not found"):
        open_dir(tmp_path / "missing")
    with pytest.raises(InterpError, match="neither a run directory nor a sweep"):
        open_dir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.CONFIG).write_text("{}")
    assert isinstance(open_dir(run), RunDir)
    sw = SweepDir(tmp_path / "sweep")
    sw.path.mkdir()
    pd.DataFrame({"run": ["a"]}).to_parquet(sw.cells_path)
    d = open_dir(sw.path)
    assert isinstance(d, SweepDir) and d.run("a").path == sw.path / "runs" / "a"
    with pytest.raises(InterpError, match=r"corrupt table .*no column\(s\) group, kind"):
        d.cells()  # cells.parquet without the cell columns (issue 26)
    pd.DataFrame([{c: "a" for c in sweep.META_COLUMNS}]).to_parquet(sw.cells_path)
    assert list(d.cells()["run"]) == ["a"]
    with pytest.raises(InterpError, match="not a sweep directory"):
        SweepDir(run).cells()
    with pytest.raises(InterpError, match="not a run directory"):
        RunDir(sw.path).spec()


def test_tables_upsert_by_keys(tmp_path: Path):
    rd = RunDir(tmp_path)
    assert not rd.has_analysis()
    with pytest.raises(InterpError, match="no scores table"):
        rd.read_table("scores")
    a = pd.DataFrame({"step": [1, 2], "method": ["m", "m"], "v": [0.1, 0.2]})
    rd.upsert_table("scores", a, ["step", "method"])
    b = pd.DataFrame({"step": [2, 2], "method": ["m", "z"], "v": [0.5, 0.6]})
    out = rd.upsert_table("scores", b, ["step", "method"])
    got = rd.read_table("scores").sort_values(["step", "method"]).reset_index(drop=True)
    assert list(zip(got["step"], got["method"], got["v"], strict=True)) == [
        (1, "m", 0.1),
        (2, "m", 0.5),
        (2, "z", 0.6),
    ]
    assert len(out) == 3
    assert rd.table_path("scores") == tmp_path / "analysis" / "scores.parquet"
    assert set(rd.read_tables(["scores", "overlap"])) == {"scores"}
    upsert(tmp_path / "x.parquet", a, ["step"])  # a plain path works too
    assert len(pd.read_parquet(tmp_path / "x.parquet")) == 2


def test_zoo_entry_is_a_run_directory_trained_before_the_layout_module():
    name = zoo.names()[0]
    entry = ZooEntryDir(zoo.entry_dir(name))
    assert entry.is_run() and entry.is_done() is entry.done_path.is_file()
    assert entry.spec() == zoo.spec(name)
    assert entry.checkpoints() == zoo.checkpoints(name)
    assert entry.spec_file() == zoo.spec_path(name)
    assert entry.accuracy_path.is_file() and entry.card_path.is_file()
    assert entry.checkpoints_dir.is_dir()


def test_meta_row_matches_the_sweep_cells():
    spec = TrainSpec.from_dict(
        {
            "name": "m",
            "group": "arith_a",
            "main": "reverse_add",
            "tasks": [
                {"name": "reverse_add", "lengths": [1, 2]},
                {"name": "no_carry", "lengths": [1, 3]},
            ],
            "model": {"preset": "tiny"},
        }
    )
    row = meta_row(spec, baseline="b")
    assert (row["main_max"], row["aux_max"], row["aux"], row["baseline"]) == (2, 3, "no_carry", "b")
    assert row["kind"] == "transfer"
    assert set(row) <= set(sweep.META_COLUMNS)


def test_a_shipped_zoo_entry_is_never_written_through_the_api(tmp_path: Path):
    """The CLI sends outputs of commands on a shipped entry to an output folder; code that
    writes a table into the entry directly is refused (issue 26)."""
    entry = zoo.entry_dir("arith_a")
    assert rundir.is_shipped_entry(entry)
    df = pd.DataFrame({"step": [1], "x": [0.5]})
    with pytest.raises(InterpError, match="never written into"):
        RunDir(entry).write_eval(1, df)
    with pytest.raises(InterpError, match="never written into"):
        RunDir(entry).upsert_table("scores", df, ["step"])
    assert not (entry / "eval").exists() and not (entry / "analysis").exists()
    # A copy elsewhere is the user's own run directory.
    import shutil

    copy = tmp_path / "arith_a"
    shutil.copytree(entry, copy)
    assert rundir.is_zoo_entry(copy) and not rundir.is_shipped_entry(copy)
    RunDir(copy).write_eval(1, df)
    assert rundir.outputs_dir(copy).path == copy
    out = rundir.outputs_dir(entry, tmp_path / "out")
    assert rundir.dir_kind(out.path) == rundir.OUTPUTS_KIND and out.spec().name == "arith_a"
    assert out.checkpoints() == zoo.checkpoints("arith_a")
