"""Device selection: parsing, ``auto``, checkpoints across devices, autocast, Ray GPU requests.

CI has no GPU. The CPU tests check the logic (what ``auto`` picks, what the loader is asked to
do, what Ray is asked for) without touching hardware, by faking ``torch.cuda`` answers where
needed; the tests that need a real GPU are marked and skip with the reason.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import interp.models.checkpoint as ckpt_mod
from interp.cli.commands import main
from interp.core import device as dv
from interp.core.errors import InterpError
from interp.core.io import read_json, write_json
from interp.models.checkpoint import list_checkpoints, load_tensors
from interp.runs.dirs import CONFIG
from interp.runs.executors import RayExecutor
from interp.runs.loader import load_run
from interp.runs.spec import TrainSpec, run_identity
from interp.runs.sweep import run_sweep
from interp.runs.train import is_done, train
from interp.scoring.heads import score_heads

ROOT = Path(__file__).resolve().parent.parent
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


def _spec(**train_kw: Any) -> TrainSpec:
    """A tiny two-task run: 8 steps, checkpoints every 4."""
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
            "optim": {"lr": 1e-2, "warmup_steps": 3},
            "train": {
                "steps": 8,
                "batch_size": 8,
                "n_buckets": 2,
                "checkpoint_every": 4,
                "threads": 1,
                **train_kw,
            },
            "eval": {"max_length": 4, "examples": 4},
        }
    )


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------------------------
# Parsing and resolution


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (None, "auto"),
        ("", "auto"),
        ("auto", "auto"),
        ("cpu", "cpu"),
        ("CUDA", "cuda"),
        ("cuda:0", "cuda:0"),
        ("cuda:3", "cuda:3"),
        (" mps ", "mps"),
    ],
)
def test_parse_device_accepts(text: str | None, want: str) -> None:
    assert dv.parse_device(text) == want


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "cuda0", "tpu", "cpu:0", 3])
def test_parse_device_rejects(text: Any) -> None:
    with pytest.raises(InterpError, match="unknown device"):
        dv.parse_device(text)


def test_auto_is_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dv.resolve_device("auto") == torch.device("cpu")
    assert dv.resolve_device(None) == torch.device("cpu")


@cpu_only
def test_auto_is_cpu_on_this_machine() -> None:
    assert dv.resolve_device("auto").type == "cpu"


def test_auto_prefers_cuda_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dv.resolve_device("auto") == torch.device("cuda", 0)


def test_missing_devices_are_errors_not_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InterpError, match="CUDA is not available"):
        dv.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert dv.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(InterpError, match="has 2 CUDA GPU"):
        dv.resolve_device("cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(InterpError, match="MPS is not available"):
        dv.resolve_device("mps")


def test_resolve_accepts_a_torch_device() -> None:
    assert dv.resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_default_batch_size_is_larger_on_gpu() -> None:
    assert dv.default_batch_size(torch.device("cpu")) == dv.CPU_BATCH
    assert dv.default_batch_size(torch.device("cuda", 0)) == dv.GPU_BATCH > dv.CPU_BATCH


# --------------------------------------------------------------------------------------------
# Autocast and determinism


def test_cpu_autocast_follows_the_bf16_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 autocast runs on a CPU with bfloat16 matrix instructions, and is refused (one
    line, no silent float32) on one without them; ``off`` is off everywhere."""
    cpu = torch.device("cpu")
    a = torch.randn(4, 4)
    monkeypatch.setattr(dv, "cpu_bf16_supported", lambda: True)
    assert dv.autocast_enabled(cpu, "bf16")
    with dv.autocast_context(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (a @ a).dtype == torch.bfloat16
    assert not dv.autocast_enabled(cpu, "off")
    with dv.autocast_context(cpu, "off"):
        assert (a @ a).dtype == torch.float32
    monkeypatch.setattr(dv, "cpu_bf16_supported", lambda: False)
    with pytest.raises(InterpError, match="no bfloat16 matrix instructions") as e:
        dv.autocast_enabled(cpu, "bf16")
    assert "\n" not in str(e.value)
    assert not dv.autocast_enabled(cpu, "off")


def test_cpu_bf16_probe_matches_the_kernel_flags() -> None:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    want = "avx512_bf16" in flags or "amx_bf16" in flags
    assert dv.cpu_bf16_supported() == want


def test_bf16_on_a_cpu_without_units_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dv, "cpu_bf16_supported", lambda: False)
    with pytest.raises(InterpError, match="autocast = 'bf16' cannot run here"):
        train(_spec(autocast="bf16"), tmp_path / "run", progress=False, device="cpu")
    assert not (tmp_path / "run").exists()


