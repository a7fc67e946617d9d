"""The CLI: readable errors with exit code 2, no tracebacks, and working happy paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from interp.cli.commands import main, parse_lengths
from interp.core.errors import InterpError

TINY_SPEC = """
name = "cli_tiny"
main = "reverse_add"
seed = 0

[[tasks]]
name = "reverse_add"
lengths = [1, 2]

[[tasks]]
name = "no_carry"
lengths = [1, 3]

[model]
preset = "tiny"

[train]
steps = 6
batch_size = 8
checkpoint_every = 3
log_every = 3

[eval]
examples = 8
"""


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "interp.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_tasks_list_and_show(capsys):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "reverse_add" in out and "dfs_trace" in out and "mqar" in out
    assert main(["tasks", "show", "reverse_add", "--length", "3", "-n", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("<add>") for line in lines)


def test_groups_list(capsys):
    assert main(["groups", "list"]) == 0
    out = capsys.readouterr().out
    assert "arith_a" in out and "control_2" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["tasks", "show", "nope_task", "--length", "3"], "valid choices"),
        (["tasks", "show", "copy", "--length", "999"], "outside task"),
        (["eval", "/nonexistent/run"], "not found"),
    ],
)
def test_bad_input_exit_2_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_count_is_argparse_error():
    r = run_cli("tasks", "show", "copy", "--length", "3", "-n", "0")
    assert r.returncode == 2
    assert r.stderr.startswith("interp: error: tasks show: argument -n: expected an integer in 1..")
    assert len(r.stderr.splitlines()) == 1


def test_subprocess_unknown_task_no_traceback():
    r = run_cli("tasks", "show", "bogus", "--length", "2")
    assert r.returncode == 2
    assert r.stderr.startswith("interp: error: unknown task 'bogus'")
    assert "Traceback" not in r.stderr


def test_train_eval_and_bad_inputs(tmp_path: Path, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    assert (run / "DONE").is_file()
    capsys.readouterr()
    assert main(["eval", str(run), "--examples", "4", "--lengths", "1:3", "--quiet"]) == 0
    assert "reverse_add" in capsys.readouterr().out
    # A length beyond the model's context: a clear message, not a shape error.
    assert main(["eval", str(run), "--lengths", "1:40", "--quiet"]) == 2
    assert "n_ctx" in capsys.readouterr().err
    # A step that does not exist lists the ones that do.
    assert main(["eval", str(run), "--checkpoint", "5", "--quiet"]) == 2
    assert "available steps: 3, 6" in capsys.readouterr().err
    # Malformed spec and unknown task in a spec.
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    assert main(["train", str(bad), "--out", str(tmp_path / "r2")]) == 2
    assert "malformed spec" in capsys.readouterr().err
    bad.write_text(TINY_SPEC.replace('name = "no_carry"', 'name = "no_such_task"'))
    assert main(["train", str(bad), "--out", str(tmp_path / "r3")]) == 2
    assert "unknown task 'no_such_task'" in capsys.readouterr().err
    # Resuming into the same directory with another config is refused and damages nothing.
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    other = tmp_path / "other.toml"
    other.write_text(TINY_SPEC.replace("steps = 6", "steps = 9"))
    assert main(["train", str(other), "--out", str(run), "--quiet"]) == 2
    assert "different config" in capsys.readouterr().err
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert before == after


def test_corrupt_checkpoint_is_reported(tmp_path: Path, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    ckpt = run / "checkpoints" / "step_000006.safetensors"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["eval", str(run), "--quiet", "--examples", "4"]) == 2
    assert "corrupt checkpoint" in capsys.readouterr().err


def test_parse_lengths():
    assert parse_lengths("2:5") == [2, 3, 4, 5]
    assert parse_lengths("1,4") == [1, 4]
    assert parse_lengths(None) is None
    with pytest.raises(InterpError):
        parse_lengths("5:2")
    with pytest.raises(InterpError):
        parse_lengths("a:b")


def test_score_overlap_report_and_bad_choices(tmp_path: Path, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    assert (run / "eval").exists() is False
    assert main(["eval", str(run), "--examples", "4", "--quiet"]) == 0
    assert (run / "eval" / "accuracy_step_000006.html").is_file()
    assert (
        main(["score", str(run), "--method", "mean_ablation,zero_ablation", "--examples", "4"]) == 0
    )
    import pandas as pd

    scores = pd.read_parquet(run / "analysis" / "scores.parquet")
    assert set(scores["method"]) == {"mean_ablation", "zero_ablation"}
    # the main range for both tasks, plus the auxiliary's own map on the transfer range
    assert set(scores["task"]) == {"reverse_add", "no_carry", "no_carry@transfer"}
    assert main(["overlap", str(run), "--k", "2"]) == 0
    assert (run / "analysis" / "overlap.parquet").is_file()
    assert (run / "analysis" / "overlap_matrix.html").is_file()
    capsys.readouterr()
    assert main(["score", str(run), "--method", "bogus"]) == 2
    assert "valid choices" in capsys.readouterr().err
    assert main(["score", str(run), "--metric", "bogus"]) == 2
    assert "valid choices" in capsys.readouterr().err
    assert main(["overlap", str(run), "--k", "99"]) == 2
    assert "k" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "neither a run directory nor a sweep" in capsys.readouterr().err
    bad = tmp_path / "sweep.toml"
    bad.write_text('groups = ["arith_a"]\nseeds = "x"\n')
    assert main(["sweep", str(bad), "--out", str(tmp_path / "sw")]) == 2
    assert main(["sweep", str(bad), "--out", str(tmp_path / "sw"), "--executor", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
