"""Benchmark: training throughput of the factory's HookedTransformer vs a plain-PyTorch twin.

Both models have the identical architecture (RMSNorm, gated SiLU MLP, RoPE on every head
dimension, causal attention, TransformerLens's bias layout), the same parameter count (asserted)
and the same initial weights (copied from the HookedTransformer; the logits are checked to
agree). They train on the same ``arith_a`` batches (reverse_add 1..6, no_carry and carry_only
1..12, batch 128) from :class:`interp.tasks.batches.MixtureSampler` with the same loss
(:func:`interp.runs.train.answer_loss`), grad clipping and AdamW settings as
:func:`interp.runs.train.train`.
The two are timed side by side in one process, alternating which goes first, over several
repeats; the table reports the median tokens/s (real, non-pad tokens) and the ratio
HookedTransformer / reference. Two sizes are measured: 4 layers, 4 heads, d_model 128 (the
original CPU preset, now the ``cpu`` preset again) and the ``mini`` preset
(``models/presets/mini.json``, the 2-layer model that was the ``cpu`` preset when this was
measured).

The reference is what one would write by hand: fused QKV and gate/up projections, one
``F.rms_norm`` per norm, RoPE by ``cat``, ``F.scaled_dot_product_attention(is_causal=True)``.
A second table times one block's components (forward+backward) to locate the difference.

Run: ``.venv/bin/python benchmarks/bench_train_throughput.py [--repeats 7] [--steps 4]
[--threads N] [--only cpu]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformer_lens import HookedTransformer

from interp.models.factory import build_model
from interp.runs.spec import TrainSpec
from interp.runs.train import answer_loss, make_optimizer
from interp.tasks.batches import Batch, MixtureSampler

DATA = {
    "name": "bench_arith_a",
    "main": "reverse_add",
    "tasks": [
        {"name": "reverse_add", "lengths": [1, 6]},
        {"name": "no_carry", "lengths": [1, 12]},
        {"name": "carry_only", "lengths": [1, 12]},
    ],
    "train": {"batch_size": 128},
}
MODELS: dict[str, dict] = {
    "original CPU preset": {
        "n_layers": 4,
        "n_heads": 4,
        "d_model": 128,
        "positional": "rope",
        "norm": "rms",
        "mlp": "gated_silu",
    },
    "current cpu preset": {"preset": "mini"},
}
SPEC = TrainSpec.from_dict({**DATA, "model": MODELS["original CPU preset"]})  # optimizer settings


class RefBlock(nn.Module):
    """One pre-norm Llama-style block with TransformerLens's parameter layout (biases included)."""

    def __init__(self, d_model: int, n_heads: int, d_mlp: int, n_ctx: int, base: int) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.ln1 = nn.Parameter(torch.ones(d_model))
        self.ln2 = nn.Parameter(torch.ones(d_model))
        self.qkv = nn.Linear(d_model, 3 * d_model)  # W_Q, W_K, W_V and b_Q, b_K, b_V
        self.out = nn.Linear(d_model, d_model)  # W_O, b_O
        self.gate_up = nn.Linear(d_model, 2 * d_mlp, bias=False)  # W_gate, W_in
        self.b_in = nn.Parameter(torch.zeros(d_mlp))  # TL adds b_in after the gating product
        self.down = nn.Linear(d_mlp, d_model)  # W_out, b_out
        # GPT-NeoX-style rotary (TransformerLens's default): rotate the two halves of d_head.
        half = self.d_head // 2
        freq = base ** (torch.arange(half, dtype=torch.float32) / half)
        angles = torch.arange(n_ctx, dtype=torch.float32)[:, None] / freq.repeat(2)[None, :]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def rope(self, x: Tensor) -> Tensor:
        """Rotate ``x`` of shape (batch, head, pos, d_head)."""
        n = x.shape[-2]
        x1, x2 = x.chunk(2, dim=-1)
        return x * self.cos[:n] + torch.cat([-x2, x1], dim=-1) * self.sin[:n]

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        h = F.rms_norm(x, (d,), self.ln1, eps=1e-5)
        q, k, v = self.qkv(h).view(b, n, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        z = F.scaled_dot_product_attention(self.rope(q), self.rope(k), v, is_causal=True)
        x = x + self.out(z.transpose(1, 2).reshape(b, n, d))
        h = F.rms_norm(x, (d,), self.ln2, eps=1e-5)
        gate, up = self.gate_up(h).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up + self.b_in)


