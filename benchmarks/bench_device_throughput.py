"""Benchmark: the paper preset's throughput on whatever device is present.

What a researcher planning paper-scale runs needs to know: how many tokens per second
:func:`interp.train.train` pushes through the ``paper`` preset (6 layers, 6 heads, d_model 384,
RoPE, RMSNorm + gated SiLU) on this machine's device, in float32 and, on a CUDA GPU with
bfloat16 support, under ``[train] autocast = "bf16"``; and how fast evaluation and head scoring
run there with the device's default chunk sizes.

* **training**: the arithmetic group-A mixture at the paper's lengths (reverse add 1..16, no
  carry and carry only 1..32), batch 256 (the Fig. 3 ``[paper]`` table), length bucketing, the
  same step as the training loop (batch moved to the device, autocast context, answer-only loss,
  grad clipping, AdamW), deterministic kernels on CUDA as in training. Tokens are real
  (non-pad) tokens, timed after ``--warmup`` steps, with the device synchronised.
* **evaluation**: :func:`interp.evaluate.accuracy_table` on reverse add at length 16 (1024
  examples, the paper's evaluation-set size), in examples/s.
* **head scoring**: :func:`interp.heads.score_heads` (mean ablation, exact match) on reverse add
  at length 16, in examples/s (every example is scored for all 36 heads).

The model is untrained (throughput does not depend on the weights). Steps per day follow from
tokens/s and the mixture's mean real tokens per batch, printed with the table.

Run: ``python benchmarks/bench_device_throughput.py [--device auto] [--steps N] [--warmup N]
[--eval-examples N] [--score-examples N]``. The defaults depend on the device: 3 warm-up + 20
timed steps, 1024 evaluation and 256 scoring examples on a GPU; 1 + 2 steps, 128 and 16 on a
CPU, where one paper-scale step takes many seconds (so ``make bench`` stays short there).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from interp.data import MixtureSampler
from interp.device import autocast_context, autocast_enabled, deterministic, resolve_device
from interp.evaluate import accuracy_table
from interp.heads import score_heads
from interp.model import build_model
from interp.spec import TrainSpec
from interp.train import answer_loss, make_optimizer

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
    "train": {"batch_size": 256, "steps": 50_000},
}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def train_tokens_per_s(
    spec: TrainSpec, dev: torch.device, autocast: str, steps: int, warmup: int
) -> tuple[float, float]:
    """``(tokens/s, mean real tokens per batch)`` over ``steps`` timed training steps."""
    model = build_model(spec.model, dev)
    opt = make_optimizer(model, spec)
    sampler = MixtureSampler(
        spec.tasks, spec.train.batch_size, 0, spec.train.n_buckets, n_ctx=spec.model.n_ctx
    )
    model.train()
    toks, elapsed = 0, 0.0
    with deterministic(dev):
        for i in range(warmup + steps):
            batch = sampler.batch(i)
            n = int(batch.seq_len.sum())
            _sync(dev)
            t0 = time.perf_counter()
            batch = batch.to(dev)
            with autocast_context(dev, autocast):
                loss = answer_loss(model(batch.tokens), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec.optim.grad_clip)
            opt.step()
            _sync(dev)
            if i >= warmup:
                elapsed += time.perf_counter() - t0
                toks += n
    return toks / elapsed, toks / steps


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
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    for key, on_gpu, on_cpu in (
        ("steps", 20, 2),
        ("warmup", 3, 1),
        ("eval_examples", 1024, 128),
        ("score_examples", 256, 16),
    ):
        if getattr(args, key) is None:
            setattr(args, key, on_gpu if gpu else on_cpu)
    spec = TrainSpec.from_dict(SPEC)
    load_before = os.getloadavg()[0]
    modes = ["off"] + (["bf16"] if autocast_enabled(dev, "bf16") else [])
    rows = []
    for mode in modes:
        tok_s, per_batch = train_tokens_per_s(spec, dev, mode, args.steps, args.warmup)
        steps_day = tok_s / per_batch * 86_400
        rows.append((f"training, autocast {mode}", f"{tok_s:,.0f} tokens/s", f"{steps_day:,.0f}"))
        print(f"done training ({mode})", flush=True)
    if args.eval_examples:
        ex_s = eval_examples_per_s(spec, dev, args.eval_examples)
        rows.append(("evaluation, reverse add L=16", f"{ex_s:,.0f} examples/s", ""))
    if args.score_examples:
        ex_s = score_examples_per_s(spec, dev, args.score_examples)
        rows.append(("mean-ablation scoring, 36 heads, L=16", f"{ex_s:,.1f} examples/s", ""))
    m = spec.model
    print(
        f"\n{describe(dev)}; torch {torch.__version__}; paper preset ({m.n_layers}L "
        f"{m.n_heads}H d{m.d_model}, n_ctx {m.n_ctx}); arith_a at the paper's lengths, batch "
        f"{spec.train.batch_size}; {args.warmup} warm-up + {args.steps} timed steps; "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print("| what | throughput | training steps per day |")
    print("|---|---|---|")
    for what, thr, day in rows:
        print(f"| {what} | {thr} | {day} |")


if __name__ == "__main__":
    main()
