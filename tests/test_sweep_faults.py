"""Sweeps under faults: failed cells make the command fail, a killed parent takes its workers
with it, and temporary files of killed writers are cleaned up on the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tinyscale import shrink_file

from interp.cli.commands import main
from interp.core.io import write_json
from interp.runs.sweep_spec import expand, load_sweep_spec

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """analyses/demo_quick.toml at the tests' tiny scale: a transfer cell and its baseline."""
    return shrink_file(ROOT / "analyses" / "demo_quick.toml", tmp_path / "quick.toml")


def _poison(out: Path, spec: Path, which: slice) -> list[str]:
    """Make cells fail: their run directories already hold a different run."""
    import tomllib

    d = tomllib.loads(spec.read_text())
    d.pop("analysis", None)
    cells = [c.run for c in expand(load_sweep_spec(d))][which]
    for run in cells:
        write_json(out / "runs" / run / "config.json", {"name": "someone else's run"})
    return cells


def test_all_cells_failed_exits_nonzero(spec: Path, tmp_path: Path, capsys):
    out = tmp_path / "sweep"
    _poison(out, spec, slice(None))
    argv = ["sweep", str(spec), "--out", str(out), "--executor", "serial", "--quiet", "--analyze"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "2 of 2 cells failed" in captured.err
    assert "sweep finished" not in captured.out
    assert not (out / "report.html").exists()  # nothing to analyse


def test_some_cells_failed_exits_nonzero_after_analysing_the_rest(spec, tmp_path: Path, capsys):
    out = tmp_path / "sweep"
    _poison(out, spec, slice(0, 1))
    argv = ["sweep", str(spec), "--out", str(out), "--executor", "serial", "--quiet", "--analyze"]
    assert main(argv) == 1
    assert "1 of 2 cells failed" in capsys.readouterr().err
    assert (out / "report.html").is_file()


def test_stale_temp_files_are_removed_on_the_next_start(spec: Path, tmp_path: Path):
    out = tmp_path / "sweep"
    argv = ["sweep", str(spec), "--out", str(out), "--executor", "serial", "--quiet"]
    assert main(argv) == 0
    run = next(p for p in (out / "runs").iterdir() if not p.name.startswith("baseline"))
    (run / "DONE").unlink()  # so that the run is started again
    stale = [
        out / ".results.parquet.k1ll3d.tmp",
        run / ".config.json.k1ll3d.tmp",
        run / "checkpoints" / ".step_000004.safetensors.k1ll3d.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half a file")
    assert main(argv) == 0
    assert not [p for p in stale if p.exists()]
    assert (run / "DONE").is_file()


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killing_the_parent_ends_its_workers(tmp_path: Path):
    import tomllib

    from tinyscale import to_toml

    d = tomllib.loads((ROOT / "analyses" / "demo_quick.toml").read_text())
    d["base"]["train"].update(steps=100_000, checkpoint_every=0)  # runs until killed
    spec = tmp_path / "long.toml"
    spec.write_text(to_toml(d))
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "interp.cli", "sweep", str(spec), "--out", str(out),
           "--workers", "2", "--quiet"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        # Workers are training once both cells hold their run directory's lock.
        while len(list(out.glob("runs/*/.lock"))) < 2:
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.2)
        workers = _children(parent.pid)
        assert workers
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived their parent"
