"""Bad input through the CLI: one line ``interp: error: ...``, exit 2, nothing written.

Each case here is one that once ended in a traceback or did the wrong thing silently (a campaign
of wrong types, out-of-range values, file-system faults and corrupt run directories). The fuzz
test at the end feeds random wrong-type and out-of-range spec values to the validators.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch
from tinyscale import to_toml

from interp.cli.commands import main
from interp.core.errors import InterpError
from interp.runs.analysis_spec import AnalysisConfig
from interp.runs.spec import TrainSpec
from interp.runs.sweep_spec import expand, sweep_metadata

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "name": "cli_tiny",
    "main": "reverse_add",
    "seed": 0,
    "tasks": [
        {"name": "reverse_add", "lengths": [1, 2]},
        {"name": "no_carry", "lengths": [1, 3]},
    ],
    "model": {"preset": "tiny"},
    "train": {"steps": 6, "batch_size": 8, "checkpoint_every": 3, "log_every": 3},
    "eval": {"examples": 8},
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished tiny run, its spec, a plain file and a tiny sweep spec."""
    d = tmp_path_factory.mktemp("bad_input")
    spec = d / "tiny.toml"
    spec.write_text(to_toml(TINY))
    run = d / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    afile = d / "afile"
    afile.write_text("not a directory\n")
    # Directories of other kinds, as their writers leave them (their first file names them).
    other = tomllib.loads((ROOT / "analyses" / "demo_quick.toml").read_text())
    other.pop("analysis")
    other["seeds"] = [7]  # a different grid than the spec the tests sweep
    fake_sweep = d / "fake_sweep"
    fake_sweep.mkdir()
    (fake_sweep / "sweep.json").write_text(json.dumps(other))
    sweep_metadata(expand(other)).to_parquet(fake_sweep / "cells.parquet", index=False)
    fake_experiment = d / "fake_experiment"
    fake_experiment.mkdir()
    (fake_experiment / "experiment.json").write_text(json.dumps({"checkpoints": ["x"]}))
    return {"dir": d, "spec": spec, "run": run, "file": afile,
            "sweep": ROOT / "analyses" / "demo_quick.toml", "fake_sweep": fake_sweep,
            "fake_experiment": fake_experiment,
            "zoo_entry": ROOT / "models" / "zoo" / "arith_a"}  # fmt: skip


def _listing(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and mtime: what "nothing written" compares."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*"))}  # fmt: skip


def _argv(template: list[str], work: dict[str, Path], tmp_path: Path) -> list[str]:
    paths = {k: str(v) for k, v in work.items()} | {"tmp": str(tmp_path)}
    return [a.format(**paths) for a in template]


