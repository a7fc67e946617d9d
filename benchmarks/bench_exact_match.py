"""Benchmark: teacher-forced exact match vs autoregressive greedy decoding.

:func:`interp.scoring.evaluate.exact_match` scores an example in one teacher-forced forward pass;
:func:`interp.scoring.evaluate.greedy_decode` generates the answer token by token. The two must
give the
same verdict on every example (asserted here, per example); the table shows the speed-up.

The model is the ``mini`` preset (``models/presets/mini.json``, formerly ``cpu``; the output
names its size). By
default it is trained briefly here on ``reverse_add`` lengths 1..6 (``--train-steps``, a few
minutes on 2 cores), so it is right on some short examples and wrong on long ones: a random model
is wrong everywhere, and agreement on all-wrong verdicts would prove little. ``--run DIR``
evaluates a trained run instead. The evaluation sets are the fixed ones of
:func:`interp.tasks.batches.eval_batches`: 1024 examples at every length 1..12.

Run: ``.venv/bin/python benchmarks/bench_exact_match.py [--train-steps 400] [--run DIR]
[--n 1024] [--max-length 12] [--threads N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from transformer_lens import HookedTransformer

from interp.runs.loader import load_run
from interp.runs.spec import TrainSpec
from interp.runs.train import train
from interp.scoring.evaluate import exact_match, greedy_decode
from interp.tasks.batches import eval_batches


def briefly_trained(steps: int, max_length: int, threads: int) -> tuple[HookedTransformer, str]:
    """The ``mini`` preset trained ``steps`` steps on reverse_add 1..6 (n_ctx fits max_length)."""
    spec = TrainSpec.from_dict(
        {
            "name": "bench_exact_match",
            "main": "reverse_add",
            "tasks": [{"name": "reverse_add", "lengths": [1, 6]}],
            "model": {"preset": "mini"},
            "optim": {"lr": 3e-3, "warmup_steps": max(1, steps // 10)},
            "train": {
                "steps": steps,
                "batch_size": 64,
                "log_every": max(1, steps // 4),
                "threads": threads,
            },
            "eval": {"max_length": max_length, "examples": 8},
        }
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        model = train(spec, d, progress=False)
    what = (
        f"mini preset trained {steps} steps (batch 64, lr 3e-3) on reverse_add 1..6 "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    return model.eval(), what


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=None, help="evaluate this trained run instead of training")
    ap.add_argument("--step", type=int, default=None, help="checkpoint of --run (default last)")
    ap.add_argument("--train-steps", type=int, default=400)
    ap.add_argument("--task", default="reverse_add")
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--max-length", type=int, default=12)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:
        loaded = load_run(args.run, args.step)
        model, what = loaded.model, f"run {args.run} at step {loaded.step}"
    else:
        model, what = briefly_trained(args.train_steps, args.max_length, args.threads)

    c = model.cfg
    what += (
        f" ({c.n_layers}L {c.n_heads}H d{c.d_model}, "
        f"{sum(p.numel() for p in model.parameters()):,} params)"
    )
    lengths = list(range(1, args.max_length + 1))
    batches = eval_batches(args.task, lengths, args.n, seed=0, n_ctx=model.cfg.n_ctx)
    rows = []
    for L, batch in batches.items():
        t0 = time.perf_counter()
        tf = exact_match(model, batch)
        t_tf = time.perf_counter() - t0
        t0 = time.perf_counter()
        gd = greedy_decode(model, batch)
        t_gd = time.perf_counter() - t0
        assert torch.equal(tf, gd), f"verdicts differ at length {L}"
        rows.append((L, tf.float().mean().item(), gd.float().mean().item(), t_tf, t_gd))
        print(f"done length {L}", flush=True)

    print(
        f"\n{what}; torch {torch.__version__}, {torch.get_num_threads()} threads; task "
        f"{args.task}, {args.n} examples per length; every per-example verdict identical"
    )
    print()
    print(
        "| length | exact match (teacher-forced) | greedy decoding | teacher-forced s | greedy s "
        "| speed-up |"
    )
    print("|---|---|---|---|---|---|")
    for L, a_tf, a_gd, t_tf, t_gd in rows:
        print(f"| {L} | {a_tf:.3f} | {a_gd:.3f} | {t_tf:.2f} | {t_gd:.2f} | {t_gd / t_tf:.1f}x |")
    tot_tf, tot_gd = sum(r[3] for r in rows), sum(r[4] for r in rows)
    acc_tf = sum(r[1] for r in rows) / len(rows)
    acc_gd = sum(r[2] for r in rows) / len(rows)
    print(
        f"| all ({len(rows) * args.n} examples) | {acc_tf:.3f} | {acc_gd:.3f} | {tot_tf:.2f} "
        f"| {tot_gd:.2f} | {tot_gd / tot_tf:.1f}x |"
    )


if __name__ == "__main__":
    main()
