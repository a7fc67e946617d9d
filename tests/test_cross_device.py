"""Every stage names the device of every tensor it creates (no GPU needed to check it).

On a GPU, a tensor made without ``device=`` lands on the CPU (the default device) and fails the
moment it meets a model output: the head-set ablation once wrote every set's CUDA scores into
CPU tables. CI has no GPU, so each stage runs here with its model on the CPU under
:class:`device_audit.FactoryAudit`, which records every ``interp`` line that creates a tensor
without naming its device (the lines that would put a tensor on the wrong device under any other
default device, e.g. ``torch.set_default_device("meta")``). A stage passes when there are none.
The stages: train, eval, score (all four methods), overlap, attention, the causal top-k test,
head sets, dose, interchange, a run with per-task head masks, a sweep with ``--analyze`` (every
analysis stage of a sweep, its report included) and ``demo --quick`` (run in this process so the
audit sees it). The core stages (head sets, evaluation, the four scoring methods, attention) are
also run literally under ``torch.set_default_device("meta")`` and must give the same numbers.

Both kinds fail on the head-set code before the fix (checked by restoring it).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from device_audit import FactoryAudit
from tinyscale import TINY_ANALYSIS

from interp.cli.commands import main
from interp.runs.analysis_spec import AnalysisConfig
from interp.runs.causal_runs import (
    causal_for_run,
    dose_for_run,
    head_sets_for_run,
    interchange_for_run,
)
from interp.runs.spec import TrainSpec
from interp.runs.train import train

SPEC = {
    "name": "xdev",
    "group": "arith_a",
    "main": "reverse_add",
    "seed": 0,
    "tasks": [
        {"name": "reverse_add", "lengths": [1, 2]},
        {"name": "no_carry", "lengths": [1, 4]},
    ],
    "model": {"preset": "tiny"},
    "optim": {"lr": 3e-3, "warmup_steps": 1},
    "train": {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "log_every": 2, "threads": 1},
    "eval": {"max_length": 4, "examples": 4, "final_examples": 4},
}
CFG = AnalysisConfig.from_dict({**TINY_ANALYSIS, "n_examples": 4})


def audited(fn: Callable[[], Any]) -> FactoryAudit:
    """Run ``fn`` under a fresh audit and return the audit."""
    audit = FactoryAudit()
    with audit:
        fn()
    return audit


def check(audit: FactoryAudit) -> None:
    assert not audit.sites, "tensors created without device=:\n" + audit.report()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FactoryAudit]:
    """A tiny two-task run with a transfer range (main to 2 digits, its auxiliary to 4), trained
    on the CPU under the audit."""
    run = tmp_path_factory.mktemp("xdev") / "run"
    audit = audited(lambda: train(TrainSpec.from_dict(SPEC), run, progress=False, device="cpu"))
    return run, audit


def test_train(trained: tuple[Path, FactoryAudit]) -> None:
    check(trained[1])


def _cli(*argv: str) -> Callable[[], None]:
    def go() -> None:
        assert main([*argv, "--device", "cpu"]) == 0

    return go


@pytest.mark.parametrize(
    "stage",
    [
        ("eval", "--examples", "4", "--quiet"),
        (
            "score", "--method",
            "mean_ablation,zero_ablation,activation_patching,attribution_patching",
            "--metric", "exact_match,logprob", "--examples", "4", "--quiet",
        ),
        ("overlap", "--k", "2"),
        ("analyze", "--examples", "4", "--quiet"),
    ],
    ids=lambda s: s[0],
)  # fmt: skip
def test_cli_stages(trained: tuple[Path, FactoryAudit], stage: tuple[str, ...]) -> None:
    run = str(trained[0])
    check(audited(_cli(stage[0], run, *stage[1:])))


@pytest.mark.parametrize(
    "stage",
    [causal_for_run, head_sets_for_run, dose_for_run, interchange_for_run],
    ids=lambda f: f.__name__,
)
def test_causal_stages(trained: tuple[Path, FactoryAudit], stage: Callable[..., Any]) -> None:
    run = trained[0]
    kwargs: dict[str, Any] = {"device": "cpu"}
    if stage is causal_for_run:
        kwargs["scores"] = None
    check(audited(lambda: stage(run, cfg=CFG, **kwargs)))


def test_masked_run(tmp_path: Path) -> None:
    """A run with per-task head masks (:mod:`interp.models.head_mask`): training, evaluation and the
    head-set trie, whose fast path reads the masked ``z``."""
    tasks = [
        {"name": "reverse_add", "lengths": [1, 2], "heads": [0]},
        {"name": "no_carry", "lengths": [1, 4], "heads": [1]},
    ]
    spec = TrainSpec.from_dict({**SPEC, "name": "xdev_masked", "tasks": tasks})
    run = tmp_path / "run"

    def go() -> None:
        train(spec, run, progress=False, device="cpu")
        assert main(["eval", str(run), "--examples", "4", "--quiet", "--device", "cpu"]) == 0
        head_sets_for_run(run, CFG, device="cpu")

    check(audited(go))


def test_attention(trained: tuple[Path, FactoryAudit]) -> None:
    from interp.runs.loader import load_run
    from interp.scoring.attention import attention_difference, attention_table
    from interp.tasks.batches import task_batch

    model = load_run(trained[0], device="cpu").model

    def go() -> None:
        attention_table(model, ["reverse_add", "no_carry"], lengths=[2, 3], n_examples=4)
        a = task_batch(model, "reverse_add", [2], 4)
        b = task_batch(model, "no_carry", [2], 4)
        attention_difference(model, a, b)

    check(audited(go))


def _meta_stages() -> dict[str, Callable[[Any], Any]]:
    from interp.causal.head_sets import ablate_sets, all_head_sets
    from interp.scoring.attention import attention_table
    from interp.scoring.evaluate import accuracy_table
    from interp.scoring.heads import score_heads
    from interp.tasks.batches import task_batch

    def head_sets(m: Any) -> Any:
        b = task_batch(m, "reverse_add", [2, 3], 4, 0)
        return ablate_sets(m, b, all_head_sets(m.cfg.n_layers, m.cfg.n_heads, 2))

    def score(m: Any) -> Any:
        methods = ["mean_ablation", "zero_ablation", "activation_patching", "attribution_patching"]
        return [score_heads(m, "reverse_add", k, lengths=[2, 3], n_examples=4) for k in methods]

    return {
        "head_sets": head_sets,
        "eval": lambda m: accuracy_table(m, ["reverse_add"], {"reverse_add": [1, 2, 3]}, 4),
        "score": score,
        "attention": lambda m: attention_table(m, ["reverse_add", "no_carry"], [2], n_examples=4),
    }


@pytest.mark.parametrize("stage", ["head_sets", "eval", "score", "attention"])
def test_stages_under_a_meta_default_device(trained: tuple[Path, FactoryAudit], stage: str) -> None:
    """The literal version of the audit: with ``torch.set_default_device("meta")`` in force, a
    tensor made without ``device=`` holds no data, so any that met the CPU model's outputs
    would fail. The results must equal those made under the ordinary default (the head-set
    code before the fix failed here: "Cannot copy out of meta tensor")."""
    import pandas as pd

    from interp.runs.loader import load_run

    model = load_run(trained[0], device="cpu").model
    fn = _meta_stages()[stage]
    want = fn(model)
    torch.set_default_device("meta")
    try:
        got = fn(model)
    finally:
        torch.set_default_device(None)
    pairs = list(zip(want, got, strict=True)) if isinstance(want, tuple | list) else [(want, got)]
    for a, b in pairs:
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b)
        else:
            assert b.device == torch.device("cpu") and torch.equal(a, b)


def test_sweep_analyze(tmp_path: Path) -> None:
    """``interp sweep --analyze`` in this process (serial executor): every cell's training and
    every analysis stage of a sweep, causal ones included, then the report."""
    from tinyscale import shrink, to_toml

    spec = shrink(
        {
            "name": "xdev_sweep",
            "groups": ["arith_a"],
            "seeds": [0],
            "lengths": [[2, 4]],
            "presets": ["tiny"],
            "baseline": True,
            "analysis": {"n_examples": 4},
        }
    )
    path = tmp_path / "sweep.toml"
    path.write_text(to_toml(spec))
    out = tmp_path / "out"
    argv = ("sweep", str(path), "--out", str(out), "--executor", "serial", "--analyze", "--quiet")
    check(audited(_cli(*argv)))
    assert (out / "analysis").is_dir()


class _InProcessPool(concurrent.futures.Executor):
    """A stand-in for the demo's one-process pool that runs each job here, at submit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        fut.set_result(fn(*args, **kwargs))
        return fut


