"""Sweeps: grid expansion, bad input, skip-completed, failure isolation, executors."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from interp.core.errors import InterpError
from interp.runs.dirs import CELLS, FAILURES, RESULTS, RUNS
from interp.runs.executors import LocalExecutor, SerialExecutor, get_executor
from interp.runs.spec import TrainSpec
from interp.runs.sweep import RESULT_COLUMNS, run_sweep
from interp.runs.sweep_spec import expand, load_sweep_spec, sweep_metadata
from interp.runs.train import is_done
from interp.stats.transfer import normalize_meta

ROOT = Path(__file__).resolve().parent.parent
TINY_BASE = {
    "train": {"steps": 6, "batch_size": 8, "checkpoint_every": 3},
    "eval": {"examples": 4},
    "optim": {"warmup_steps": 2},
}


def tiny_spec(**over: Any) -> dict[str, Any]:
    """Two cells: arith_b (reverse_add <- reverse_sub) and its main-only baseline."""
    return {
        "name": "t",
        "groups": ["arith_b"],
        "seeds": [0],
        "lengths": [[2, 3]],
        "presets": ["tiny"],
        "baseline": True,
        "base": TINY_BASE,
        **over,
    }


class RecordingExecutor(SerialExecutor):
    """Serial, but remembers which items it was asked to run."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        on_error: Callable[[Any, BaseException], Any] | None = None,
    ) -> Iterator[Any]:
        self.seen.extend(items)
        return super().map(fn, items, on_error)


def test_grid_expansion_counts_ids_and_ranges() -> None:
    spec = {
        "groups": ["arith_a", "control_1", "maze_a"],
        "seeds": [0, 1],
        "lengths": [[4, 8], [3, 6]],
        "positional": ["rope", "nope"],
        "presets": "tiny",  # a single value is accepted for any list key
        "baseline": True,
        "eval_margin": 1,
        "base": {"train": {"steps": 5}},
    }
    cells = expand(spec)
    grid = [c for c in cells if c.kind != "baseline"]
    base = [c for c in cells if c.kind == "baseline"]
    assert len(grid) == 3 * 2 * 2 * 2
    # arith_a and control_1 share the main task reverse_add, hence their baselines.
    assert len(base) == 2 * 2 * 2 * 2  # main tasks x seeds x lengths x positional
    ids = [c.run for c in cells]
    assert len(set(ids)) == len(ids)
    assert [c.run for c in expand(spec)] == ids  # deterministic
    assert all(re.fullmatch(r"[a-z0-9_.-]+", i) for i in ids)
    assert "arith_a-tiny-nope-m3-a6-s1" in ids
    assert "baseline-reverse_add-tiny-rope-m4-e9-s0" in ids
    by_id = {c.run: c for c in cells}
    for c in grid:
        assert c.baseline in by_id and by_id[c.baseline].main == c.main
        assert by_id[c.baseline].seed == c.seed and by_id[c.baseline].positional == c.positional
        s = TrainSpec.from_dict(c.spec)
        assert s.name == c.run and s.seed == c.seed and s.group == c.group
        assert s.model.positional == c.positional and s.train.steps == 5
        assert s.eval.max_length == max(c.main_max, c.aux_max) + 1
        lo = 2 if c.group == "maze_a" else 1  # a maze has at least 2 nodes
        assert s.train_range(c.main) == (lo, c.main_max)
        for a in c.aux:
            assert s.train_range(a) == (lo, c.aux_max)
    kinds = {c.group: c.kind for c in grid}
    assert kinds == {"arith_a": "transfer", "control_1": "control", "maze_a": "transfer"}
    for c in base:
        s = TrainSpec.from_dict(c.spec)
        assert s.task_names == [c.main] and c.aux == () and c.baseline == ""
    no_base = expand({**spec, "baseline": False})
    assert len(no_base) == len(grid) and all(c.baseline == "" for c in no_base)


