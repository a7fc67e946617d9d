"""The training loop: learning, metrics, checkpoints, atomic writes, and bit-exact resume."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import interp.runs.train as train_mod
from interp.core.errors import InterpError
from interp.core.io import read_json
from interp.models.checkpoint import CKPT_DIR, list_checkpoints, load_tensors
from interp.runs.dirs import CONFIG, DONE, METRICS
from interp.runs.loader import load_run, read_metrics, read_run_spec, run_checkpoints
from interp.runs.spec import TrainSpec
from interp.runs.train import is_done, train


def _spec(**train: Any) -> TrainSpec:
    """A two-task tiny run: 12 steps, checkpoints every 4, evaluation every 2."""
    return TrainSpec.from_dict(
        {
            "name": "tiny",
            "main": "copy",
            "seed": 1,
            "tasks": [
                {"name": "copy", "lengths": [1, 3]},
                {"name": "reverse", "lengths": [1, 5]},
            ],
            "model": {"preset": "tiny"},
            "optim": {"lr": 1e-2, "warmup_steps": 3, "decay_fraction": 0.5},
            "train": {
                "steps": 12,
                "batch_size": 8,
                "n_buckets": 2,
                "checkpoint_every": 4,
                "log_every": 1,
                "threads": 1,
                **train,
            },
            "eval": {"max_length": 4, "every": 2, "examples": 4},
        }
    )


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """One uninterrupted run, shared by the tests that compare against it."""
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    model = train(_spec(), run_dir, progress=False)
    return run_dir, {k: v.clone() for k, v in model.state_dict().items()}


def test_loss_decreases(tmp_path: Path) -> None:
    spec = _spec(steps=40, batch_size=32, n_buckets=1, checkpoint_every=0)
    spec.eval.every = 0
    train(spec, tmp_path, progress=False)
    loss = read_metrics(tmp_path).query("kind == 'loss'").sort_values("step")["value"].to_numpy()
    assert len(loss) == 40
    assert loss[0] == pytest.approx(5.0, abs=0.5)  # ~ln(149): an untrained model guesses
    assert loss[-10:].mean() < 0.75 * loss[:5].mean()


def test_run_directory_layout(reference: tuple[Path, dict]) -> None:
    run_dir, _ = reference
    spec = _spec()
    assert (run_dir / CONFIG).is_file() and read_json(run_dir / CONFIG) == spec.to_dict()
    assert read_run_spec(run_dir).to_dict() == spec.to_dict()
    assert is_done(run_dir) and (run_dir / DONE).read_text() == "12\n"
    assert list_checkpoints(run_dir) == spec.train.save_steps() == [4, 8, 12]
    assert run_checkpoints(run_dir) == [4, 8, 12]
    # Atomic writes leave no temporary files behind...
    assert [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")] == []
    # ...and give files the mode open() would (mkstemp's private 0600 must not leak through).
    mask = os.umask(0)
    os.umask(mask)
    for p in run_dir.rglob("*"):
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask, p.name


def test_checkpoints_at_requested_steps(tmp_path: Path) -> None:
    spec = _spec(steps=7, checkpoint_every=0, checkpoint_steps=[2, 5], log_every=7)
    spec.eval.every = 0
    train(spec, tmp_path, progress=False)
    assert list_checkpoints(tmp_path) == [2, 5, 7]
    names = sorted(p.name for p in (tmp_path / CKPT_DIR).iterdir())
    assert names == [
        "index.json",
        "step_000002.safetensors",
        "step_000005.safetensors",
        "step_000007.safetensors",
    ]
    acc = read_metrics(tmp_path).query("kind == 'accuracy'")
    assert sorted(acc["step"].unique()) == [2, 5, 7]  # evaluation at every checkpoint


def test_metrics_schema(reference: tuple[Path, dict]) -> None:
    run_dir, _ = reference
    df = pd.read_parquet(run_dir / METRICS)
    assert list(df.columns) == ["step", "kind", "task", "length", "value"]
    assert df["step"].dtype == "int64" and df["length"].dtype == "int64"
    assert df["value"].dtype == "float64"
    assert pd.api.types.is_string_dtype(df["kind"]) and pd.api.types.is_string_dtype(df["task"])
    assert set(df["kind"]) == {"loss", "accuracy"}
    loss = df[df["kind"] == "loss"]
    assert loss["step"].tolist() == list(range(1, 13))
    assert (loss["task"] == "").all() and (loss["length"] == 0).all()
    assert (loss["value"] > 0).all()
    acc = df[df["kind"] == "accuracy"]
    assert sorted(acc["step"].unique()) == [2, 4, 6, 8, 10, 12]
    per_step = acc[acc["step"] == 12]
    assert sorted(zip(per_step["task"], per_step["length"], strict=True)) == sorted(
        [("copy", L) for L in range(1, 5)] + [("reverse", L) for L in range(1, 5)]
    )
    assert acc["value"].between(0, 1).all()
    assert not df.duplicated(subset=["step", "kind", "task", "length"]).any()


def test_load_run_returns_final_weights(reference: tuple[Path, dict]) -> None:
    run_dir, weights = reference
    loaded = load_run(run_dir)
    assert loaded.step == 12 and not loaded.model.training
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert load_run(run_dir, 4).step == 4
    with pytest.raises(InterpError, match="available steps: 4, 8, 12"):
        load_run(run_dir, 5)


def test_name_does_not_change_training(reference: tuple[Path, dict], tmp_path: Path) -> None:
    """A run's name is a label: the same spec under another name trains bit-identical weights.

    (The zoo's r4_both_s0 and r4_both_s4 are the runs trained as the recipe probes
    probe_rms344_s0/s4, whose specs differ from the zoo's only in the name.)
    """
    _, ref_weights = reference
    renamed = TrainSpec.from_dict({**_spec().to_dict(), "name": "another_name"})
    model = train(renamed, tmp_path, progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref_weights[k]), k


@pytest.mark.parametrize("stop_after", [4, 6, 8])
def test_resume_is_bit_exact(reference: tuple[Path, dict], tmp_path: Path, stop_after: int) -> None:
    # 4 and 8 are checkpoint steps; 6 is a "kill" between checkpoints, redone from step 4.
    ref_dir, ref_weights = reference
    partial = train(_spec(), tmp_path, progress=False, stop_after=stop_after)
    assert not is_done(tmp_path)
    assert list_checkpoints(tmp_path) == [s for s in (4, 8) if s <= stop_after]
    assert not torch.equal(partial.W_E, ref_weights["embed.W_E"])  # it did stop early
    resumed = train(_spec(), tmp_path, progress=False)
    assert is_done(tmp_path)
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, ref_weights[k]), k
    pd.testing.assert_frame_equal(read_metrics(tmp_path), read_metrics(ref_dir))
    # Every checkpoint, optimizer state included, matches the uninterrupted run's (the files'
    # bytes may differ: safetensors does not fix the order of its metadata keys).
    assert list_checkpoints(tmp_path) == list_checkpoints(ref_dir)
    for step in list_checkpoints(ref_dir):
        got, _ = load_tensors(tmp_path, step)
        want, _ = load_tensors(ref_dir, step)
        trained = sorted(k for k in want if k.startswith(("model.", "optim.")))
        assert sorted(k for k in got if k.startswith(("model.", "optim."))) == trained
        for k in trained:
            assert torch.equal(got[k], want[k]), (step, k)


def test_kill_between_metrics_and_checkpoint_loses_nothing(
    reference: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref_dir, ref_weights = reference
    real = train_mod.write_parquet
    calls = {"n": 0}

    def dies_second_time(path: Path, df: pd.DataFrame) -> Path:
        calls["n"] += 1
        if calls["n"] == 2:  # the write at step 8
            raise KeyboardInterrupt
        return real(path, df)

    monkeypatch.setattr(train_mod, "write_parquet", dies_second_time)
    with pytest.raises(KeyboardInterrupt):
        train(_spec(), tmp_path, progress=False)
    monkeypatch.setattr(train_mod, "write_parquet", real)
    assert list_checkpoints(tmp_path) == [4]  # killed before checkpoint 8 was written
    resumed = train(_spec(), tmp_path, progress=False)
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, ref_weights[k]), k
    pd.testing.assert_frame_equal(read_metrics(tmp_path), read_metrics(ref_dir))


def test_finished_run_is_not_retrained(tmp_path: Path) -> None:
    train(_spec(steps=4, checkpoint_every=2), tmp_path, progress=False)
    before = _snapshot(tmp_path)
    model = train(_spec(steps=4, checkpoint_every=2), tmp_path, progress=False)
    assert _snapshot(tmp_path) == before
    _assert_same_weights(model, load_run(tmp_path).model)


def test_resume_with_different_config_refused(tmp_path: Path) -> None:
    train(_spec(), tmp_path, progress=False, stop_after=4)
    before = _snapshot(tmp_path)
    other = _spec()
    other.optim.lr = 5e-3
    with pytest.raises(InterpError, match="different config"):
        train(other, tmp_path, progress=False)
    with pytest.raises(InterpError, match="different config"):
        train(_spec(steps=20), tmp_path, progress=False)
    assert _snapshot(tmp_path) == before


def test_existing_checkpoints_without_resume_refused(tmp_path: Path) -> None:
    train(_spec(), tmp_path, progress=False, stop_after=4)
    before = _snapshot(tmp_path)
    with pytest.raises(InterpError, match="already has checkpoints"):
        train(_spec(), tmp_path, resume=False, progress=False)
    assert _snapshot(tmp_path) == before


def test_reading_a_non_run(tmp_path: Path) -> None:
    with pytest.raises(InterpError, match="not found"):
        load_run(tmp_path / "nothing")
    with pytest.raises(InterpError, match="not a run directory"):
        load_run(tmp_path)
    with pytest.raises(InterpError, match="no metrics.parquet"):
        read_metrics(tmp_path)


def test_a_diverged_run_stops_with_one_line_and_no_checkpoint_past_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NaN loss (as torch.compile + bf16 produced on one CPU, 2026-12-06) ends the run with
    an InterpError before the next checkpoint or metric row, and the run is not marked done,
    so a queue reports it instead of shipping a model whose every answer is wrong."""
    real = train_mod.train_step

    def nan_from_step_6(model, optimizer, spec, batch, step, forward=None):  # noqa: ANN001, ANN202
        loss = real(model, optimizer, spec, batch, step, forward=forward)
        return loss * float("nan") if step >= 5 else loss

    monkeypatch.setattr(train_mod, "train_step", nan_from_step_6)
    with pytest.raises(
        InterpError, match=r"^training diverged: loss is nan at step 6 \(spec tiny\)"
    ):
        train(_spec(), tmp_path / "run", progress=False)
    assert list_checkpoints(tmp_path / "run") == [4]
    assert not is_done(tmp_path / "run")
    metrics = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert metrics["step"].max() == 4 and metrics["value"].notna().all()
