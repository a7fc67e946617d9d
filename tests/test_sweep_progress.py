"""Progress a person can read: each running sweep cell reports step, loss and ETA."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from tinyscale import to_toml

from interp.cli.commands import main
from interp.runs.dirs import STATUS
from interp.runs.spec import TrainSpec
from interp.runs.sweep_monitor import CellMonitor
from interp.runs.train import train

TINY = {
    "name": "progress",
    "main": "reverse_add",
    "tasks": [{"name": "reverse_add", "lengths": [1, 2]}],
    "model": {"preset": "tiny"},
    "train": {"steps": 5, "batch_size": 8, "log_every": 1},
    "eval": {"examples": 4},
}


def test_training_keeps_a_status_file(tmp_path: Path):
    train(TrainSpec.from_dict(TINY), tmp_path / "run", progress=False, status=True)
    st = json.loads((tmp_path / "run" / STATUS).read_text())
    assert st["step"] == st["total"] == 5
    assert st["loss"] > 0 and st["sec_per_step"] > 0
    train(TrainSpec.from_dict(TINY), tmp_path / "plain", progress=False)
    assert not (tmp_path / "plain" / STATUS).exists()


def _status(run_dir: Path, step: int, total: int = 100) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    st = {"step": step, "total": total, "loss": 0.25, "sec_per_step": 2.0, "time": time.time()}
    (run_dir / STATUS).write_text(json.dumps(st))


def test_monitor_reports_running_cells_only(tmp_path: Path, capsys):
    dirs = {name: tmp_path / name for name in ("running", "finished", "pending", "collected")}
    _status(dirs["running"], 40)
    _status(dirs["finished"], 100)
    _status(dirs["collected"], 10)
    monitor = CellMonitor(dirs, interval=0.02, log_every=0.0)
    monitor.done("collected")  # its result came back: no longer shown
    assert set(monitor.statuses()) == {"running"}
    # 60 steps left at 2 s each: two minutes.
    line = monitor.line(monitor.statuses()["running"])
    assert line == "step 40/100 (40%), loss 0.2500, ETA 02:00"
    with monitor:  # not a terminal here: plain lines in the log
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert "running: step 40/100 (40%), loss 0.2500, ETA 02:00" in err
    assert "finished" not in err and "pending" not in err and "collected" not in err


def test_quiet_sweep_and_demo_print_no_bars(tmp_path: Path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(
        to_toml({"groups": ["arith_a"], "seeds": [0], "lengths": [[2, 3]], "presets": ["tiny"],
                 "base": {"train": {"steps": 3, "batch_size": 8}, "eval": {"examples": 4}}})
    )  # fmt: skip
    argv = ["sweep", str(spec), "--out", str(tmp_path / "o"), "--executor", "serial", "--quiet"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="drives a pseudo-terminal")
def test_running_cell_shows_step_loss_and_eta_on_a_terminal(tmp_path: Path):
    """What a person at a terminal sees during a sweep: a live line per running cell."""
    spec = tmp_path / "s.toml"
    spec.write_text(
        to_toml({"groups": ["arith_a"], "seeds": [0], "lengths": [[2, 3]], "presets": ["tiny"],
                 "base": {"train": {"steps": 300, "batch_size": 8}, "eval": {"examples": 4}}})
    )  # fmt: skip
    master, slave = pty.openpty()
    # tqdm sizes bars to the terminal; a fresh pty is 0 columns wide, which hides them.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    cmd = [sys.executable, "-m", "interp.cli", "sweep", str(spec), "--out", str(tmp_path / "o"),
           "--executor", "serial"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=300) == 0
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out.decode(errors="replace"))
    pattern = r"arith_a-tiny-rope-m2-a3-s0: step (\d+)/300 \(\d+%\), loss [\d.]+, ETA \d\d:\d\d"
    lines = re.findall(pattern, text)
    assert lines, text[-2000:]