def test_metadata_feeds_the_transfer_module() -> None:
    cells = expand(tiny_spec(groups=["arith_a", "control_1"], seeds=[0, 1]))
    meta = sweep_metadata(cells)
    m = normalize_meta(meta)  # the columns interp.stats.transfer requires, validated there
    assert len(m) == len(cells) == 2 + 4
    row = m.set_index("run").loc["arith_a-tiny-rope-m2-a3-s1"]
    assert row["aux"] == ("no_carry", "carry_only") and row["kind"] == "transfer"
    assert row["baseline"] == "baseline-reverse_add-tiny-rope-m2-e3-s1"


def test_example_spec_is_valid() -> None:
    cells = expand(ROOT / "analyses" / "sweep_example.toml")
    assert len(cells) == 6 and {c.preset for c in cells} == {"tiny"}


@pytest.mark.parametrize(
    "over,match",
    [
        ({"colour": "red"}, "unknown keys"),
        ({"groups": []}, "'groups' must not be empty"),
        ({"groups": ["arith_z"]}, "unknown group 'arith_z'"),
        ({"seeds": [0, -1]}, "seeds"),
        ({"seeds": [0, 0]}, "twice"),
        ({"lengths": [[4]]}, "pairs"),
        ({"lengths": [[0, 4]]}, "pairs"),
        ({"lengths": "4,8"}, "pairs"),
        ({"baseline": "yes"}, "baseline"),
        ({"eval_margin": -1}, "eval_margin"),
        ({"base": {"trian": {}}}, r"unknown \[base\] sections"),
        ({"base": {"train": {"stepz": 3}}}, "sweep cell .*unknown keys"),
        ({"presets": ["huge"]}, "unknown model preset 'huge'"),
        ({"positional": ["alibi"]}, "positional"),
    ],
)
def test_malformed_sweep_specs_raise_one_clear_error(over, match) -> None:
    spec = tiny_spec(**over)
    with pytest.raises(InterpError, match=match):
        expand(spec)


def test_missing_required_key_and_bad_files(tmp_path: Path) -> None:
    spec = tiny_spec()
    del spec["seeds"]
    with pytest.raises(InterpError, match="missing required key 'seeds'"):
        load_sweep_spec(spec)
    with pytest.raises(InterpError, match="not found"):
        load_sweep_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("groups = [arith_a\n")
    with pytest.raises(InterpError, match="malformed sweep spec"):
        load_sweep_spec(bad)
    with pytest.raises(InterpError, match="malformed"):
        run_sweep(bad, tmp_path / "out", executor="serial", progress=False)
    assert not (tmp_path / "out").exists()  # nothing is written before validation passes


def test_executor_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InterpError, match="unknown executor 'dask'"):
        get_executor("dask")
    with pytest.raises(InterpError, match="only meaningful for the ray executor"):
        get_executor("local", address="127.0.0.1:6379")
    with pytest.raises(InterpError, match="workers"):
        get_executor("local", workers=0)
    with pytest.raises(InterpError, match="unknown executor"):
        run_sweep(tiny_spec(), "unused", executor="threads", progress=False)
    # An unreachable address fails fast (ray.init itself would retry for minutes).
    pytest.importorskip("ray")
    with pytest.raises(InterpError, match="cannot reach the Ray cluster at '127.0.0.1:1'"):
        get_executor("ray", address="127.0.0.1:1")
    with pytest.raises(InterpError, match="host:port"):
        get_executor("ray", address="nonsense")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(InterpError, match="needs Ray, which is not installed"):
        get_executor("ray")


