"""Benchmark: CPU training precision: float32 vs bf16 autocast, eager vs ``torch.compile``.

The recipe is the zoo's ``models/zoo/specs/r4_both_s0.toml`` (the ``cpu`` preset: 4 layers,
4 heads, d_model 128, RMSNorm + gated SiLU with d_mlp 344, RoPE; batch 128, 8 length buckets).
Every contender runs in a **fresh process** (so no mode inherits another's caches or thread
pool) and runs the training loop's own step, :func:`interp.runs.train.train_step`, with
``[train] autocast`` and ``[train] compile`` set as ``interp train`` would set them. The timer
covers batch generation *and* the step, from the real sampler, so the figure is what a run gets.

Modes: ``fp32`` (baseline), ``bf16`` (autocast), ``fp32+compile``, ``bf16+compile``.
Setups: one process with 1 thread; one process with 2 threads; two 1-thread processes at once
(aggregate steps/s, what two queued runs get together).

Per contender: ``--warmup`` steps first (compile time lands here: every recompile for the
bucketed sequence lengths), then ``--steps`` timed steps. Reported: steps/s, real (non-pad)
tokens/s, the warm-up's wall time, and the ratio to ``fp32`` eager in the same setup.

Run on an idle machine (check ``uptime``; pause training queues with SIGSTOP)::

    .venv/bin/python benchmarks/bench_precision.py [--steps 150] [--warmup 60]
        [--setups 1x1,1x2,2x1] [--modes fp32,bf16,fp32+compile,bf16+compile] [--profile]
        [--emulated-bf16]

``--emulated-bf16`` lets the bf16 modes run on a CPU without bfloat16 matrix instructions
(``interp train`` refuses them there): it measures how much slower the conversion path is, the
reason for that refusal.

``--profile`` adds, for each mode, the top operators of a 1-thread profile of 20 steady steps
(where the time goes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from interp.core.device import compile_model, cpu_bf16_supported, model_device
from interp.models.factory import build_model
from interp.runs.spec import load_spec
from interp.runs.train import make_optimizer, train_step
from interp.tasks.batches import MixtureSampler

SPEC = Path(__file__).resolve().parent.parent / "models" / "zoo" / "specs" / "r4_both_s0.toml"
MODES = ("fp32", "bf16", "fp32+compile", "bf16+compile")
SETUPS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}
"""Setup name -> (processes, threads per process)."""


def worker(
    mode: str, threads: int, warmup: int, steps: int, profile: bool, emulated: bool = False
) -> dict:
    """Time ``warmup + steps`` training steps of the recipe in this process.

    ``emulated`` bypasses the hardware check behind ``[train] autocast = "bf16"``, so bf16 runs
    by conversion on a CPU without bfloat16 matrix instructions.
    """
    torch.set_num_threads(threads)
    if emulated:
        import interp.core.device as device_module

        device_module.cpu_bf16_supported = lambda: True
    spec = load_spec(SPEC)
    spec.train.threads = threads
    spec.train.autocast = "bf16" if mode.startswith("bf16") else "off"
    spec.train.compile = mode.endswith("compile")
    sampler = MixtureSampler(
        spec.tasks, spec.train.batch_size, spec.seed, spec.train.n_buckets, n_ctx=spec.model.n_ctx
    )
    model = build_model(spec.model, torch.device("cpu"))
    model.train()
    opt = make_optimizer(model, spec)
    fwd = compile_model(model, model_device(model)) if spec.train.compile else None
    t0 = time.perf_counter()
    losses = []
    for i in range(warmup):
        losses.append(train_step(model, opt, spec, sampler.batch(i), i, forward=fwd).item())
    t_warm = time.perf_counter() - t0
    toks = 0
    t1 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        b = sampler.batch(i)
        toks += int(b.seq_len.sum())
        losses.append(train_step(model, opt, spec, b, i, forward=fwd).item())
    dt = time.perf_counter() - t1
    out = {
        "mode": mode,
        "threads": threads,
        "warmup_s": t_warm,
        "steps_s": steps / dt,
        "tok_s": toks / dt,
        "final_loss": losses[-1],
    }
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as prof

        with prof(activities=[ProfilerActivity.CPU]) as p:
            for i in range(warmup + steps, warmup + steps + 20):
                train_step(model, opt, spec, sampler.batch(i), i, forward=fwd)
        out["profile"] = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    return out


def _launch(mode: str, threads: int, a: argparse.Namespace, profile: bool = False):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--worker", mode, "--threads", str(threads)]
    cmd += ["--steps", str(a.steps), "--warmup", str(a.warmup)]
    if profile:
        cmd.append("--profile")
    if a.emulated_bf16:
        cmd.append("--emulated-bf16")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def run_setup(mode: str, setup: str, a: argparse.Namespace) -> dict:
    n, threads = SETUPS[setup]
    procs = [_launch(mode, threads, a) for _ in range(n)]
    outs = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"bench_precision: worker {mode} {setup} failed")
        outs.append(json.loads(stdout))
    return {
        "steps_s": sum(o["steps_s"] for o in outs),
        "tok_s": sum(o["tok_s"] for o in outs),
        "warmup_s": max(o["warmup_s"] for o in outs),
        "final_loss": outs[0]["final_loss"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=150, help="timed steps per contender")
    p.add_argument("--warmup", type=int, default=60, help="untimed steps first (compilation)")
    p.add_argument("--setups", default="1x1,1x2,2x1")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--profile", action="store_true", help="1-thread operator profile per mode")
    p.add_argument(
        "--emulated-bf16",
        action="store_true",
        help="run the bf16 modes even without bfloat16 matrix instructions (by conversion)",
    )
    p.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        out = worker(a.worker, a.threads, a.warmup, a.steps, a.profile, a.emulated_bf16)
        print(json.dumps(out))
        return
    modes = a.modes.split(",")
    setups = a.setups.split(",")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, bf16 matrix instructions: {cpu_bf16_supported()}, "
        f"load before: {os.getloadavg()[0]:.2f}"
    )
    print(f"recipe: {SPEC.name}; {a.warmup} warm-up + {a.steps} timed steps per contender\n")
    print("| setup | mode | steps/s | tokens/s | warm-up (s) | vs fp32 eager | loss at end |")
    print("|---|---|---|---|---|---|---|")
    for setup in setups:
        base = None
        for mode in modes:
            r = run_setup(mode, setup, a)
            if mode == "fp32":
                base = r["steps_s"]
            ratio = f"{r['steps_s'] / base:.2f}x" if base else "n/a"
            print(
                f"| {setup} | {mode} | {r['steps_s']:.2f} | {r['tok_s']:,.0f} | "
                f"{r['warmup_s']:.0f} | {ratio} | {r['final_loss']:.4f} |",
                flush=True,
            )
    if a.profile:
        for mode in modes:
            pr = _launch(mode, 1, a, profile=True)
            out = json.loads(pr.communicate()[0])
            print(f"\n### profile: {mode}, 1 thread, 20 steady steps\n```\n{out['profile']}```")


if __name__ == "__main__":
    main()
