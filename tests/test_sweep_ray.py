"""The Ray executor gives exactly the local executor's results (starts a local Ray instance)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from interp.runs.dirs import FAILURES, RESULTS, RUNS
from interp.runs.sweep import run_sweep

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

SPEC = {
    "name": "ray-vs-local",
    "groups": ["arith_b", "control_1"],
    "seeds": [0],
    "lengths": [[2, 3]],
    "presets": ["tiny"],
    "base": {
        "train": {"steps": 8, "batch_size": 16, "checkpoint_every": 4},
        "eval": {"examples": 8},
        "optim": {"warmup_steps": 2},
    },
}
BAD = "control_1-tiny-rope-m2-a3-s0"


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _poison(out: Path) -> None:
    """Make one cell fail the same way under both executors."""
    (out / RUNS / BAD).mkdir(parents=True)
    (out / RUNS / BAD / "config.json").write_text(json.dumps({"name": "another run"}))


def test_ray_and_local_executors_agree(ray_session, tmp_path: Path) -> None:
    out_ray, out_local = tmp_path / "ray", tmp_path / "local"
    _poison(out_ray)
    _poison(out_local)
    df_ray = run_sweep(SPEC, out_ray, executor="ray", progress=False)
    # The sweep reused the caller's Ray session and left it running.
    assert ray.is_initialized()
    df_local = run_sweep(SPEC, out_local, executor="local", workers=2, progress=False)

    assert len(df_ray) > 0 and set(df_ray["run"]) == {"arith_b-tiny-rope-m2-a3-s0"}
    assert set(df_ray["step"]) == {4, 8}
    # Same cells, same checkpoints, bit-identical accuracies: a cell's result does not depend
    # on where it ran.
    pd.testing.assert_frame_equal(df_ray, df_local)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out_ray / RESULTS), pd.read_parquet(out_local / RESULTS)
    )
    f_ray = json.loads((out_ray / FAILURES).read_text())
    f_local = json.loads((out_local / FAILURES).read_text())
    assert [f["run"] for f in f_ray] == [f["run"] for f in f_local] == [BAD]
    assert all("different config" in f[0]["error"] for f in (f_ray, f_local))