def test_run_skip_completed_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "sw"
    ex = RecordingExecutor()
    df = run_sweep(tiny_spec(), out, executor=ex, progress=False)
    assert sorted(j["run"] for j in ex.seen) == sorted(c.run for c in expand(tiny_spec()))
    assert list(df.columns) == RESULT_COLUMNS
    pd.testing.assert_frame_equal(df, pd.read_parquet(out / RESULTS))
    assert json.loads((out / FAILURES).read_text()) == [] and df.attrs["failures"] == []
    assert len(pd.read_parquet(out / CELLS)) == 2
    assert set(df["step"]) == {3, 6} and df["done"].all()
    run = "arith_b-tiny-rope-m2-a3-s0"
    base = "baseline-reverse_add-tiny-rope-m2-e3-s0"
    assert set(df.loc[df["run"] == run, "task"]) == {"reverse_add", "reverse_sub"}
    assert set(df.loc[df["run"] == base, "task"]) == {"reverse_add"}
    roles = df.groupby("task")["role"].unique()
    assert list(roles["reverse_add"]) == ["main"] and list(roles["reverse_sub"]) == ["aux"]
    # One row per (run, step, task, length), lengths 1..eval max (3).
    assert not df.duplicated(["run", "step", "task", "length"]).any()
    assert set(df["length"]) == {1, 2, 3}
    assert (df.loc[df["run"] == run, "baseline"] == base).all()

    # Re-running does no work and gives the same table.
    again = RecordingExecutor()
    df2 = run_sweep(tiny_spec(), out, executor=again, progress=False)
    assert again.seen == []
    pd.testing.assert_frame_equal(df, df2)

    # An unfinished cell (DONE removed) is the only one rerun; results are preserved.
    (out / RUNS / run / "DONE").unlink()
    third = RecordingExecutor()
    mid = run_sweep(tiny_spec(), out, executor=third, progress=False)
    assert [j["run"] for j in third.seen] == [run]
    assert is_done(out / RUNS / run)  # resumed from its final checkpoint, nothing retrained
    pd.testing.assert_frame_equal(df, mid)


def test_failure_is_recorded_and_does_not_stop_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "sw"
    bad = "arith_b-tiny-rope-m2-a3-s0"
    # A run directory that holds a different run: training it raises, like any real failure.
    (out / RUNS / bad).mkdir(parents=True)
    (out / RUNS / bad / "config.json").write_text(json.dumps({"name": "someone else"}))
    df = run_sweep(tiny_spec(), out, executor="serial", progress=False)
    fails = json.loads((out / FAILURES).read_text())
    assert [f["run"] for f in fails] == [bad]
    assert "different config" in fails[0]["error"] and "Traceback" in fails[0]["traceback"]
    assert df.attrs["failures"][0]["run"] == bad
    assert set(df["run"]) == {"baseline-reverse_add-tiny-rope-m2-e3-s0"}  # the good cell ran
    # Fix the cause and rerun: only the failed cell trains, and the record clears.
    (out / RUNS / bad / "config.json").unlink()
    rec = RecordingExecutor()
    df2 = run_sweep(tiny_spec(), out, executor=rec, progress=False)
    assert [j["run"] for j in rec.seen] == [bad]
    assert json.loads((out / FAILURES).read_text()) == []
    assert set(df2["run"]) == {bad, "baseline-reverse_add-tiny-rope-m2-e3-s0"}


def _square_or_die(x: Any) -> Any:
    if x == "die":
        os._exit(3)  # a hard crash of the worker process, not a Python exception
    return x * x


def test_local_executor_runs_in_processes_and_survives_a_crash() -> None:
    # One pool only: every spawned worker imports torch, which costs seconds.
    ex = LocalExecutor(workers=1)
    res = list(
        ex.map(_square_or_die, [1, 2, 3, "die"], on_error=lambda item, e: ("failed", item, e))
    )
    assert sorted(r for r in res if not isinstance(r, tuple)) == [1, 4, 9]
    crashed = [r for r in res if isinstance(r, tuple)]
    assert len(crashed) == 1 and crashed[0][1] == "die"
    assert "terminated abruptly" in str(crashed[0][2])  # BrokenProcessPool, handed to on_error