def test_autocast_needs_cuda_with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(dv, "cuda_bf16_supported", lambda: True)
    assert dv.autocast_enabled(gpu, "bf16")
    assert not dv.autocast_enabled(gpu, "off")
    monkeypatch.setattr(dv, "cuda_bf16_supported", lambda: False)
    assert not dv.autocast_enabled(gpu, "bf16")  # emulated bf16: float32 is faster
    with pytest.raises(InterpError, match="not supported on 'mps'"):
        dv.autocast_enabled(torch.device("mps"), "bf16")


def test_cuda_bf16_probe_ignores_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def probe(including_emulation: bool = True) -> bool:
        seen["emulation"] = including_emulation
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", probe)
    assert dv.cuda_bf16_supported() is False and seen == {"emulation": False}


def test_unknown_autocast_mode() -> None:
    with pytest.raises(InterpError, match="unknown autocast 'fp16'"):
        dv.autocast_enabled(torch.device("cpu"), "fp16")


def test_deterministic_is_a_no_op_on_cpu() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    with dv.deterministic(torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.are_deterministic_algorithms_enabled() == before


# --------------------------------------------------------------------------------------------
# Spec keys


def test_deterministic_on_cuda_is_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA (only the flags are set, so no GPU is needed) an operation without a
    deterministic kernel must raise, not warn; INTERP_DETERMINISTIC=warn downgrades it."""
    cuda = torch.device("cuda")
    before = torch.are_deterministic_algorithms_enabled()
    monkeypatch.delenv(dv.DETERMINISTIC_ENV, raising=False)
    with dv.deterministic(cuda):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before
    monkeypatch.setenv(dv.DETERMINISTIC_ENV, "warn")
    with dv.deterministic(cuda):
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before
    monkeypatch.setenv(dv.DETERMINISTIC_ENV, "sometimes")
    with pytest.raises(InterpError, match="INTERP_DETERMINISTIC"):
        with dv.deterministic(cuda):
            pass


def test_deterministic_warns_when_cuda_came_before_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `import interp` recorded (:mod:`interp.core.startup`) decides the warning: CUDA
    initialised first and no user setting -> the cuBLAS setting may have come too late."""
    from interp.core import startup

    monkeypatch.delenv(dv.DETERMINISTIC_ENV, raising=False)
    monkeypatch.setattr(startup, "CUDA_BEFORE_IMPORT", True)
    monkeypatch.setattr(startup, "CUBLAS_SET_BY_USER", False)
    with pytest.warns(RuntimeWarning, match="CUBLAS_WORKSPACE_CONFIG may have been set too late"):
        with dv.deterministic(torch.device("cuda")):
            pass
    monkeypatch.setattr(startup, "CUBLAS_SET_BY_USER", True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dv.deterministic(torch.device("cuda")):
            pass


def test_cublas_workspace_is_set_when_interp_is_imported() -> None:
    """A fresh interpreter: importing the package alone sets CUBLAS_WORKSPACE_CONFIG (before
    anything could have created a cuBLAS handle), and a user's own value is kept."""
    import os
    import subprocess

    code = "import os, interp; print(os.environ['CUBLAS_WORKSPACE_CONFIG'])"
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == ":4096:8", run.stderr
    env["CUBLAS_WORKSPACE_CONFIG"] = ":16:8"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == ":16:8", run.stderr


def test_model_keeps_the_full_device_in_its_config() -> None:
    """TransformerLens's ``model.to(torch.device("cuda", 1))`` records only ``"cuda"``, and its
    forward then moves the residual stream to ``cuda:0``. The factory keeps the index; shown
    with the CPU's own indexed spelling, which TransformerLens truncates the same way."""
    from interp.models.architecture import ModelConfig
    from interp.models.factory import build_model

    dev = torch.device("cpu", 0)
    model = build_model(ModelConfig(n_layers=1, n_heads=2, d_model=16), dev)
    assert model.cfg.device == "cpu:0"
    model.to(dev, print_details=False)  # TransformerLens's own move, for contrast
    assert model.cfg.device == "cpu"
    dv.place_model(model, dev)
    assert model.cfg.device == "cpu:0"
    assert model(torch.tensor([[1, 2, 3]], device=dev)).shape == (1, 3, model.cfg.d_vocab)


def test_local_executor_spreads_cells_over_gpus() -> None:
    from interp.runs.executors import gpu_slots

    gpus = ["0", "1", "2"]
    assert gpu_slots("auto", 1.0, gpus) == gpus
    assert gpu_slots("cuda", 0.5, gpus) == ["0", "1", "2", "0", "1", "2"]
    assert gpu_slots("cuda", 0.3, ["4", "7"]) == ["4", "7"] * 3  # floor(1 / 0.3) cells a GPU
    assert gpu_slots("cuda", 2, ["0", "1", "2", "3", "5"]) == ["0,1", "2,3"]
    assert gpu_slots("cuda:1", 1.0, gpus) is None  # the user's pin
    assert gpu_slots("cpu", 1.0, gpus) is None
    assert gpu_slots("auto", 1.0, []) is None  # auto on a machine without GPUs: the CPU
    with pytest.raises(InterpError, match="2 GPUs per cell requested but 1"):
        gpu_slots("cuda", 2, ["0"])


def test_local_executor_workers_see_their_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pool worker gets one slot as its CUDA_VISIBLE_DEVICES (faked GPUs: the variable
    is only read, no CUDA call is made): four items on two GPUs reach both, and only them."""
    from interp.runs.executors import LocalExecutor

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    ex = LocalExecutor(workers=4, device="cuda", gpus_per_cell=1.0)
    seen = list(ex.map(_visible_after_a_pause, [0, 1, 2, 3]))
    assert sorted(set(seen)) == ["3", "5"]


def _visible_after_a_pause(_: int) -> str:
    import os
    import time

    time.sleep(0.5)  # keep this worker busy so that the others take items too
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def test_ray_items_lose_their_gpu_index() -> None:
    from interp.runs.executors import ray_item

    job = {"run": "a", "device": "cuda:3"}
    assert ray_item(job) == {"run": "a", "device": "cuda"}
    assert job["device"] == "cuda:3"  # the driver's copy is untouched
    assert ray_item({"device": "cpu"}) == {"device": "cpu"}
    assert ray_item(5) == 5


def test_spec_device_keys_validated() -> None:
    spec = _spec(device="CUDA:1", autocast="bf16")
    assert (spec.train.device, spec.train.autocast) == ("cuda:1", "bf16")
    assert TrainSpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()
    with pytest.raises(InterpError, match=r"\[train\] unknown device 'gpu'"):
        _spec(device="gpu")
    with pytest.raises(InterpError, match=r"\[train\] unknown autocast"):
        _spec(autocast="fp16")
    with pytest.raises(InterpError, match="device must be a string"):
        _spec(device=0)


def test_run_identity_ignores_execution_settings_only() -> None:
    a = _spec(device="cpu", autocast="off").to_dict()
    b = _spec(device="cuda", autocast="bf16").to_dict()
    b["eval"]["batch_size"] = 2048
    assert a != b and run_identity(a) == run_identity(b)
    c = _spec(steps=9).to_dict()
    assert run_identity(a) != run_identity(c)
    old = _spec().to_dict()  # a config.json written before the device keys existed
    for key in ("device", "autocast", "compile"):
        old["train"].pop(key, None)
    del old["eval"]["batch_size"]
    assert run_identity(old) == run_identity(a)


# --------------------------------------------------------------------------------------------
# Checkpoints across devices


def test_loader_loads_straight_onto_the_requested_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train(_spec(steps=4), tmp_path, progress=False)
    seen: list[str] = []
    real = ckpt_mod.load_file

    def spy(path: str, device: str = "cpu") -> dict[str, torch.Tensor]:
        seen.append(device)
        return real(path, device=device)

    monkeypatch.setattr(ckpt_mod, "load_file", spy)
    run = load_run(tmp_path, device="cpu")
    assert seen == ["cpu"]
    assert {p.device.type for p in run.model.parameters()} == {"cpu"}
    load_tensors(tmp_path, 4, device=torch.device("cpu"))
    assert seen[-1] == "cpu"
    with pytest.raises(InterpError, match="unknown device"):
        load_run(tmp_path, device="gpu")


def test_checkpoint_records_where_it_was_trained(tmp_path: Path) -> None:
    train(_spec(steps=4), tmp_path, progress=False, device="cpu")
    _, meta = load_tensors(tmp_path, 4)
    extra = json.loads(meta["extra"])
    assert extra["device"] == "cpu" and extra["autocast"] is False and extra["compile"] is False


def test_resume_with_other_device_settings_is_bit_exact_on_cpu(tmp_path: Path) -> None:
    """A run started with one device setting resumes under another (``auto`` vs ``cpu``): on
    the CPU the result equals an uninterrupted run bit for bit."""
    ref = _weights(train(_spec(), tmp_path / "ref", progress=False))
    run = tmp_path / "run"
    train(_spec(device="cpu"), run, progress=False, stop_after=4)
    assert list_checkpoints(run) == [4] and not is_done(run)
    resumed = train(_spec(device="auto"), run, progress=False, device="cpu")
    assert is_done(run)
    got = _weights(resumed)
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(got[k], ref[k]), k


needs_cpu_bf16 = pytest.mark.skipif(
    not dv.cpu_bf16_supported(), reason="this CPU has no bfloat16 matrix instructions"
)


@needs_cpu_bf16
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compile"])
def test_cpu_bf16_resume_is_bit_exact(tmp_path: Path, compiled: bool) -> None:
    """Under CPU bf16 autocast (and torch.compile), a run killed between checkpoints and
    resumed ends with exactly the weights and optimizer state of an uninterrupted one; and
    bf16 really ran (the weights differ from float32's)."""
    kw = {"autocast": "bf16", "compile": compiled}
    ref = _weights(train(_spec(**kw), tmp_path / "ref", progress=False, device="cpu"))
    run = tmp_path / "run"
    train(_spec(**kw), run, progress=False, device="cpu", stop_after=6)
    assert list_checkpoints(run) == [4] and not is_done(run)
    got = _weights(train(_spec(**kw), run, progress=False, device="cpu"))
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    for step in (4, 8):
        a, meta = load_tensors(run, step)
        b, _ = load_tensors(tmp_path / "ref", step)
        assert all(torch.equal(a[k], b[k]) for k in b if k.startswith(("model.", "optim.")))
        assert a["model.embed.W_E"].dtype == torch.float32  # master weights stay float32
        extra = json.loads(meta["extra"])
        assert extra["autocast"] is True and extra["compile"] is compiled
    fp32 = _weights(train(_spec(), tmp_path / "fp32", progress=False, device="cpu"))
    assert not torch.equal(fp32["embed.W_E"], ref["embed.W_E"])


def test_run_written_before_device_keys_resumes(tmp_path: Path) -> None:
    train(_spec(), tmp_path, progress=False, stop_after=4)
    old = read_json(tmp_path / CONFIG)
    for key in ("device", "autocast", "compile"):
        old["train"].pop(key, None)
    del old["eval"]["batch_size"]
    write_json(tmp_path / CONFIG, old)
    train(_spec(), tmp_path, progress=False)
    assert is_done(tmp_path)


def test_explicit_batch_size_does_not_change_scores(tmp_path: Path) -> None:
    train(_spec(steps=4), tmp_path, progress=False)
    model = load_run(tmp_path, device="cpu").model
    a = score_heads(model, "copy", lengths=[2, 3], n_examples=6, batch_size=5)
    b = score_heads(model, "copy", lengths=[2, 3], n_examples=6)  # device default (512)
    assert a["score"].tolist() == pytest.approx(b["score"].tolist(), abs=1e-6)


# --------------------------------------------------------------------------------------------
# Ray: the resource request (Ray itself is never started here)


def test_ray_resources() -> None:
    base = {"num_cpus": 1, "max_retries": 0}
    assert dv.ray_resources("cpu", 1.0, cluster_gpus=8) == base
    assert dv.ray_resources("auto", 1.0, cluster_gpus=0) == base
    assert dv.ray_resources("auto", 0.5, cluster_gpus=2) == {**base, "num_gpus": 0.5}
    assert dv.ray_resources("cuda", 0.25, cluster_gpus=4) == {**base, "num_gpus": 0.25}
    assert dv.ray_resources("cuda:1", 2, cluster_gpus=4) == {**base, "num_gpus": 2.0}
    assert dv.ray_resources("mps", 1.0, cluster_gpus=4) == base
    with pytest.raises(InterpError, match="Ray cluster has no GPUs"):
        dv.ray_resources("cuda", 1.0, cluster_gpus=0)


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, True, "1"])
def test_ray_gpu_fraction_validated(bad: Any) -> None:
    with pytest.raises(InterpError, match="GPUs per cell"):
        dv.ray_resources("cuda", bad, cluster_gpus=4)


def test_ray_executor_requests_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """RayExecutor.map asks ``ray.remote`` for the resources :func:`ray_resources` builds,
    checked against a stand-in ``ray`` module (no Ray instance is started)."""
    requested: list[dict[str, Any]] = []

    class Ref:
        def __init__(self, value: Any) -> None:
            self.value = value

    def remote(**opts: Any) -> Any:
        requested.append(opts)
        return lambda fn: types.SimpleNamespace(remote=lambda item: Ref(fn(item)))

    fake = types.SimpleNamespace(
        is_initialized=lambda: True,  # an existing session: the executor never calls init
        cluster_resources=lambda: {"CPU": 16.0, "GPU": 2.0},
        remote=remote,
        wait=lambda refs, num_returns=1: (refs[:1], refs[1:]),
        get=lambda ref: ref.value,
        cancel=lambda ref: None,
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    ex = RayExecutor(device="cuda", gpus_per_cell=0.25)
    assert sorted(ex.map(lambda x: x * 2, [1, 2, 3])) == [2, 4, 6]
    assert requested == [{"num_cpus": 1, "max_retries": 0, "num_gpus": 0.25}]
    requested.clear()
    list(RayExecutor(device="cpu").map(lambda x: x, [1]))
    assert requested == [{"num_cpus": 1, "max_retries": 0}]


# --------------------------------------------------------------------------------------------
# Sweeps and the command line


SWEEP = {
    "name": "dev",
    "groups": ["arith_b"],
    "seeds": [0],
    "lengths": [[2, 3]],
    "presets": ["tiny"],
    "base": {"train": {"steps": 2, "batch_size": 4}, "eval": {"examples": 2}},
}


def test_sweep_validates_device_before_writing(tmp_path: Path) -> None:
    with pytest.raises(InterpError, match="unknown device"):
        run_sweep(SWEEP, tmp_path / "a", executor="serial", device="gpu", progress=False)
    with pytest.raises(InterpError, match="GPUs per cell"):
        run_sweep(SWEEP, tmp_path / "b", executor="serial", gpus_per_cell=0, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@cpu_only
def test_local_sweep_on_a_missing_gpu_fails_once(tmp_path: Path) -> None:
    with pytest.raises(InterpError, match="CUDA is not available"):
        run_sweep(SWEEP, tmp_path, executor="serial", device="cuda", progress=False)
    assert not tmp_path.joinpath("runs").exists()


def test_sweep_cells_train_on_the_given_device(tmp_path: Path) -> None:
    df = run_sweep(SWEEP, tmp_path, executor="serial", device="cpu", progress=False)
    assert df.attrs["failures"] == []
    run_dir = next((tmp_path / "runs").iterdir())
    _, meta = load_tensors(run_dir, list_checkpoints(run_dir)[-1])
    assert '"device": "cpu"' in meta["extra"]


def test_cli_bad_device_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.json"
    write_json(spec, _spec(steps=2).to_dict())
    assert main(["train", str(spec), "--out", str(tmp_path / "r"), "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("interp: error: unknown device 'gpu'") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


@cpu_only
def test_cli_cuda_on_a_cpu_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "string_b"
    shutil.copytree(ROOT / "models" / "zoo" / "string_b", run)
    assert main(["eval", str(run), "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and err.count("\n") == 1


def test_cli_eval_with_device_and_batch_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "string_b"
    shutil.copytree(ROOT / "models" / "zoo" / "string_b", run)
    args = ["eval", str(run), "--examples", "8", "--lengths", "1:2", "--quiet"]
    assert main([*args, "--device", "cpu", "--batch-size", "3"]) == 0
    small = capsys.readouterr().out
    assert main([*args, "--device", "auto"]) == 0
    assert capsys.readouterr().out == small  # chunking never changes accuracy


# --------------------------------------------------------------------------------------------
# On a GPU (skipped without one)


@needs_cuda
def test_gpu_run_resumes_on_cpu_and_back(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_spec(), run, progress=False, stop_after=4, device="cuda")
    model = train(_spec(), run, progress=False, device="cpu")  # steps 5..8 on the CPU
    assert is_done(run) and model.W_E.device.type == "cpu"
    gpu = load_run(run, device="cuda").model
    assert gpu.W_E.device.type == "cuda"
    for k, v in _weights(gpu).items():
        assert torch.equal(v, _weights(model)[k]), k


@needs_cuda
def test_gpu_resume_is_bit_exact_on_the_same_gpu(tmp_path: Path) -> None:
    ref = _weights(train(_spec(), tmp_path / "ref", progress=False, device="cuda"))
    train(_spec(), tmp_path / "run", progress=False, stop_after=4, device="cuda")
    got = _weights(train(_spec(), tmp_path / "run", progress=False, device="cuda"))
    for k in ref:
        assert torch.equal(got[k], ref[k]), k


@needs_cuda
def test_gpu_and_cpu_evaluation_and_scores_agree(tmp_path: Path) -> None:
    from interp.runs.loader import eval_run

    train(_spec(steps=8), tmp_path, progress=False, device="cpu")
    acc_cpu = eval_run(tmp_path, device="cpu", n_examples=32, save=False, progress=False)
    acc_gpu = eval_run(tmp_path, device="cuda", n_examples=32, save=False, progress=False)
    assert acc_gpu["accuracy"].tolist() == pytest.approx(acc_cpu["accuracy"].tolist(), abs=0.07)
    for method in ("mean_ablation", "activation_patching", "attribution_patching"):
        s_cpu = score_heads(
            load_run(tmp_path, device="cpu").model, "copy", method, "logprob", lengths=[2, 3],
            n_examples=16,
        )  # fmt: skip
        s_gpu = score_heads(
            load_run(tmp_path, device="cuda").model, "copy", method, "logprob", lengths=[2, 3],
            n_examples=16,
        )  # fmt: skip
        assert s_gpu["score"].tolist() == pytest.approx(s_cpu["score"].tolist(), abs=1e-3)


@needs_cuda
def test_bf16_autocast_trains_on_gpu(tmp_path: Path) -> None:
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 support")
    model = train(_spec(autocast="bf16"), tmp_path, progress=False, device="cuda")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    _, meta = load_tensors(tmp_path, 8)
    assert '"autocast": true' in meta["extra"]


@pytest.mark.parametrize(
    ("flags", "device", "want"),
    [
        ({"avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16"}, "cpu", 256),
        ({"avx512f", "avx512_bf16"}, "cpu", None),  # the AMD EPYC machines: left as it was
        ({"avx512f", "avx512_fp16"}, "cuda", None),  # Inductor's CPU code is not involved
    ],
)
def test_compile_model_holds_inductor_cpu_code_to_256_bit_vectors_where_512_gave_nan(
    flags: set[str], device: str, want: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a CPU with AVX512-FP16, Inductor's default 512-bit code gave NaN losses in every
    compiled bf16 run with auxiliaries (2026-12-06); 256-bit code trained like eager."""
    import torch._inductor.config as inductor_config

    from interp.core import device as device_mod

    monkeypatch.setattr(device_mod, "cpu_flags", lambda: flags)
    with inductor_config.patch({"cpp.simdlen": None}):  # restored afterwards
        compiled = device_mod.compile_model(torch.nn.Linear(2, 2), torch.device(device))
        assert inductor_config.cpp.simdlen == want
    assert hasattr(compiled, "_orig_mod")  # still torch.compile's wrapper, not compiled yet


def test_cpu_flags_reads_this_machine() -> None:
    from interp.core.device import cpu_flags

    flags = cpu_flags()
    assert not flags or {"fpu", "sse2"} <= flags or "fp" in flags
