"""Benchmark: how much of the computed ``batch x pos`` grid is real tokens, with length bucketing.

:class:`interp.tasks.batches.MixtureSampler` draws a pool of ``batch_size * n_buckets`` examples,
sorts it
by sequence length and cuts it into ``n_buckets`` batches (``n_buckets = 1`` disables this). Every
padded position costs as much compute as a real one, so the real-token fraction is the share of
training compute that is not wasted. Measured on the ``arith_a`` and ``maze_a`` mixtures at CPU
scale (the lengths the CPU experiments use) and at the paper's lengths, batch 128, averaged over
the first 64 batches of seed 0 (a whole number of pools for every ``n_buckets``).

Run: ``.venv/bin/python benchmarks/bench_padding.py [--batches 64] [--batch-size 128]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from interp.tasks.batches import MixtureSampler, TaskSpec

MIXTURES: dict[str, list[TaskSpec]] = {
    "arith_a, CPU scale (add 1..6; no carry, carry only 1..12)": [
        TaskSpec("reverse_add", 1, 6),
        TaskSpec("no_carry", 1, 12),
        TaskSpec("carry_only", 1, 12),
    ],
    "arith_a, paper scale (add 1..16; no carry, carry only 1..32)": [
        TaskSpec("reverse_add", 1, 16),
        TaskSpec("no_carry", 1, 32),
        TaskSpec("carry_only", 1, 32),
    ],
    "maze_a, CPU scale (DFS 2..16 nodes; shortest path 2..32)": [
        TaskSpec("dfs_trace", 2, 16),
        TaskSpec("shortest_path", 2, 32),
    ],
    "maze_a, paper scale (DFS 2..32 nodes; shortest path 2..64)": [
        TaskSpec("dfs_trace", 2, 32),
        TaskSpec("shortest_path", 2, 64),
    ],
}
BUCKETS = (1, 8, 16)


def measure(specs: list[TaskSpec], n_buckets: int, batches: int, batch_size: int) -> tuple:
    """Mean real fraction, mean padded width, and sampling time per batch (ms)."""
    sampler = MixtureSampler(specs, batch_size, seed=0, n_buckets=n_buckets)
    t0 = time.perf_counter()
    got = [sampler.batch(step) for step in range(batches)]
    ms = 1000 * (time.perf_counter() - t0) / batches
    real = sum(int(b.seq_len.sum()) for b in got)
    computed = sum(b.tokens.numel() for b in got)
    return real / computed, float(np.mean([b.n_pos for b in got])), ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    print(
        f"batch {args.batch_size}, first {args.batches} batches of seed 0; real fraction = "
        "non-pad tokens / (batch x padded width), over all batches"
    )
    print()
    print(
        "| mixture | n_buckets | real-token fraction | mean padded width | "
        "compute per real token vs no bucketing | sampling ms/batch |"
    )
    print("|---|---|---|---|---|---|")
    for name, specs in MIXTURES.items():
        base = None
        for nb in BUCKETS:
            frac, width, ms = measure(specs, nb, args.batches, args.batch_size)
            base = base or frac
            print(f"| {name} | {nb} | {frac:.3f} | {width:.1f} | {base / frac:.2f}x | {ms:.1f} |")


if __name__ == "__main__":
    main()
