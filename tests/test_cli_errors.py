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
from tinyscale import to_toml

from interp.analysis import AnalysisConfig
from interp.cli import main
from interp.errors import InterpError
from interp.spec import TrainSpec
from interp.sweep import expand

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
    return {"dir": d, "spec": spec, "run": run, "file": afile,
            "sweep": ROOT / "analyses" / "demo_quick.toml"}  # fmt: skip


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
]  # fmt: skip


@pytest.mark.parametrize("argv, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument(argv, needle, work, tmp_path: Path, capsys):
    args = _argv(argv, work, tmp_path)
    try:
        rc = main(args)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        rc = e.code
    assert rc == 2
    _one_line_error(capsys, needle)
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


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
