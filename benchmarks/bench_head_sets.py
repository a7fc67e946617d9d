"""Benchmark: every head set of size 1-3 (696 sets for 16 heads) by ``interp.causal.head_sets``.

The zoo model ``<ZOO_FAMILY>both_s0`` (``b4_both_s0``; BENCHMARKS.md's rows were measured on
``r4_both_s0``, the same architecture, whose weights are retired, and ``a4_both_s0``; 4
layers x 4 heads, d_model 128) on reverse add at two lengths (one in the training range, one in the
transfer range) x ``--n`` examples each. Two ways:

* ``interp.causal.head_sets.set_effects``: one cached clean pass per layout group, then a
  depth-first
  walk of the trie of set prefixes over the layers: each distinct set of heads in layers ``<= l``
  (shared by every set that agrees there) is one pass of layer ``l`` alone on its parent's
  output, all children of one node batched in one pass with a per-replica head mask, and only
  the last layer runs to logits, once per set (1100 single-layer passes per example for the 696
  sets, against 2380 for the earlier rerun-from-the-lowest-layer batching and 2784 for the loop);
* a plain loop: per set, per length, one full ``model.run_with_hooks`` forward with ``hook_z``
  hooks that put the per-position mean into the set's heads. It is timed on a random sample of
  ``--sample`` sets and **extrapolated** to all 696 (time per set x 696), stated as such.

Both give the same per-example exact-match verdicts on the sampled sets (asserted).

Run: ``.venv/bin/python benchmarks/bench_head_sets.py [--n 512] [--sample 24] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from transformer_lens.utilities import get_act_name

from interp.causal.head_sets import ablate_sets, all_head_sets, set_effects
from interp.core.resources import ZOO_FAMILY
from interp.scoring.ablation import reference_mean
from interp.scoring.evaluate import exact_match_from_logits
from interp.tasks.batches import layout_groups, task_batch
from interp.zoo import registry as zoo


def _plain(model, batch, heads, mean) -> torch.Tensor:
    by_layer: dict[int, list[int]] = {}
    for layer, h in heads:
        by_layer.setdefault(layer, []).append(h)

    def hook_for(layer):
        def hook(z, hook):
            z = z.clone()
            for h in by_layer[layer]:
                z[:, :, h] = mean[layer, : z.shape[1], h]
            return z

        return hook

    hooks = [(get_act_name("z", layer), hook_for(layer)) for layer in by_layer]
    with torch.no_grad():
        logits = model.run_with_hooks(batch.tokens, fwd_hooks=hooks)
    return exact_match_from_logits(logits, batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512, help="examples per length")
    ap.add_argument("--lengths", default="3,5", help="two lengths (training, transfer)")
    ap.add_argument("--sample", type=int, default=24, help="sets timed in the plain loop")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8192, help="rows per batched pass")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    name = f"{ZOO_FAMILY}both_s0"
    model, cfg = zoo.load(name)
    lengths = [int(x) for x in args.lengths.split(",")]
    batches = {f"L{L}": task_batch(model, "reverse_add", [L], args.n, seed=11) for L in lengths}
    sets = all_head_sets(cfg.n_layers, cfg.n_heads, 3)
    print(f"model {name} ({cfg.n_layers}L {cfg.n_heads}H d{cfg.d_model}); {len(sets)} sets; "
          f"lengths {lengths} x {args.n} examples; {args.threads} thread(s)")  # fmt: skip

    w0, c0 = time.perf_counter(), time.process_time()
    df = set_effects(model, batches, sets, batch_size=args.batch_size)
    w_fast, c_fast = time.perf_counter() - w0, time.process_time() - c0
    print(f"head_sets.set_effects, all {len(sets)} sets: {w_fast:.1f} s wall, {c_fast:.1f} s CPU")

    rng = np.random.default_rng(0)
    sample = [sets[i] for i in sorted(rng.choice(len(sets), args.sample, replace=False))]
    means = {}
    for name, b in batches.items():
        ((key, rows),) = layout_groups(b).items()
        means[name] = reference_mean(model, key, int(b.seq_len.max()) - 1, b, 512)
    w0, c0 = time.perf_counter(), time.process_time()
    verdicts = {name: [_plain(model, b, s, means[name]) for s in sample]
                for name, b in batches.items()}  # fmt: skip
    w_loop, c_loop = time.perf_counter() - w0, time.process_time() - c0
    scale = len(sets) / len(sample)
    print(f"plain run_with_hooks loop, {len(sample)} sampled sets: {w_loop:.1f} s wall, "
          f"{c_loop:.1f} s CPU; extrapolated to {len(sets)} sets: {w_loop * scale:.1f} s wall, "
          f"{c_loop * scale:.1f} s CPU")  # fmt: skip
    print(f"speed-up (extrapolated loop / batched): wall {w_loop * scale / w_fast:.2f}x, "
          f"CPU {c_loop * scale / c_fast:.2f}x")  # fmt: skip
    for name, b in batches.items():
        em, _, _, _ = ablate_sets(model, b, sample, batch_size=args.batch_size)
        for i in range(len(sample)):
            assert torch.equal(em[i], verdicts[name][i]), (name, sample[i])
    print("verdicts identical on the sampled sets; d_id range", df[f"d_L{lengths[0]}"].min(),
          df[f"d_L{lengths[0]}"].max())  # fmt: skip


if __name__ == "__main__":
    main()