@pytest.mark.slow
def test_demo_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``interp demo --quick`` with its worker processes replaced by this process (the zoo
    family's pool by an in-process one, the sweep's executor by ``serial``)."""
    import interp.cli.demo as demo

    real_sweep = demo.run_sweep
    monkeypatch.setattr(demo, "ProcessPoolExecutor", _InProcessPool)
    monkeypatch.setattr(
        demo, "run_sweep", lambda *a, **k: real_sweep(*a, **{**k, "executor": "serial"})
    )
    prev = torch.get_num_threads()
    try:
        check(audited(_cli("demo", "--quick", "--out", str(tmp_path / "demo"), "--quiet")))
    finally:
        torch.set_num_threads(prev)
    assert (tmp_path / "demo" / "report.html").is_file()


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize(
    "stage",
    [causal_for_run, head_sets_for_run, dose_for_run, interchange_for_run],
    ids=lambda f: f.__name__,
)
def test_causal_stages_on_cuda(
    trained: tuple[Path, FactoryAudit], stage: Callable[..., Any]
) -> None:
    """The stages that once mixed devices, on a real GPU, against the CPU: the same tables up
    to float rounding (head-set verdicts may flip only on exact ties, so compared loosely)."""
    import pandas as pd

    run = trained[0]
    kwargs: dict[str, Any] = {"scores": None} if stage is causal_for_run else {}
    cpu = stage(run, cfg=CFG, device="cpu", **kwargs)
    gpu = stage(run, cfg=CFG, device="cuda", **kwargs)
    for a, b in zip(
        cpu if isinstance(cpu, tuple) else (cpu,),
        gpu if isinstance(gpu, tuple) else (gpu,),
        strict=True,
    ):
        assert list(a.columns) == list(b.columns) and len(a) == len(b)
        num = a.select_dtypes("number").columns
        pd.testing.assert_frame_equal(a[num], b[num], atol=0.05, rtol=0)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_a_model_on_the_second_gpu_stays_there() -> None:
    from interp.models.architecture import ModelConfig
    from interp.models.factory import build_model

    model = build_model(ModelConfig(n_layers=2, n_heads=2, d_model=16), "cuda:1")
    assert model.cfg.device == "cuda:1"
    out = model(torch.tensor([[1, 2, 3]], device="cuda:1"))
    assert out.device == torch.device("cuda", 1)
    assert torch.cuda.memory_allocated(0) == 0  # nothing ran on cuda:0