class RefModel(nn.Module):
    """Embedding, blocks, final RMSNorm, unembedding (with bias), like the factory's model."""

    def __init__(self, ht: HookedTransformer) -> None:
        super().__init__()
        c = ht.cfg
        self.embed = nn.Parameter(torch.empty(c.d_vocab, c.d_model))
        self.blocks = nn.ModuleList(
            RefBlock(c.d_model, c.n_heads, c.d_mlp, c.n_ctx, c.rotary_base)
            for _ in range(c.n_layers)
        )
        self.ln_final = nn.Parameter(torch.ones(c.d_model))
        self.unembed = nn.Linear(c.d_model, c.d_vocab)
        self.copy_from(ht)

    @torch.no_grad()
    def copy_from(self, ht: HookedTransformer) -> None:
        """Load the HookedTransformer's weights, so both models start identical."""
        self.embed.copy_(ht.W_E)
        for blk, tb in zip(self.blocks, ht.blocks, strict=True):
            a, m = tb.attn, tb.mlp
            blk.ln1.copy_(tb.ln1.w)
            blk.ln2.copy_(tb.ln2.w)
            w = [W.permute(0, 2, 1).reshape(-1, W.shape[1]) for W in (a.W_Q, a.W_K, a.W_V)]
            blk.qkv.weight.copy_(torch.cat(w))
            blk.qkv.bias.copy_(torch.cat([a.b_Q.flatten(), a.b_K.flatten(), a.b_V.flatten()]))
            blk.out.weight.copy_(a.W_O.reshape(-1, a.W_O.shape[-1]).T)
            blk.out.bias.copy_(a.b_O)
            blk.gate_up.weight.copy_(torch.cat([m.W_gate.T, m.W_in.T]))
            blk.b_in.copy_(m.b_in)
            blk.down.weight.copy_(m.W_out.T)
            blk.down.bias.copy_(m.b_out)
        self.ln_final.copy_(ht.ln_final.w)
        self.unembed.weight.copy_(ht.W_U.T)
        self.unembed.bias.copy_(ht.b_U)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed[tokens]
        for blk in self.blocks:
            x = blk(x)
        return self.unembed(F.rms_norm(x, (x.shape[-1],), self.ln_final, eps=1e-5))


def ref_optimizer(model: RefModel) -> torch.optim.AdamW:
    """AdamW with :func:`interp.runs.train.make_optimizer`'s groups.

    That function decays every parameter with ``ndim >= 2``, which in TransformerLens's layout
    includes the ``(n_heads, d_head)`` biases ``b_Q, b_K, b_V``; the fused QKV bias is 1-D here,
    so it is put in the decay group explicitly to keep the optimizer math identical.
    """
    qkv_bias = {id(blk.qkv.bias) for blk in model.blocks}
    decay = [p for p in model.parameters() if p.ndim >= 2 or id(p) in qkv_bias]
    no_decay = [p for p in model.parameters() if p.ndim < 2 and id(p) not in qkv_bias]
    o = SPEC.optim
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": o.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=o.lr,
        betas=o.betas,
    )


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_step(model: nn.Module, opt: torch.optim.Optimizer) -> Callable[[Batch], Tensor]:
    """One training step exactly as :func:`interp.runs.train.train` takes it."""

    def step(batch: Batch) -> Tensor:
        loss = answer_loss(model(batch.tokens), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), SPEC.optim.grad_clip)
        opt.step()
        return loss.detach()

    return step


def run_chunk(step: Callable[[Batch], Tensor], batches: list[Batch]) -> float:
    """Real tokens per second over ``batches``."""
    t0 = time.perf_counter()
    for b in batches:
        step(b)
    dt = time.perf_counter() - t0
    return sum(int(b.seq_len.sum()) for b in batches) / dt


def side_by_side(
    steps: dict[str, Callable[[Batch], Tensor]],
    sampler: MixtureSampler,
    repeats: int,
    n_steps: int,
) -> dict[str, list[float]]:
    """Alternate the contenders on the same batches; rotate who goes first each repeat."""
    names = list(steps)
    results: dict[str, list[float]] = {n: [] for n in names}
    for name in names:  # warm-up: allocator, thread pools, first-call dispatch
        run_chunk(steps[name], [sampler.batch(i) for i in range(2)])
    for r in range(repeats):
        # The same batches for both contenders; consecutive steps, so bucket sizes vary.
        batches = [sampler.batch(2 + r * n_steps + i) for i in range(n_steps)]
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            results[name].append(run_chunk(steps[name], batches))
    return results


def check_equivalence(ht: HookedTransformer, ref: RefModel, batch: Batch) -> float:
    """Max abs logit difference between the two models on one batch (same weights)."""
    with torch.no_grad():
        return (ht(batch.tokens) - ref(batch.tokens)).abs().max().item()


