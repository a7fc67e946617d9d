"""Feeding the GPU: batches made ahead in a thread, the sync-free loss, TF32, their settings.

The prefetching thread must not change a single number: the stream it serves is compared batch
for batch with the sampler's own, and a run trained with it (forced on, on the CPU) is compared
bit for bit with one trained without it. The CUDA loss (no boolean-mask selection, so no host
sync) is checked against the CPU one on the CPU, where both can run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from interp.core import device as dv
from interp.core.errors import InterpError
from interp.models.checkpoint import CKPT_DIR, ckpt_name
from interp.runs.spec import TrainSpec, run_identity
from interp.runs.train import answer_loss, train, weighted_answer_loss
from interp.tasks.batches import Batch, MixtureSampler, Prefetcher, TaskSpec


def _sampler() -> MixtureSampler:
    tasks = [TaskSpec("reverse_add", 1, 4), TaskSpec("copy", 1, 6)]
    return MixtureSampler(tasks, batch_size=6, seed=3, n_buckets=4)


def _same(a: Batch, b: Batch) -> None:
    for f in ("tokens", "answer_mask", "prompt_len", "seq_len", "lengths"):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.device == y.device and torch.equal(x, y), f
    assert a.tasks == b.tasks


@pytest.mark.parametrize("start", [0, 5])
def test_prefetched_stream_equals_the_sampler(start: int) -> None:
    """From step 0 and from the middle of a pool (a resume), three pools' worth of batches."""
    want = [_sampler().batch(s) for s in range(start, start + 12)]
    with Prefetcher(_sampler(), start, start + 12, depth=2) as pf:
        got = [pf.batch(s) for s in range(start, start + 12)]
    for a, b in zip(want, got, strict=True):
        _same(a, b)


def test_prefetcher_reads_in_order_and_stops_early() -> None:
    pf = Prefetcher(_sampler(), 0, 1000, depth=2)
    pf.batch(0)
    with pytest.raises(InterpError, match="in order"):
        pf.batch(2)
    pf.close()  # with the queue full and 990 steps to go: must not hang
    assert not pf._thread.is_alive()


class _Failing:
    """A sampler whose step ``bad`` raises."""

    def __init__(self, bad: int) -> None:
        self.bad, self.inner = bad, _sampler()

    def batch(self, step: int) -> Batch:
        if step == self.bad:
            raise InterpError(f"step {step} needs more context")
        return self.inner.batch(step)


def test_prefetch_error_is_raised_at_its_step() -> None:
    with Prefetcher(_Failing(3), 0, 10) as pf:  # type: ignore[arg-type]
        for s in range(3):
            pf.batch(s)
        with pytest.raises(InterpError, match="step 3 needs more context"):
            pf.batch(3)


SPEC: dict[str, Any] = {
    "name": "pf",
    "main": "copy",
    "seed": 1,
    "tasks": [{"name": "copy", "lengths": [1, 3]}, {"name": "reverse", "lengths": [1, 5]}],
    "model": {"preset": "tiny"},
    "optim": {"lr": 1e-2, "warmup_steps": 3},
    "train": {"steps": 8, "batch_size": 8, "n_buckets": 3, "checkpoint_every": 4, "threads": 1},
    "eval": {"max_length": 4, "examples": 4},
}


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / CKPT_DIR / ckpt_name(step)))


def test_prefetch_trains_bit_identical_weights_on_cpu(tmp_path: Path) -> None:
    """Prefetch forced on (argument, and the spec's ``on``, with a resume in between) against
    the CPU default (off): every tensor of every checkpoint equal, optimizer state included."""
    spec = TrainSpec.from_dict(SPEC)
    assert not dv.prefetch_enabled(torch.device("cpu"), spec.train.prefetch)
    train(spec, tmp_path / "off", progress=False, device="cpu")
    train(spec, tmp_path / "on", progress=False, device="cpu", prefetch=True)
    on_spec = TrainSpec.from_dict({**SPEC, "train": {**SPEC["train"], "prefetch": "on"}})
    train(on_spec, tmp_path / "resumed", progress=False, device="cpu", stop_after=4)
    train(on_spec, tmp_path / "resumed", progress=False, device="cpu")
    for step in (4, 8):
        ref = _weights(tmp_path / "off", step)
        for other in ("on", "resumed"):
            got = _weights(tmp_path / other, step)
            assert ref.keys() == got.keys()
            for k in ref:
                assert torch.equal(ref[k], got[k]), (other, step, k)


def test_cuda_loss_equals_the_cpu_loss() -> None:
    """The CUDA formulation (every position, mask as weights) against the boolean-mask one."""
    b = _sampler().batch(0)
    g = torch.Generator(device="cpu").manual_seed(0)
    logits = torch.randn((*b.tokens.shape, 160), generator=g, device="cpu", requires_grad=True)
    want = answer_loss(logits, b)
    got = weighted_answer_loss(logits, b)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    (ga,) = torch.autograd.grad(want, logits)
    (gb,) = torch.autograd.grad(got, logits)
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)


def test_prefetch_and_tf32_settings() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert dv.prefetch_enabled(cuda, "auto") and not dv.prefetch_enabled(cpu, "auto")
    assert dv.prefetch_enabled(cpu, "on") and not dv.prefetch_enabled(cuda, "off")
    assert dv.prefetch_enabled(cpu, True) and not dv.prefetch_enabled(cuda, False)
    with pytest.raises(InterpError, match="prefetch"):
        TrainSpec.from_dict({**SPEC, "train": {**SPEC["train"], "prefetch": "always"}})
    with pytest.raises(InterpError, match="tf32"):
        TrainSpec.from_dict({**SPEC, "train": {**SPEC["train"], "tf32": "yes"}})
    # Execution settings: a resume may change them.
    a = TrainSpec.from_dict(SPEC).to_dict()
    b = TrainSpec.from_dict(
        {**SPEC, "train": {**SPEC["train"], "tf32": True, "prefetch": "on"}}
    ).to_dict()
    assert a != b and run_identity(a) == run_identity(b)


def test_tf32_is_scoped_to_cuda() -> None:
    """Only the flags are touched (no GPU needed): set inside on CUDA, restored on exit,
    untouched on the CPU or when off."""
    matmul = torch.backends.cuda.matmul
    was = matmul.allow_tf32
    try:
        matmul.allow_tf32 = False
        with dv.tf32(torch.device("cpu"), True):
            assert not matmul.allow_tf32
        with dv.tf32(torch.device("cuda"), False):
            assert not matmul.allow_tf32
        with dv.tf32(torch.device("cuda"), True):
            assert matmul.allow_tf32
        assert not matmul.allow_tf32
    finally:
        matmul.allow_tf32 = was


def test_paper_specs_turn_tf32_on() -> None:
    from interp.runs.spec import load_spec

    root = Path(__file__).resolve().parent.parent / "analyses" / "paper"
    for path in sorted(root.glob("*.toml")):
        assert load_spec(path).train.tf32, path.name
