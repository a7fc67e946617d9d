"""Benchmark: all-heads mean ablation with ``interp.scoring.heads.score_heads`` vs
TransformerLens's loop.

For each model size, the same ``reverse_add`` examples (one length, random weights; timing does
not depend on training) are scored two ways, side by side in one process:

* ``score_heads(..., "mean_ablation", "exact_match")``: one cached clean pass, then per layer one
  forward over ``n_heads`` replicas that recomputes only what the ablated head can change (see
  ``interp.scoring.heads``);
* TransformerLens's ``patching.get_act_patch_attn_head_out_all_pos`` with the per-position mean
  ``z`` as the "clean cache" (one full forward per head), under ``torch.no_grad()``, plus the
  clean forward both need.

The scores must agree (max abs difference printed). A second table times attribution patching
against activation patching (both from ``score_heads``, logprob metric).

Models: the ``cpu`` preset (4 layers, 4 heads, d_model 128, RMSNorm + gated SiLU with d_mlp 344:
the zoo's ``r4_*`` family), the same shape with LayerNorm + GELU and d_mlp 512 (the ``a4_*``
family, the ``cpu`` preset before it), the ``mini``
preset (``models/presets/mini.json``, 2 layers; it was the ``cpu`` preset when BENCHMARKS.md
was written) (both with 1024 examples), and the paper-size model (6 layers, 6 heads,
d_model 384) with 128
examples by default, so that the script finishes in minutes on 2 CPU cores (its TransformerLens
loop alone is 38 full forward passes). Torch runs one thread by default and speed-ups are
ratios of process CPU time, which on a shared machine measures the work rather than the
neighbours' load; wall times are printed too.

Run: ``.venv/bin/python benchmarks/bench_heads.py [--n 1024] [--paper-n 128] [--length 4]
[--threads N]``.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformer_lens import ActivationCache, patching
from transformer_lens.utilities import get_act_name

from interp.models.architecture import ModelConfig, load_preset
from interp.models.factory import build_model
from interp.scoring.ablation import mean_z
from interp.scoring.evaluate import exact_match_from_logits
from interp.scoring.heads import score_heads
from interp.tasks.batches import task_batch


def _preset_row(name: str) -> tuple[str, ModelConfig]:
    cfg = ModelConfig.from_dict(load_preset(name))
    shape = f"{cfg.n_layers}L {cfg.n_heads}H d{cfg.d_model} {cfg.norm}+{cfg.mlp}"
    return f"presets/{name}.json ({shape})", cfg


MODELS = dict(
    [
        _preset_row("cpu"),
        (
            "4L 4H d128 ln+gelu d_mlp 512 (a4_* family)",
            ModelConfig(
                n_layers=4, n_heads=4, d_model=128, d_mlp=512, norm="ln", mlp="gelu", n_ctx=128
            ),
        ),
        _preset_row("mini"),
        ("paper size (6L 6H d384)", ModelConfig(n_layers=6, n_heads=6, d_model=384, n_ctx=128)),
    ]
)
PAPER = "paper size (6L 6H d384)"


def tl_mean_ablation(model, batch) -> torch.Tensor:
    """Clean-minus-ablated exact match per head with TransformerLens's patching loop."""
    with torch.no_grad():
        mz, _ = mean_z(model, batch)
        cache = ActivationCache(
            {
                get_act_name("z", layer): mz[layer][None].expand(len(batch), -1, -1, -1)
                for layer in range(model.cfg.n_layers)
            },
            model,
        )

        def metric(logits: torch.Tensor) -> torch.Tensor:
            return exact_match_from_logits(logits, batch).double().mean()

        clean = metric(model(batch.tokens))
        ablated = patching.get_act_patch_attn_head_out_all_pos(model, batch.tokens, cache, metric)
    return (clean - ablated.double()).flatten()


def timed(fn, *args):
    """Run ``fn(*args)``; return its output, wall seconds and process CPU seconds.

    On a shared machine wall time depends on the other jobs; with one torch thread the process
    CPU time measures the work itself, so ratios use CPU time.
    """
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1024, help="examples (CPU preset)")
    ap.add_argument("--paper-n", type=int, default=128, help="examples (paper-size model)")
    ap.add_argument("--length", type=int, default=4)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0: torch default); ratios use "
        "process CPU time, which measures the work itself only with one thread",
    )
    ap.add_argument("--only", default=None, help="substring of a model name to run")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"reverse_add length {args.length}"
    )
    rows_abl, rows_attr = [], []
    for name, cfg in MODELS.items():
        if args.only and args.only not in name:
            continue
        model = build_model(cfg).eval()
        n = args.paper_n if name == PAPER else args.n
        batch = task_batch(model, "reverse_add", [args.length], n)
        score_heads(model, batch.select(range(8)), "mean_ablation")  # warm-up, not timed
        ours, w_ours, c_ours = timed(score_heads, model, batch, "mean_ablation", "exact_match")
        ref, w_tl, c_tl = timed(tl_mean_ablation, model, batch)
        diff = (torch.tensor(ours["score"].to_numpy()) - ref).abs().max().item()
        rows_abl.append((name, len(batch), w_tl, c_tl, w_ours, c_ours, diff))
        _, w_act, c_act = timed(score_heads, model, batch, "activation_patching", "logprob")
        _, w_att, c_att = timed(score_heads, model, batch, "attribution_patching", "logprob")
        rows_attr.append((name, len(batch), w_act, c_act, w_att, c_att))
        print(f"done {name}", flush=True)

    print("\nAll-heads mean ablation (exact match). Times: wall s / CPU s; speed-up from CPU s.\n")
    print("| model | examples | TL patching loop | score_heads | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|")
    for name, n, wa, ca, wb, cb, d in rows_abl:
        times = f"{wa:.1f} / {ca:.1f} | {wb:.1f} / {cb:.1f}"
        print(f"| {name} | {n} | {times} | {ca / cb:.2f}x | {d:.1e} |")
    print("\nAll-heads patching (logprob), both from score_heads. Times: wall s / CPU s.\n")
    print("| model | examples | activation patching | attribution patching | ratio |")
    print("|---|---|---|---|---|")
    for name, n, wa, ca, wb, cb in rows_attr:
        print(f"| {name} | {n} | {wa:.1f} / {ca:.1f} | {wb:.1f} / {cb:.1f} | {ca / cb:.1f}x |")


if __name__ == "__main__":
    main()