def fwd_bwd_ms(fn: Callable[[Tensor], Tensor], x: Tensor, repeats: int) -> float:
    """Median milliseconds of ``fn(x).sum().backward()`` (input gradient included)."""
    times = []
    for i in range(repeats + 1):
        xi = x.detach().requires_grad_(True)
        t0 = time.perf_counter()
        fn(xi).sum().backward()
        if i:  # the first call is a warm-up
            times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def breakdown(ht: HookedTransformer, ref: RefModel, batch: Batch, repeats: int) -> list[tuple]:
    """Forward+backward time of each component of one block, TL vs reference, same input.

    TransformerLens's block normalises the attention input three times (once each for the
    query, key and value inputs, which only differ with ``use_split_qkv_input``), so its norm is
    timed as three calls.
    """
    tb, rb = ht.blocks[0], ref.blocks[0]
    d = ht.cfg.d_model
    x = ht.embed(batch.tokens).detach()
    h = F.rms_norm(x, (d,), rb.ln1, eps=1e-5).detach()

    def ref_attn(y: Tensor) -> Tensor:
        b, n, _ = y.shape
        q, k, v = rb.qkv(y).view(b, n, 3, rb.n_heads, rb.d_head).permute(2, 0, 3, 1, 4)
        z = F.scaled_dot_product_attention(rb.rope(q), rb.rope(k), v, is_causal=True)
        return rb.out(z.transpose(1, 2).reshape(b, n, d))

    def ref_mlp(y: Tensor) -> Tensor:
        gate, up = rb.gate_up(y).chunk(2, dim=-1)
        return rb.down(F.silu(gate) * up + rb.b_in)

    rows = [
        (
            "attention input norm",
            fwd_bwd_ms(lambda y: tb.ln1(y) + tb.ln1(y) + tb.ln1(y), x, repeats),
            fwd_bwd_ms(lambda y: F.rms_norm(y, (d,), rb.ln1, eps=1e-5), x, repeats),
        ),
        (
            "attention (QKV, RoPE, softmax, O)",
            fwd_bwd_ms(lambda y: tb.attn(y, y, y), h, repeats),
            fwd_bwd_ms(ref_attn, h, repeats),
        ),
        ("gated MLP", fwd_bwd_ms(tb.mlp, h, repeats), fwd_bwd_ms(ref_mlp, h, repeats)),
        ("whole block", fwd_bwd_ms(tb, x, repeats), fwd_bwd_ms(rb, x, repeats)),
    ]
    return rows


def describe(ht: HookedTransformer) -> str:
    c = ht.cfg
    return f"{c.n_layers}L {c.n_heads}H d{c.d_model}, {n_params(ht):,} params, n_ctx {c.n_ctx}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=4, help="training steps per timed chunk")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--only", default=None, help="substring of a model name to run")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the per-component table")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    table, paired_notes, parts = [], [], []
    for name, model_d in MODELS.items():
        if args.only and args.only not in name:
            continue
        spec = TrainSpec.from_dict({**DATA, "model": model_d})
        m = spec.model
        if (m.positional, m.norm, m.mlp) != ("rope", "rms", "gated_silu"):
            print(f"skipped {name}: the reference implements rope/rms/gated_silu only")
            continue
        sampler = MixtureSampler(
            spec.tasks,
            spec.train.batch_size,
            seed=0,
            n_buckets=spec.train.n_buckets,
            n_ctx=spec.model.n_ctx,
        )
        ht = build_model(spec.model)
        ref = RefModel(ht)
        assert n_params(ht) == n_params(ref), (n_params(ht), n_params(ref))
        diff = check_equivalence(ht, ref, sampler.batch(0))
        assert diff < 1e-4, f"reference does not compute the same function (max diff {diff:.2e})"
        label = f"{describe(ht)} ({name})"
        steps = {
            "HookedTransformer": make_step(ht, make_optimizer(ht, spec)),
            "reference": make_step(ref, ref_optimizer(ref)),
        }
        res = side_by_side(steps, sampler, args.repeats, args.steps)
        med = {k: statistics.median(v) for k, v in res.items()}
        for k, v in res.items():
            table.append((label, k, med[k], min(v), max(v), med[k] / med["reference"]))
        paired = [a / b for a, b in zip(res["HookedTransformer"], res["reference"], strict=True)]
        paired_notes.append(
            f"{label}: paired per-repeat ratio HT / reference median "
            f"{statistics.median(paired):.2f} (min {min(paired):.2f}, max {max(paired):.2f}); "
            f"max |logit diff| at equal weights {diff:.1e}"
        )
        if not args.no_breakdown:
            parts.append((label, breakdown(ht, ref, sampler.batch(0), max(5, args.repeats))))
        print(f"done {name}", flush=True)

    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}; arith_a mixture "
        f"(reverse_add 1..6, no_carry and carry_only 1..12), batch {SPEC.train.batch_size}; "
        f"{args.repeats} alternating repeats x {args.steps} training steps"
    )
    print()
    print("| model | implementation | median tokens/s | min | max | ratio HT / reference |")
    print("|---|---|---|---|---|---|")
    for label, impl, m, lo, hi, ratio in table:
        print(f"| {label} | {impl} | {m:,.0f} | {lo:,.0f} | {hi:,.0f} | {ratio:.2f} |")
    print()
    for note in paired_notes:
        print(f"- {note}")
    if parts:
        print("\nForward+backward of block 0's components on batch 0 (median ms):\n")
        print("| model | component | HookedTransformer (ms) | reference (ms) | HT / reference |")
        print("|---|---|---|---|---|")
        for label, rows in parts:
            for comp, a, b in rows:
                print(f"| {label} | {comp} | {a:.1f} | {b:.1f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
