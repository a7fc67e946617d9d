"""``benchmarks/gpu_check.sh``, the prepared device check, kept from rotting on a CPU machine.

On a GPU it runs every stage at paper scale; here ``--device cpu`` runs the same checks at tiny
scale (CI has no GPU), and ``--device cuda`` on a machine without one must fail at once, loudly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
CHECKS = {
    "install", "train", "resume", "eval", "score", "analyze", "head_sets", "dose",
    "interchange", "cuda_index", "demo", "throughput",
}  # fmt: skip


def _run(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    # This interpreter as it is (no venv is made) and this checkout's package.
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_gpu_check_passes_on_the_cpu(tmp_path: Path) -> None:
    run = _run("--device", "cpu", "--out", str(tmp_path))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    lines = [
        ln.split() for ln in run.stdout.splitlines() if ln.startswith(("PASS", "FAIL", "SKIP"))
    ]
    assert {ln[1] for ln in lines} == CHECKS, out
    # no cuda:N here; the demo runs in the suite itself on the CPU
    assert [ln[1] for ln in lines if ln[0] != "PASS"] == ["cuda_index", "demo"], out
    assert "end to end, prefetch on" in run.stdout and "tokens/s" in run.stdout, out
    assert "0 differ" in (tmp_path / "resume.log").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_gpu_check_fails_without_the_device(tmp_path: Path) -> None:
    run = _run("--device", "cuda", "--out", str(tmp_path), timeout=300)
    assert run.returncode == 1
    assert run.stdout.startswith("FAIL install"), run.stdout
    assert "CUDA is not available" in run.stdout  # the log's tail, printed under the line


def test_gpu_check_rejects_bad_arguments(tmp_path: Path) -> None:
    run = _run("--device", "tpu", "--out", str(tmp_path), timeout=60)
    assert run.returncode == 2 and "--device must be" in run.stderr
    run = _run("--fast", timeout=60)
    assert run.returncode == 2 and "unknown argument" in run.stderr