def _one_line_error(capsys: pytest.CaptureFixture[str], needle: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("interp: error: ") and needle in lines[0], lines[0]
    return lines[0]


CASES = [
    ("eval-negative-lengths", ["eval", "{run}", "--lengths=-3:2", "--quiet"], "in 1..10000"),
    ("eval-huge-lengths", ["eval", "{run}", "--lengths", "1:100000000000", "--quiet"],
     "--lengths must lie in 1..10000"),
    ("eval-huge-examples", ["eval", "{run}", "--examples", "99999999999"], "in 1..100000"),
    ("eval-beyond-context", ["eval", "{run}", "--lengths", "1:40", "--quiet"], "n_ctx"),
    ("eval-negative-checkpoint", ["eval", "{run}", "--checkpoint", "-1"], "integer in 0.."),
    ("eval-missing-checkpoint", ["eval", "{run}", "--checkpoint", "5", "--quiet"],
     "available steps: 3, 6"),
    ("eval-missing-run", ["eval", "{tmp}/nope"], "not found"),
    ("show-negative-seed", ["tasks", "show", "reverse_add", "--length", "3", "--seed=-1"],
     "integer in 0..4294967295"),
    ("show-seed-2**32", ["tasks", "show", "reverse_add", "--length", "3", "--seed", "4294967296"],
     "integer in 0..4294967295"),
    ("show-huge-n", ["tasks", "show", "copy", "--length", "3", "-n", "99999999999999"],
     "integer in 1..100000"),
    ("show-negative-length", ["tasks", "show", "copy", "--length", "-1"], "integer in 0..10000"),
    ("show-length-outside-task", ["tasks", "show", "copy", "--length", "999"], "outside task"),
    ("show-unknown-task", ["tasks", "show", "bogus", "--length", "2"], "unknown task 'bogus'"),
    ("train-out-empty", ["train", "{spec}", "--out", ""], "empty path"),
    ("train-out-is-file", ["train", "{spec}", "--out", "{file}"], "is not a directory"),
    ("train-out-under-file", ["train", "{spec}", "--out", "{file}/run"], "cannot create directory"),
    ("train-out-unwritable-parent", ["train", "{spec}", "--out", "/proc/interp-test/run"],
     "cannot create directory"),
    ("train-missing-spec", ["train", "{tmp}/none.toml", "--out", "{tmp}/r"], "spec file not found"),
    ("demo-out-is-file", ["demo", "--quick", "--out", "{file}"], "is not a directory"),
    ("demo-out-empty", ["demo", "--quick", "--out", ""], "empty path"),
    ("sweep-out-is-file", ["sweep", "{sweep}", "--out", "{file}"], "is not a directory"),
    ("sweep-out-empty", ["sweep", "{sweep}", "--out", " "], "empty path"),
    ("sweep-bad-scale", ["sweep", "{sweep}", "--out", "{tmp}/o", "--scale", "huge"],
     "invalid choice"),
    ("sweep-bad-executor", ["sweep", "{sweep}", "--out", "{tmp}/o", "--executor", "nope"],
     "unknown executor"),
    ("sweep-paper-without-table", ["sweep", "{sweep}", "--out", "{tmp}/o", "--scale", "paper"],
     "no [paper] table"),
    ("score-bad-method", ["score", "{run}", "--method", "bogus", "--quiet"], "valid choices"),
    ("overlap-k-too-big", ["overlap", "{run}", "--k", "99"], "k"),
    ("analyze-not-a-run", ["analyze", "{dir}"], "neither a run directory nor a sweep"),
    ("report-missing", ["report", "{tmp}/nope"], "not found"),
    ("unknown-command", ["frobnicate"], "invalid choice"),
    ("missing-argument", ["train", "{spec}"], "--out"),
    # issue 26
    ("train-out-long-component", ["train", "{spec}", "--out", "{tmp}/" + "x" * 300],
     "File name too long"),
    ("train-out-under-long-component", ["train", "{spec}", "--out", "{tmp}/" + "y" * 300 + "/r"],
     "File name too long"),
    ("sweep-out-long-component", ["sweep", "{sweep}", "--out", "{tmp}/" + "x" * 300],
     "File name too long"),
    ("eval-long-component", ["eval", "{tmp}/" + "x" * 300], "File name too long"),
    ("zoo-train-relative-path", ["zoo", "train", "../../../../specs/good"], "zoo name must"),
    ("zoo-train-absolute-path", ["zoo", "train", "/etc/passwd"], "zoo name must"),
    ("zoo-train-dot-dot", ["zoo", "train", ".."], "zoo name must"),
    ("zoo-export-path-name", ["zoo", "export", "{run}", "../x"], "zoo name must"),
    ("train-into-sweep", ["train", "{spec}", "--out", "{fake_sweep}"],
     "holds a sweep, not a run"),
    ("train-into-zoo-entry", ["train", "{spec}", "--out", "{zoo_entry}"],
     "holds a zoo entry, not a run"),
    ("train-into-experiment", ["train", "{spec}", "--out", "{fake_experiment}"],
     "holds a fine-tuning experiment, not a run"),
    ("sweep-into-run", ["sweep", "{sweep}", "--out", "{run}"], "holds a run, not a sweep"),
    ("sweep-into-zoo-entry", ["sweep", "{sweep}", "--out", "{zoo_entry}"],
     "holds a zoo entry, not a sweep"),
    ("sweep-into-other-sweep", ["sweep", "{sweep}", "--out", "{fake_sweep}"],
     "already holds a sweep with a different spec"),
    ("analyze-sweep-with-out", ["analyze", "{fake_sweep}", "--out", "{tmp}/o"],
     "--out is for a run directory or zoo entry"),
    ("eval-out-is-zoo-entry", ["eval", "{zoo_entry}", "--out", "{zoo_entry}", "--quiet"],
     "must not be the zoo entry"),
    ("eval-out-is-run", ["eval", "{zoo_entry}", "--out", "{run}", "--quiet"],
     "holds a run, not an output folder"),
]  # fmt: skip


@pytest.mark.parametrize("argv, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument(argv, needle, work, tmp_path: Path, capsys):
    args = _argv(argv, work, tmp_path)
    kinds = ["fake_sweep", "fake_experiment", "zoo_entry"]
    before = {k: _listing(work[k]) for k in kinds + (["run"] if "{run}" in argv[2:] else [])}
    try:
        rc = main(args)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        rc = e.code
    assert rc == 2
    _one_line_error(capsys, needle)
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()
    # Nothing was written into a directory of another kind (or into the shipped zoo entry).
    assert before == {k: _listing(work[k]) for k in before}


SPEC_CASES = [
    ("seed", None, -1, "seed must be an integer in 0..4294967295"),
    ("seed", None, 2**32, "seed must be an integer in 0..4294967295"),
    ("model", None, "tiny", "[model] must be a table"),
    ("train", "log_every", 0, "log_every must be in 1.."),
    ("train", "threads", -3, "threads must be in 0..1024"),
    ("train", "checkpoint_every", -20, "checkpoint_every must be in 0.."),
    ("train", "batch_size", 10**9, "batch_size must be in 1..1048576"),
    ("train", "steps", 0, "steps must be in 1.."),
    ("optim", "lr", -1.0, "lr must be in (0, 10]"),
    ("optim", "lr", math.nan, "lr must be in (0, 10]"),
    ("optim", "lr", math.inf, "lr must be in (0, 10]"),
    ("optim", "warmup_steps", -5, "warmup_steps must be in 0.."),
    ("optim", "betas", [0.9, 1.5], "betas must lie in [0, 1)"),
    ("model", "d_mlp", "big", "d_mlp must be an integer"),
    ("model", "rotary_base", 0, "rotary_base must be a number in (1, 1e12]"),
    ("model", "n_layers", 100000, "n_layers must be an integer in 1..1024"),
    ("model", "init_seed", -1, "init_seed must be an integer in 0.."),
    ("eval", "seed", -1, "seed must be in 0..4294967295"),
    ("eval", "examples", 0, "examples must be in 1.."),
]


@pytest.mark.parametrize(
    "section, key, value, needle", SPEC_CASES, ids=[f"{c[0]}.{c[1]}={c[2]!r}" for c in SPEC_CASES]
)
def test_bad_spec_value_writes_nothing(section, key, value, needle, tmp_path: Path, capsys):
    d = json.loads(json.dumps(TINY))
    if key is None:
        d[section] = value
    else:
        d.setdefault(section, {})[key] = value
    spec = tmp_path / "bad.toml"
    spec.write_text(to_toml(d))
    out = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, needle)
    # Validation runs before anything is written: the corrected spec then trains there.
    assert not out.exists()


def test_rejected_spec_leaves_no_directory_that_refuses_the_fix(work, tmp_path: Path, capsys):
    d = json.loads(json.dumps(TINY))
    d["optim"] = {"lr": -1.0}
    bad = tmp_path / "bad.toml"
    bad.write_text(to_toml(d))
    out = tmp_path / "run"
    assert main(["train", str(bad), "--out", str(out), "--quiet"]) == 2
    assert main(["train", str(work["spec"]), "--out", str(out), "--quiet"]) == 0
    assert (out / "DONE").is_file() and not (out / ".lock").exists()


def _damage_index(run: Path, how: str) -> str:
    index = run / "checkpoints" / "index.json"
    entries = json.loads(index.read_text())
    if how == "a list":
        index.write_text(json.dumps(list(entries.values())))
    elif how == "no sha256":
        entries["6"].pop("sha256")
        index.write_text(json.dumps(entries))
    elif how == "non-integer step":
        entries["six"] = entries.pop("6")
        index.write_text(json.dumps(entries))
    elif how == "file with a path":
        entries["6"]["file"] = "../../config.json"
        index.write_text(json.dumps(entries))
    elif how == "not JSON":
        index.write_text("{ half")
        return "malformed JSON"
    return "corrupt checkpoint index"


@pytest.mark.parametrize("how", ["a list", "no sha256", "non-integer step", "file with a path",
                                 "not JSON"])  # fmt: skip
@pytest.mark.parametrize("command", ["eval", "train"])
def test_malformed_index_is_reported_as_corrupt(how, command, work, tmp_path: Path, capsys):
    run = tmp_path / "run"
    shutil.copytree(work["run"], run)
    needle = _damage_index(run, how)
    argv = ["eval", str(run), "--quiet"] if command == "eval" else ["train", str(work["spec"])]
    if command == "train":
        argv += ["--out", str(run), "--quiet"]
    assert main(argv) == 2
    _one_line_error(capsys, needle)


@pytest.mark.parametrize(
    "target, content, needle",
    [
        ("config.json", "[1, 2]", "corrupt"),
        ("config.json", '{"name": "x"}', "corrupt"),
        ("metrics.parquet", "garbage", "corrupt table"),
    ],
)
def test_malformed_run_files(target, content, needle, work, tmp_path: Path, capsys):
    run = tmp_path / "run"
    shutil.copytree(work["run"], run)
    (run / target).write_text(content)
    argv = (
        ["train", str(work["spec"]), "--out", str(run), "--quiet"]
        if target == "metrics.parquet"
        else ["eval", str(run), "--quiet"]
    )
    assert main(argv) in (2,)
    _one_line_error(capsys, needle)


def test_file_system_error_in_run_dir_is_one_line(work, tmp_path: Path, capsys):
    """A run directory whose ``checkpoints`` cannot be written (here a file stands in its way:
    root ignores permission bits) fails with the OS's reason, not a traceback."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(work["run"] / "config.json", run / "config.json")
    (run / "checkpoints").write_text("in the way")
    assert main(["train", str(work["spec"]), "--out", str(run), "--quiet"]) == 2
    _one_line_error(capsys, "checkpoints")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_run_dir(work, tmp_path: Path, capsys):
    run = tmp_path / "run"
    shutil.copytree(work["run"], run)
    (run / "DONE").unlink()
    run.chmod(0o555)
    try:
        assert main(["train", str(work["spec"]), "--out", str(run), "--quiet"]) == 2
        _one_line_error(capsys, "")
    finally:
        run.chmod(0o755)


def test_score_error_is_on_its_own_line(work, capsys):
    assert main(["score", str(work["run"]), "--lengths", "1:40", "--examples", "4"]) == 2
    err = capsys.readouterr().err
    last = err.rstrip("\n").split("\n")[-1]
    assert last.startswith("interp: error: ") and "n_ctx" in last, err


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_lock_refuses_a_second_writer_and_takes_over_a_stale_one(work, tmp_path: Path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (run / ".lock").write_text(f"{holder.pid} {socket.gethostname()}\n")
        assert main(["train", str(work["spec"]), "--out", str(run), "--quiet"]) == 2
        _one_line_error(capsys, f"in use by another interp process (pid {holder.pid})")
        assert not (run / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    (run / ".lock").write_text("4242 another-host\n")  # cannot be checked from here: live
    assert main(["train", str(work["spec"]), "--out", str(run), "--quiet"]) == 2
    _one_line_error(capsys, "(pid 4242 on another-host)")
    (run / ".lock").write_text(f"{_dead_pid()} {socket.gethostname()}\n")  # killed: stale
    assert main(["train", str(work["spec"]), "--out", str(run), "--quiet"]) == 0
    assert (run / "DONE").is_file() and not (run / ".lock").exists()


@pytest.mark.slow
def test_two_trainings_on_one_directory(work, tmp_path: Path):
    """The race itself: a second ``interp train`` while the first runs fails clearly. The first
    is paused (SIGSTOP) while it holds the lock, so the overlap does not depend on timing."""
    d = json.loads(json.dumps(TINY))
    d["train"].update(steps=60, checkpoint_every=0)
    spec = tmp_path / "long.toml"
    spec.write_text(to_toml(d))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "interp.cli", "train", str(spec), "--out", str(run), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / ".lock").exists() and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)
        held = (run / ".lock").exists()
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
        rc = first.wait(timeout=300)
    assert rc == 0, first.stderr.read()
    assert (run / "DONE").is_file() and not (run / ".lock").exists()
    if held:  # (it could only be gone if the whole run finished within one poll interval)
        assert second.returncode == 2
        assert second.stderr.startswith("interp: error: ") and "in use" in second.stderr
        assert len(second.stderr.splitlines()) == 1


# --------------------------------------------------------------------------------------------
# Issue 26: faults and inputs found by trying the newer features as a new user would.


@pytest.mark.parametrize("pid", ["99999999999999999999", "-5", "0x10", "0"])
def test_lock_with_an_absurd_pid_is_stale(pid, work, tmp_path: Path, capsys):
    """A lock whose pid no system can have (os.kill raised OverflowError) was not written by
    interp's dir_lock: it is taken over like a dead process's lock."""
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(f"{pid} {socket.gethostname()}\n")
    assert main(["train", str(work["spec"]), "--out", str(run), "--quiet"]) == 0
    assert (run / "DONE").is_file() and not (run / ".lock").exists()


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    from interp.models.checkpoint import load_tensors

    tensors, _ = load_tensors(run, step)
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "optim."))}


def _assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("error", ["safetensors", "oserror"])
def test_disk_full_at_a_checkpoint_keeps_the_last_good_one_and_resumes(
    error, work, tmp_path: Path, capsys, monkeypatch
):
    """The disk fills while step 6's checkpoint is written: one line, exit 2, step 3's checkpoint
    and the index intact, no temporary file left; once there is room, the resumed run ends with
    the uninterrupted run's weights, bit for bit."""
    import errno

    from safetensors import SafetensorError

    from interp.models import checkpoint

    real = checkpoint.save_file

    def full_disk(tensors, filename, metadata=None):
        if metadata and metadata.get("step") == "6":
            real(tensors, filename, metadata=metadata)  # (a partial file on disk, as in life)
            Path(filename).write_bytes(Path(filename).read_bytes()[:100])
            if error == "safetensors":  # what safetensors raises for ENOSPC
                raise SafetensorError("Error while serializing: IoError(No space left on device)")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    run = tmp_path / "run"
    assert main(["train", str(work["spec"]), "--out", str(run), "--quiet"]) == 2
    _one_line_error(capsys, "No space left on device")
    from interp.models.checkpoint import list_checkpoints

    assert list_checkpoints(run) == [3]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "index.json", "step_000003.safetensors"]  # fmt: skip
    assert not (run / "DONE").exists() and not (run / ".lock").exists()
    _assert_bit_identical(_weights(run, 3), _weights(work["run"], 3))
    monkeypatch.setattr(checkpoint, "save_file", real)  # the disk has room again
    assert main(["train", str(work["spec"]), "--out", str(run), "--quiet"]) == 0
    assert list_checkpoints(run) == [3, 6] and (run / "DONE").is_file()
    _assert_bit_identical(_weights(run, 6), _weights(work["run"], 6))


