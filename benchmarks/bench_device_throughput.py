"""Benchmark: the paper preset's throughput on whatever device is present.

What a researcher planning paper-scale runs needs to know: how many tokens per second
:func:`interp.runs.train.train` pushes through the ``paper`` preset (6 layers, 6 heads, d_model 384,
RoPE, RMSNorm + gated SiLU) on this machine's device, in float32 and, on a CUDA GPU with
bfloat16 support, under ``[train] autocast = "bf16"``; and how fast evaluation and head scoring
run there with the device's default chunk sizes.

* **training, end to end**: the arithmetic group-A mixture at the paper's lengths (reverse add
  1..16, no carry and carry only 1..32), batch 256 (the Fig. 3 ``[paper]`` table), length
  bucketing, and the loop's own step (:func:`interp.runs.train.train_step`: batch moved to the
  device,
  autocast, answer-only loss, clipping, AdamW) under the loop's deterministic kernels and the
  spec's TF32 setting. The clock runs from the first timed step to the device's last kernel and
  includes **making the batches** (sampling and encoding, Python on one core), once with the
  batches made in the loop as before (``prefetch off``) and once made ahead in a thread
  (``prefetch on``, :class:`interp.tasks.batches.Prefetcher`, pinned and copied asynchronously on
  CUDA).
  The prefetcher starts with the timed steps, its queue empty, as a training run starts. The
  device is synchronised only at the two ends, as in training, so the GPU's queue of kernels is
  free to overlap the host's work.
* **training, step only**: the same steps with every batch made beforehand and the device
  synchronised around each step: what the device could do if data were free (the bound that
  prefetching approaches).
* **data only**: batches per second of the sampler alone, and the tokens/s that caps.
* **evaluation**: :func:`interp.scoring.evaluate.accuracy_table` on reverse add at length 16 (1024
  examples, the paper's evaluation-set size), in examples/s.
* **head scoring**: :func:`interp.scoring.heads.score_heads` (mean ablation, exact match) on
  reverse add
  at length 16, in examples/s (every example is scored for all 36 heads).

The model is untrained (throughput does not depend on the weights). Steps per day follow from
tokens/s and the mixture's mean real tokens per batch, printed with the table.

Run: ``python benchmarks/bench_device_throughput.py [--device auto] [--steps N] [--warmup N]
[--eval-examples N] [--score-examples N] [--preset paper] [--batch-size 256]``. The defaults
depend on the device: 5 warm-up + 200 timed steps, 1024 evaluation and 256 scoring examples on a
GPU; 1 + 2 steps, 128 and 16 on a CPU, where one paper-scale step takes many seconds (so ``make
bench`` stays short there; the CPU's end-to-end figures then rest on two steps). ``--preset
tiny --batch-size 16`` is a seconds-long smoke run (``benchmarks/gpu_check.sh --device cpu``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from interp.core.device import autocast_enabled, deterministic, resolve_device, tf32
from interp.core.errors import InterpError
from interp.models.factory import build_model
from interp.runs.spec import TrainSpec
from interp.runs.train import make_optimizer, train_step
from interp.scoring.evaluate import accuracy_table
from interp.scoring.heads import score_heads
from interp.tasks.batches import MixtureSampler, Prefetcher

SPEC = {
    "name": "bench_paper_arith_a",
    "main": "reverse_add",
    "tasks": [
        {"name": "reverse_add", "lengths": [1, 16]},
        {"name": "no_carry", "lengths": [1, 32]},
        {"name": "carry_only", "lengths": [1, 32]},
    ],
    "model": {"preset": "paper"},
    "optim": {"lr": 1e-4, "warmup_steps": 1000},
    "train": {"batch_size": 256, "steps": 50_000, "tf32": True},
}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _with_autocast(spec: TrainSpec, autocast: str) -> TrainSpec:
    d = spec.to_dict()
    d["train"]["autocast"] = autocast
    return TrainSpec.from_dict(d)


def _sampler(spec: TrainSpec) -> MixtureSampler:
    return MixtureSampler(
        spec.tasks, spec.train.batch_size, spec.seed, spec.train.n_buckets, n_ctx=spec.model.n_ctx
    )


def train_tokens_per_s(
    spec: TrainSpec, dev: torch.device, steps: int, warmup: int, prefetch: bool | None
) -> float:
    """Tokens/s over ``steps`` timed training steps after ``warmup`` untimed ones: end to end
    (the batches made in the loop, ``prefetch=False``, or ahead in a thread, ``True``), or the
    step alone (``None``: batches made beforehand, the device synchronised around each step)."""
    model = build_model(spec.model, dev)
    opt = make_optimizer(model, spec)
    sampler = _sampler(spec)
    model.train()
    pin = bool(prefetch) and dev.type == "cuda"
    toks, elapsed = 0, 0.0
    with deterministic(dev), tf32(dev, spec.train.tf32):
        for i in range(warmup):
            train_step(model, opt, spec, sampler.batch(i).to(dev), i)
        _sync(dev)
        stop = warmup + steps
        if prefetch is None:
            for i in range(warmup, stop):
                batch = sampler.batch(i)
                toks += int(batch.seq_len.sum())
                _sync(dev)
                t0 = time.perf_counter()
                train_step(model, opt, spec, batch.to(dev), i)
                _sync(dev)
                elapsed += time.perf_counter() - t0
            return toks / elapsed
        t0 = time.perf_counter()
        source = Prefetcher(sampler, warmup, stop, pin=pin) if prefetch else sampler
        try:
            for i in range(warmup, stop):
                batch = source.batch(i)
                toks += int(batch.seq_len.sum())
                train_step(model, opt, spec, batch.to(dev, non_blocking=pin), i)
            _sync(dev)
        finally:
            if isinstance(source, Prefetcher):
                source.close()
        return toks / (time.perf_counter() - t0)


def data_batches_per_s(spec: TrainSpec, n: int) -> tuple[float, float]:
    """``(batches/s, mean real tokens per batch)`` of the sampler alone over ``n`` batches."""
    sampler = _sampler(spec)
    t0 = time.perf_counter()
    toks = sum(int(sampler.batch(i).seq_len.sum()) for i in range(n))
    return n / (time.perf_counter() - t0), toks / n


def eval_examples_per_s(spec: TrainSpec, dev: torch.device, n: int) -> float:
    model = build_model(spec.model, dev)
    accuracy_table(model, ["reverse_add"], [16], n_examples=min(n, 64))  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    accuracy_table(model, ["reverse_add"], [16], n_examples=n, seed=1)
    _sync(dev)
    return n / (time.perf_counter() - t0)


def score_examples_per_s(spec: TrainSpec, dev: torch.device, n: int) -> float:
    model = build_model(spec.model, dev)
    score_heads(model, "reverse_add", lengths=[16], n_examples=min(n, 8))  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    score_heads(model, "reverse_add", lengths=[16], n_examples=n, seed=1)
    _sync(dev)
    return n / (time.perf_counter() - t0)


def describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    ap.add_argument("--steps", type=int, help="timed training steps (GPU 20, CPU 2)")
    ap.add_argument("--warmup", type=int, help="untimed training steps first (GPU 3, CPU 1)")
    ap.add_argument("--eval-examples", type=int, help="0 skips evaluation (GPU 1024, CPU 128)")
    ap.add_argument("--score-examples", type=int, help="0 skips scoring (GPU 256, CPU 16)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--preset", default="paper", help="model preset (tiny: a smoke run)")
    ap.add_argument("--batch-size", type=int, default=256, help="examples per step")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    for key, on_gpu, on_cpu in (
        ("steps", 200, 2),
        ("warmup", 5, 1),
        ("eval_examples", 1024, 128),
        ("score_examples", 256, 16),
    ):
        if getattr(args, key) is None:
            setattr(args, key, on_gpu if gpu else on_cpu)
    spec = TrainSpec.from_dict(
        {
            **SPEC,
            "model": {"preset": args.preset},
            "train": {**SPEC["train"], "batch_size": args.batch_size},
        }
    )
    load_before = os.getloadavg()[0]
    try:
        modes = ["off"] + (["bf16"] if autocast_enabled(dev, "bf16") else [])
    except InterpError:  # a CPU without bfloat16 units: float32 only
        modes = ["off"]
    batches_s, per_batch = data_batches_per_s(spec, max(args.steps, 4))
    rows = [
        (
            "data only (sampler, one core)",
            f"{batches_s * per_batch:,.0f} tokens/s ({batches_s:,.1f} batches/s)",
            f"{batches_s * 86_400:,.0f}",
        )
    ]
    for mode in modes:
        s_mode = _with_autocast(spec, mode)
        for label, prefetch in (
            ("end to end, prefetch off", False),
            ("end to end, prefetch on", True),
            ("step only (data excluded)", None),
        ):
            tok_s = train_tokens_per_s(s_mode, dev, args.steps, args.warmup, prefetch)
            steps_day = tok_s / per_batch * 86_400
            rows.append(
                (
                    f"training, autocast {mode}, {label}",
                    f"{tok_s:,.0f} tokens/s",
                    f"{steps_day:,.0f}",
                )
            )
            print(f"done training ({mode}, {label})", flush=True)
    if args.eval_examples:
        ex_s = eval_examples_per_s(spec, dev, args.eval_examples)
        rows.append(("evaluation, reverse add L=16", f"{ex_s:,.0f} examples/s", ""))
    if args.score_examples:
        ex_s = score_examples_per_s(spec, dev, args.score_examples)
        heads = spec.model.n_layers * spec.model.n_heads
        rows.append((f"mean-ablation scoring, {heads} heads, L=16", f"{ex_s:,.1f} examples/s", ""))
    m = spec.model
    print(
        f"\n{describe(dev)}; torch {torch.__version__}; {args.preset} preset ({m.n_layers}L "
        f"{m.n_heads}H d{m.d_model}, n_ctx {m.n_ctx}); arith_a at the paper's lengths, batch "
        f"{spec.train.batch_size}; {args.warmup} warm-up + {args.steps} timed steps; TF32 "
        f"{'on' if spec.train.tf32 and gpu else 'off'}; "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print("| what | throughput | training steps per day |")
    print("|---|---|---|")
    for what, thr, day in rows:
        print(f"| {what} | {thr} | {day} |")


if __name__ == "__main__":
    main()
