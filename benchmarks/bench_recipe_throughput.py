"""Benchmark: training throughput of the 4-layer CPU recipe, and how to spend two cores.

The recipe is the zoo's arithmetic group-A run (``models/zoo/specs/r4_both_s0.toml``: the
``cpu`` preset, 4 layers, 4 heads, d_model 128, RMSNorm + gated SiLU with d_mlp 344, RoPE;
reverse add 1..6 with no carry and carry only 1..12; batch 128, 8 length buckets; ``--spec
a4_both_s0.toml`` for the former LayerNorm + GELU recipe). Every contender runs
:func:`interp.runs.train.train` itself (the loop ``interp train`` runs), stopped after ``--steps``
steps before its first checkpoint, so the numbers are what a real run gets. Measured:

* one process, 1 thread;
* one process, 2 threads;
* two processes at once, 1 thread each (the aggregate is what two runs in parallel get);
* ``torch.compile`` of the model (default inductor backend), through the training loop's own
  step (:func:`interp.runs.train.train_step`): compile time (the first steps, which include every
  recompile for the bucketed sequence lengths), steady-state speed-up, and the largest loss
  difference over the first 50 steps against eager. Eager and compiled each run in a fresh
  process (1 thread, or ``--compile-threads``; ``--pairs`` times, alternating): timed in the
  process that had just run the 2-thread contender, eager came out 20% slow (2.41 vs 2.97
  steps/s for ``r4_both_s0``), which inflated the speed-up to 1.51x.

Run on an idle machine (check ``uptime``): ``.venv/bin/python benchmarks/bench_recipe_throughput.py
[--steps 150] [--no-compile] [--spec a4_both_s0.toml] [--compile-only] [--compile-threads 2]
[--pairs 4]`` (``--spec``: another recipe from ``models/zoo/specs``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from interp.core.device import compile_model, model_device
from interp.models.factory import build_model
from interp.runs.spec import TrainSpec, load_spec
from interp.runs.train import make_optimizer, train, train_step
from interp.tasks.batches import MixtureSampler

SPECS = Path(__file__).resolve().parent.parent / "models" / "zoo" / "specs"
DEFAULT_SPEC = "r4_both_s0.toml"
"""The recipe measured unless ``--spec`` names another (BENCHMARKS.md names each one)."""


def _spec(path: Path, threads: int) -> TrainSpec:
    spec = load_spec(path)
    spec.train.threads = threads
    return spec


def _tokens(spec: TrainSpec, n: int) -> int:
    """Real (non-pad) tokens in the first ``n`` batches of the run."""
    s = MixtureSampler(
        spec.tasks, spec.train.batch_size, spec.seed, spec.train.n_buckets, n_ctx=spec.model.n_ctx
    )
    return sum(int(s.batch(i).seq_len.sum()) for i in range(n))


def time_train(path: Path, threads: int, steps: int) -> dict[str, float]:
    """Wall time of ``interp.runs.train.train`` for ``steps`` steps (model build included)."""
    spec = _spec(path, threads)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        train(spec, d, progress=False, stop_after=steps)
        dt = time.perf_counter() - t0
    return {"steps_s": steps / dt, "tok_s": _tokens(spec, steps) / dt}


def time_mode(path: Path, mode: str, steps: int, threads: int = 1) -> dict:
    """50 + ``steps`` steps of the training step, eager or compiled, in this process.

    Returns:
        ``first50_s`` (includes compilation), ``steps_s`` (steady state, the last ``steps``)
        and ``losses50``, the first 50 losses.
    """
    torch.set_num_threads(threads)
    spec = _spec(path, threads)
    sampler = MixtureSampler(
        spec.tasks, spec.train.batch_size, spec.seed, spec.train.n_buckets, n_ctx=spec.model.n_ctx
    )
    model = build_model(spec.model)
    opt = make_optimizer(model, spec)
    fwd = compile_model(model, model_device(model)) if mode == "compiled" else model
    times, ls = [], []
    for i in range(50 + steps):
        t0 = time.perf_counter()
        loss = train_step(model, opt, spec, sampler.batch(i), i, forward=fwd)
        ls.append(loss.item())
        times.append(time.perf_counter() - t0)
    return {"first50_s": sum(times[:50]), "steps_s": steps / sum(times[50:]), "losses50": ls[:50]}


def time_compile(spec_name: str, steps: int, threads: int = 1, pairs: int = 2) -> dict[str, float]:
    """Eager vs ``torch.compile`` on the same batches and initial weights, each mode in a fresh
    process with ``threads`` threads, ``pairs`` times alternating (eager, compiled, eager, ...);
    means over the pairs."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    runs: dict[str, list[dict]] = {"eager": [], "compiled": []}
    for mode in ("eager", "compiled") * pairs:
        cmd = [sys.executable, __file__, "--mode", mode, "--steps", str(steps), "--spec", spec_name]
        cmd += ["--compile-threads", str(threads)]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=True).stdout
        runs[mode].append(json.loads(out))
    res: dict[str, float] = {}
    for mode, rs in runs.items():
        res[f"{mode}_first50_s"] = sum(r["first50_s"] for r in rs) / len(rs)
        res[f"{mode}_steps_s"] = sum(r["steps_s"] for r in rs) / len(rs)
    res["speedup"] = res["compiled_steps_s"] / res["eager_steps_s"]
    res["max_loss_diff_50"] = max(
        abs(a - b)
        for a, b in zip(runs["eager"][0]["losses50"], runs["compiled"][0]["losses50"], strict=True)
    )
    return res