def test_an_old_config_with_threads_0_still_resumes(work, tmp_path: Path, capsys):
    """Runs made before threads defaulted to 1 recorded ``threads = 0``; the thread count is an
    execution setting, so today's default spec still resumes them."""
    run = tmp_path / "run"
    shutil.copytree(work["run"], run)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["threads"] == 1  # today's default, recorded
    cfg["train"]["threads"] = 0
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "DONE").unlink()
    assert main(["train", str(work["spec"]), "--out", str(run), "--quiet"]) == 0
    assert (run / "DONE").is_file()
    assert capsys.readouterr().err == ""  # the default setting is reproducible: no note


def test_train_notes_a_setting_that_is_not_reproducible(tmp_path: Path, capsys):
    d = json.loads(json.dumps(TINY))
    d["train"]["threads"] = 2
    spec = tmp_path / "two.toml"
    spec.write_text(to_toml(d))
    out = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interp: note: [train] threads = 2"), err
    assert "threads = 1" in err[0]
    assert torch.get_num_threads() == 1  # training's setting is not left behind (conftest's 1)


def test_two_default_trainings_give_identical_weights(tmp_path: Path):
    """Two ``interp train`` processes of one spec with default settings (torch free to use
    every core, as for a user) end with bit-identical weights and optimizer state."""
    d = json.loads(json.dumps(TINY))
    d["train"].update(steps=20, checkpoint_every=10, batch_size=16)
    spec = tmp_path / "spec.toml"
    spec.write_text(to_toml(d))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        cmd = [sys.executable, "-m", "interp.cli", "train", str(spec), "--out", str(out)]
        proc = subprocess.run(cmd + ["--quiet"], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "note" not in proc.stderr  # the default is the reproducible setting
        assert json.loads((out / "config.json").read_text())["train"]["threads"] == 1
        runs.append(out)
    _assert_bit_identical(_weights(runs[0], 20), _weights(runs[1], 20))


def test_sweep_spec_identity_ignores_execution_settings_only(tmp_path: Path):
    from interp.runs.sweep import check_same_sweep
    from interp.runs.sweep_spec import load_sweep_spec

    base = tomllib.loads((ROOT / "analyses" / "demo_quick.toml").read_text())
    base.pop("analysis")
    (tmp_path / "sweep.json").write_text(json.dumps(base))
    same = json.loads(json.dumps(base))
    same["base"]["train"].update(device="cpu", threads=2, compile=True)
    same["base"]["eval"]["batch_size"] = 64
    check_same_sweep(tmp_path, load_sweep_spec(same))  # accepted
    for key, value in (("seeds", [0, 1]), ("lengths", [[3, 7]]), ("baseline", False)):
        other = {**base, key: value}
        with pytest.raises(InterpError, match="different spec"):
            check_same_sweep(tmp_path, load_sweep_spec(other))
    other = json.loads(json.dumps(base))
    other["base"]["train"]["steps"] = 41
    with pytest.raises(InterpError, match="different spec"):
        check_same_sweep(tmp_path, load_sweep_spec(other))
    (tmp_path / "sweep.json").write_text('{"groups": 3}')
    with pytest.raises(InterpError, match="corrupt"):
        check_same_sweep(tmp_path, load_sweep_spec(base))


def _fake_sweep(path: Path) -> Path:
    """A sweep directory as far as analyze and report read it before computing anything."""
    import pandas as pd

    from interp.runs.sweep_spec import expand as expand_cells
    from interp.runs.sweep_spec import sweep_metadata

    spec = tomllib.loads((ROOT / "analyses" / "demo_quick.toml").read_text())
    spec.pop("analysis")
    path.mkdir()
    (path / "sweep.json").write_text(json.dumps(spec))
    sweep_metadata(expand_cells(spec)).to_parquet(path / "cells.parquet", index=False)
    (path / "analysis").mkdir()
    acc = pd.DataFrame({"run": ["r"], "step": [1], "task": ["copy"], "length": [1],
                        "accuracy": [0.5]})  # fmt: skip
    acc.to_parquet(path / "analysis" / "accuracy.parquet", index=False)
    acc.to_parquet(path / "analysis" / "scores.parquet", index=False)
    return path


CORRUPT_SWEEP = [
    ("analyze", "cells.parquet", b"PAR1 not a table", "corrupt table"),
    ("analyze", "cells.parquet", "wrong columns", "no column(s) run, group"),
    ("analyze", "cells.parquet", "a path as a run", "a 'run' is not a run name"),
    ("analyze", "cells.parquet", b"", "corrupt table"),
    ("analyze", "analysis.json", b"[1, 2", "malformed JSON"),
    ("analyze", "analysis.json", b'{"k": "many"}', "corrupt"),
    ("report", "analysis/scores.parquet", b"garbage", "corrupt table"),
    ("report", "analysis/accuracy.parquet", b"PAR1\x00\x00PAR1", "corrupt table"),
    ("report", "cells.parquet", "wrong columns", "no column(s)"),
]


@pytest.mark.parametrize(
    "command, target, content, needle", CORRUPT_SWEEP, ids=[str(i) for i in range(9)]
)
def test_corrupt_sweep_tables(command, target, content, needle, tmp_path: Path, capsys):
    import pandas as pd

    sweep = _fake_sweep(tmp_path / "sweep")
    path = sweep / target
    if content == "wrong columns":
        pd.DataFrame({"a": [1]}).to_parquet(path)
    elif content == "a path as a run":
        cells = pd.read_parquet(path)
        cells.loc[0, "run"] = "../../elsewhere"
        cells.to_parquet(path, index=False)
    else:
        path.write_bytes(content)
    before = _listing(sweep)
    assert main([command, str(sweep), "--quiet"]) == 2
    _one_line_error(capsys, needle)
    assert _listing(sweep) == before


def test_commands_on_a_zoo_entry_never_write_inside_it(tmp_path: Path, monkeypatch, capsys):
    """``interp eval``/``overlap``/``report`` on the shipped entry write to its output folder
    (default ``runs/zoo_outputs/NAME`` under the current directory, or ``--out``)."""
    entry = ROOT / "models" / "zoo" / "arith_a"
    before = _listing(entry)
    monkeypatch.chdir(tmp_path)
    fast = ["--examples", "4", "--lengths", "1:2", "--quiet"]
    assert main(["eval", str(entry), *fast]) == 0
    default = tmp_path / "runs" / "zoo_outputs" / "arith_a"
    step = json.loads((entry / "zoo.json").read_text())["steps"][-1]
    assert (default / "eval" / f"step_{step:06d}.parquet").is_file()
    assert main(["eval", str(entry), *fast]) == 0  # the output folder is reused
    assert main(["eval", str(entry), *fast, "--out", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine" / "eval" / f"step_{step:06d}.parquet").is_file()
    assert main(["report", str(entry), "--quiet"]) == 0
    assert (default / "report.html").is_file()
    assert _listing(entry) == before
    capsys.readouterr()
    # An output folder belongs to one source; another entry's outputs are refused, not mixed.
    other = ROOT / "models" / "zoo" / "arith_a_baseline"
    assert main(["eval", str(other), *fast, "--out", str(default)]) == 2
    _one_line_error(capsys, "holds the outputs of")
    # ... and a source that changed since (a re-exported entry) is refused too.
    copy = tmp_path / "entry_copy"
    shutil.copytree(entry, copy)
    assert main(["eval", str(copy), *fast, "--out", str(tmp_path / "of_copy")]) == 0
    cfg = json.loads((copy / "config.json").read_text())
    cfg["seed"] = 5
    (copy / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    assert main(["eval", str(copy), *fast, "--out", str(tmp_path / "of_copy")]) == 2
    _one_line_error(capsys, "an older version of")


def test_kinds_of_old_directories_are_recognised(work):
    from interp.runs.dir_kinds import RUN_KIND, SWEEP_KIND, ZOO_KIND, dir_kind

    assert dir_kind(work["run"]) == RUN_KIND
    assert dir_kind(work["fake_sweep"]) == SWEEP_KIND
    zoo_root = ROOT / "models" / "zoo"
    entries = [p for p in zoo_root.iterdir() if (p / "config.json").is_file()]
    assert entries and all(dir_kind(p) == ZOO_KIND for p in entries)
    assert dir_kind(zoo_root) is None and dir_kind(work["dir"] / "nope") is None


# --------------------------------------------------------------------------------------------
# Fuzz: random wrong-type / out-of-range values never escape as anything but InterpError.

JUNK: list[Any] = [
    -(2**63), -1, 0, 1, 2, 7, 2**32, 2**63, 10**30, -0.0, 0.5, 1.5, 1e-300, 1e300,
    math.nan, math.inf, -math.inf, True, False, "", "x", "tiny", "rope", [], [1], [1, 2],
    [1, 2, 3], [-1, 5], [[1, 2]], ["a"], {}, {"a": 1}, {"preset": "tiny"}, None,
]  # fmt: skip


def _fields(d: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every (section, key) of a spec dict, plus top-level keys."""
    out: list[tuple[Any, ...]] = [(k,) for k in d]
    for k, v in d.items():
        if isinstance(v, dict):
            out += [(k, kk) for kk in v]
    return out


def _mutate(d: dict[str, Any], rng: random.Random, extra_keys: list[tuple[Any, ...]]) -> None:
    path = rng.choice(_fields(d) + extra_keys)
    target = d
    for p in path[:-1]:
        if not isinstance(target.get(p), dict):
            target[p] = {}
        target = target[p]
    target[path[-1]] = rng.choice(JUNK)


def _assert_clean(fn, *args) -> str:
    try:
        fn(*args)
    except InterpError as e:
        msg = str(e)
        assert msg and "\n" not in msg  # printable as one line
        return "refused"
    return "accepted"


TRAIN_EXTRA = [("optim", k) for k in ("lr", "betas", "warmup_steps", "grad_clip")] + [
    ("train", k) for k in ("threads", "log_every", "checkpoint_steps", "n_buckets")
] + [("model", k) for k in ("d_mlp", "rotary_base", "n_ctx", "positional", "init_seed", "norm")] + [
    ("eval", k) for k in ("max_length", "every", "seed", "final_examples")
]  # fmt: skip


def test_fuzz_train_spec_values():
    rng = random.Random(1234)
    outcomes = []
    for _ in range(1500):
        d = json.loads(json.dumps(TINY))
        for _ in range(rng.randint(1, 3)):
            _mutate(d, rng, TRAIN_EXTRA)
        outcomes.append(_assert_clean(TrainSpec.from_dict, d))
    assert "refused" in outcomes  # the fuzzer did hit the validators


def test_fuzz_sweep_and_analysis_values():
    rng = random.Random(99)
    base = tomllib.loads((ROOT / "analyses" / "demo_quick.toml").read_text())
    extra = [("positional",), ("eval_margin",), ("baseline",), ("base", "model")]
    outcomes = []
    for _ in range(500):
        d = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 2)):
            _mutate(d, rng, extra)
        analysis = d.pop("analysis", None)
        outcomes.append(_assert_clean(expand, d))
        outcomes.append(_assert_clean(AnalysisConfig.from_dict, analysis))
    assert "refused" in outcomes


# Fuzz the inputs of zoo, analyze, report and finetune (issue 26): the files they read, damaged
# at random, never escape as anything but InterpError (or, for the zoo listing, a row that
# names the problem).


def _damage_bytes(data: bytes, rng: random.Random) -> bytes:
    how = rng.choice(["truncate", "flip", "junk", "empty", "append"])
    if how == "truncate":
        return data[: rng.randrange(len(data))]
    if how == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if how == "junk":
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return b"" if how == "empty" else data + b"\0" * rng.randint(1, 16)


def test_fuzz_zoo_entry_files(tmp_path: Path):
    from interp.zoo import registry as zoo

    rng = random.Random(26)
    root = tmp_path / "zoo"
    shutil.copytree(ROOT / "models" / "zoo" / "string_b", root / "string_b")
    entry = root / "string_b"
    files = ("zoo.json", "config.json", "accuracy.parquet", "checkpoints/index.json")
    originals = {f: (entry / f).read_bytes() for f in files}
    problems = 0
    for _ in range(300):
        target = rng.choice(sorted(originals))
        data = originals[target]
        if target.endswith(".json") and rng.random() < 0.6:  # well-formed JSON, wrong values
            d = json.loads(data)
            if isinstance(d, dict) and rng.random() < 0.8:
                _mutate(d, rng, [])
            else:
                d = rng.choice(JUNK)
            new = json.dumps(d).encode()
        else:
            new = _damage_bytes(data, rng)
        (entry / target).write_bytes(new)
        row = zoo.list_models(root).iloc[0]  # never raises
        assert row["name"] == "string_b" and isinstance(row["problem"], str)
        assert "\n" not in row["problem"]
        problems += bool(row["problem"])
        (entry / target).write_bytes(data)
    assert problems  # the fuzzer did reach the damaged-entry path
    names = [j for j in JUNK if not isinstance(j, str)] + ["../x", "/etc", "a/../b", "..", "X"]
    for name in names:
        assert _assert_clean(zoo.check_name, name) == "refused"


def test_fuzz_analyze_and_report_inputs(tmp_path: Path):
    """``cells.parquet`` and ``analysis.json`` (what ``interp analyze SWEEP`` reads first) and
    the analysis tables (what ``interp report`` reads), damaged at random."""
    import pandas as pd

    from interp.report.html_report import load_tables
    from interp.runs.analysis import read_config
    from interp.runs.dirs import SweepDir

    rng = random.Random(2026)
    sweep = _fake_sweep(tmp_path / "sweep")
    (sweep / "analysis.json").write_text(json.dumps(AnalysisConfig().to_dict()))
    cells = pd.read_parquet(sweep / "cells.parquet")
    originals = {f: (sweep / f).read_bytes() for f in ("cells.parquet", "analysis.json",
                 "analysis/accuracy.parquet", "analysis/scores.parquet")}  # fmt: skip
    outcomes = []
    for _ in range(300):
        target = rng.choice(sorted(originals))
        path = sweep / target
        if target == "cells.parquet" and rng.random() < 0.5:  # a readable table, wrong content
            df = cells.drop(columns=rng.sample(list(cells.columns), rng.randint(0, 3)))
            if rng.random() < 0.5:  # (mixed types: pyarrow may refuse to write them at all)
                junk = [rng.choice(["..", "a/b", "", "ok", "x/../y"]) for _ in range(len(df))]
                df["run"] = junk if rng.random() < 0.7 else [rng.random() for _ in junk]
            df.to_parquet(path)
        elif target == "analysis.json" and rng.random() < 0.6:
            d = AnalysisConfig().to_dict()
            _mutate(d, rng, [])
            path.write_text(json.dumps(d))
        else:
            path.write_bytes(_damage_bytes(originals[target], rng))
        outcomes.append(_assert_clean(lambda: SweepDir(sweep).cells()))
        outcomes.append(_assert_clean(read_config, sweep))
        outcomes.append(_assert_clean(load_tables, sweep))
        path.write_bytes(originals[target])
    assert "refused" in outcomes and "accepted" in outcomes


def test_fuzz_finetune_inputs(tiny_llama, tmp_path: Path):
    """Experiment specs and Hugging Face ``config.json`` values, wrong at random."""
    pytest.importorskip("transformers")
    from interp.cli.finetune import expand as expand_experiment
    from interp.models.pretrained import model_config_dict

    rng = random.Random(13)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_llama[0], ckpt)
    base = {"name": "exp", "main": "reverse_add", "checkpoints": [str(ckpt)],
            "tasks": [{"name": "reverse_add", "lengths": [1, 2]}],
            "train": {"steps": 2, "batch_size": 4}, "eval": {"max_length": 3}}  # fmt: skip
    extra = [("pretraining_steps",), ("model", "n_ctx"), ("model", "d_model"), ("optim", "lr")]
    outcomes = []
    for _ in range(120):
        d = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 2)):
            _mutate(d, rng, extra)
        outcomes.append(_assert_clean(expand_experiment, d))
    cfg_path = ckpt / "config.json"
    original = cfg_path.read_text()
    for _ in range(120):
        d = json.loads(original)
        for _ in range(rng.randint(1, 2)):
            d[rng.choice(sorted(d))] = rng.choice(JUNK)
        cfg_path.write_text(json.dumps(d))
        outcomes.append(_assert_clean(model_config_dict, ckpt))
    cfg_path.write_text(original)
    assert "refused" in outcomes and "accepted" in outcomes