def throughput_table(path: Path, spec_name: str, steps: int) -> None:
    """Print the 1 thread / 2 threads / 2 processes table for the recipe at ``path``."""
    one = time_train(path, 1, steps)
    two = time_train(path, 2, steps)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", "1", "--steps", str(steps), "--spec", spec_name]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    pair = [json.loads(pr.communicate()[0]) for pr in procs]
    agg = sum(r["steps_s"] for r in pair)
    print(f"recipe: {path.name}, {steps} steps of interp.runs.train.train per contender\n")
    print("| setup | steps/s | tokens/s | 4000 steps (min) | ratio to 1 process x 1 thread |")
    print("|---|---|---|---|---|")
    rows = [
        ("1 process x 1 thread", one["steps_s"], one["tok_s"]),
        ("1 process x 2 threads", two["steps_s"], two["tok_s"]),
        ("2 processes x 1 thread (aggregate)", agg, sum(r["tok_s"] for r in pair)),
    ]
    for name, sps, tps in rows:
        per_run = sps / 2 if name.startswith("2 processes") else sps
        print(
            f"| {name} | {sps:.2f} | {tps:,.0f} | {4000 / per_run / 60:.1f} "
            f"| {sps / one['steps_s']:.2f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--spec", default=DEFAULT_SPEC, help="a spec file in models/zoo/specs")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--compile-only", action="store_true", help="skip the throughput table")
    p.add_argument("--compile-threads", type=int, default=1, help="threads per compile contender")
    p.add_argument("--pairs", type=int, default=2, help="eager/compiled pairs, alternating")
    p.add_argument("--mode", choices=("eager", "compiled"), help=argparse.SUPPRESS)
    a = p.parse_args()
    path = SPECS / a.spec
    if a.worker is not None:
        print(json.dumps(time_train(path, a.worker, a.steps)))
        return
    if a.mode is not None:
        print(json.dumps(time_mode(path, a.mode, a.steps, a.compile_threads)))
        return
    if not a.compile_only:
        throughput_table(path, a.spec, a.steps)
    if not a.no_compile:
        c = time_compile(a.spec, a.steps, a.compile_threads, a.pairs)
        print(
            f"\n| torch.compile ({a.compile_threads} thread(s), fresh process per mode, "
            f"mean of {a.pairs}) | value |\n|---|---|"
        )
        for k, v in c.items():
            print(f"| {k} | {v:.4g} |")


if __name__ == "__main__":
    main()
