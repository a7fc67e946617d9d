"""Write a zoo family of arithmetic group A: one spec per (condition, seed) in models/zoo/specs/.

Two families share everything but the blocks (4 layers, 4 heads, d_model 128, RoPE; AdamW lr
1e-3, weight decay 0.01, warm-up 200, cosine decay over the last 30%; batch 128; 4000 steps; 8
length buckets; the recipe of issue 9):

- ``a4``: LayerNorm + GELU MLP, d_mlp 512;
- ``r4``: the paper's Llama-style blocks, RMSNorm + gated SiLU MLP, d_mlp 344 (Llama's
  8/3 x d_model rounded up to a multiple of 8), which has the GELU MLP's parameter count
  (3 x 128 x 344 ~ 2 x 128 x 512), so both families' checkpoints are the same size.

Seeds are 0..n-1 for every condition, declared here before any run, so a family is not a
selection of lucky seeds.

The ``r4`` family also gets the head-sharing intervention of issue 21 (``docs/intervention.md``,
:mod:`interp.models.head_mask`): the ``both`` condition with per-task head masks, ``disjoint``
(reverse add heads {0, 1}, the auxiliaries heads {2, 3}, in every layer: no head can be shared) and
``shared`` (every task heads {0, 1}: the same capacity per task, sharing forced). Seed ``k`` of
either is ``r4_both_s{k}`` but for the masks: same initial weights, same training batches.

    python analyses/zoo/make_specs.py a4
    python analyses/zoo/make_specs.py r4
    python analyses/zoo/make_specs.py b4   # r4 in bf16 + compile: issue 21's family
"""

from __future__ import annotations

import sys
from pathlib import Path

SPECS = Path(__file__).resolve().parents[2] / "models" / "zoo" / "specs"

# condition -> (auxiliary tasks, number of seeds, description). The seed counts are issue 21's
# r4 family (analyses/family/PLAN.md): 20 seeds with both auxiliaries, 6 of every other
# condition; seeds 0..n-1, declared before any of the new runs trained. The retired a4 family
# keeps the 5/3/3/2/2 seeds it was trained with (SEEDS_A4).
CONDITIONS = {
    "both": (["no_carry", "carry_only"], 20, "reverse add 1..6 with no carry + carry only 1..12"),
    "main": ([], 6, "reverse add 1..6 alone (no auxiliary)"),
    "control1": (["copy_first_op"], 6, "reverse add 1..6 with copy-first-op 1..12 (control 1)"),
    "nocarry": (["no_carry"], 6, "reverse add 1..6 with no carry 1..12 only"),
    "carry": (["carry_only"], 6, "reverse add 1..6 with carry only 1..12 only"),
}
# masked condition -> (heads of the main task, heads of each auxiliary, seeds, description);
# everything else is the `both` condition's. Written for the r4 family only.
MASKED = {
    "disjoint": (
        [0, 1],
        [2, 3],
        8,
        "reverse add 1..6 with no carry + carry only 1..12, disjoint heads",
    ),
    "shared": (
        [0, 1],
        [0, 1],
        8,
        "reverse add 1..6 with no carry + carry only 1..12, shared heads",
    ),
}
MASKED_FAMILIES = ("r4", "b4")
SEEDS_A4 = {"both": 5, "main": 3, "control1": 3, "nocarry": 2, "carry": 2}
NOTE = """\
# Head-sharing intervention (issue 21; docs/intervention.md): the {family}_both_s{seed} run but for
# per-task head masks. Reverse add's examples use heads {main} only, the auxiliaries' heads {aux}
# only, in every layer (the other heads' outputs zeroed for that example, in training and in
# every evaluation; interp/head_mask.py).
"""
# family -> (d_mlp, norm, mlp): all that differs between families' models
FAMILIES = {
    "a4": (512, "ln", "gelu"),
    "r4": (344, "rms", "gated_silu"),
    "b4": (344, "rms", "gated_silu"),
}
# family -> lines after `threads = 1`: b4 is r4 trained in bfloat16 autocast + torch.compile, the
# precision the pilot adopted (analyses/precision/PILOT.md). The masked conditions keep compile
# off: per-task head masks are refused with compile (untested there), so they train bf16 eager.
PRECISION = {
    "b4": 'autocast = "bf16"       # the precision pilot\'s decision (analyses/precision/PILOT.md)\n'
    "compile = true\n"
}
PRECISION_MASKED = {
    "b4": 'autocast = "bf16"       # the precision pilot\'s decision (analyses/precision/PILOT.md)\n'
    "compile = false         # head masks are refused with compile (untested there)\n"
}
# Dense in the second half for the within-run view; every step here is also a resume point.
CHECKPOINTS = [500, 1000, 1500, 2000, 2400, 2800, 3000, 3200, 3400, 3600, 3800, 4000]

TEMPLATE = """\
# Model zoo entry "{name}" (condition {cond}, seed {seed}): {desc}.
# Arithmetic group A on the 4-layer CPU recipe; written by analyses/zoo/make_specs.py.
{note}# Rebuild: interp zoo train {name}   (= interp train models/zoo/specs/{name}.toml --out RUN_DIR,
#          then interp zoo export RUN_DIR {name})
name = "{name}"
group = "arith_a4"
main = "reverse_add"
seed = {seed}

[[tasks]]
name = "reverse_add"
lengths = [1, 6]
{main_heads}{aux}
[model]
n_layers = 4
n_heads = 4
d_model = 128
d_mlp = {d_mlp}
positional = "rope"
norm = "{norm}"
mlp = "{mlp}"

[optim]
lr = 1e-3
weight_decay = 0.01
warmup_steps = 200
decay_fraction = 0.3

[train]
steps = 4000
batch_size = 128
n_buckets = 8
checkpoint_steps = {ckpts}
threads = 1
{precision}
[eval]
max_length = 12    # 7..12: the transfer range (the auxiliaries' own range beyond 6)
every = 0          # evaluated at every checkpoint
examples = 128
"""


def _write(family: str, cond: str, seed: int, desc: str, aux: list[str], **masks: str) -> None:
    """Write one spec; ``masks`` (``note``, ``main_heads``, ``aux_heads``) only for the masked
    conditions, so every other spec is byte for byte what it was before they existed."""
    d_mlp, norm, mlp = FAMILIES[family]
    name = f"{family}_{cond}_s{seed}"
    aux_heads = masks.get("aux_heads", "")
    aux_txt = "".join(f'\n[[tasks]]\nname = "{a}"\nlengths = [1, 12]\n{aux_heads}' for a in aux)
    text = TEMPLATE.format(
        name=name,
        cond=cond,
        seed=seed,
        desc=desc,
        note=masks.get("note", ""),
        main_heads=masks.get("main_heads", ""),
        aux=aux_txt,
        ckpts=CHECKPOINTS,
        d_mlp=d_mlp,
        norm=norm,
        mlp=mlp,
        precision=(PRECISION_MASKED if "note" in masks else PRECISION).get(family, ""),
    )
    (SPECS / f"{name}.toml").write_text(text)
    print(SPECS / f"{name}.toml")


def main(family: str) -> None:
    for cond, (aux, n_seeds, desc) in CONDITIONS.items():
        if family == "a4":
            n_seeds = SEEDS_A4[cond]  # the retired family keeps the seeds it was trained with
        for seed in range(n_seeds):
            _write(family, cond, seed, desc, aux)
    if family not in MASKED_FAMILIES:
        return
    aux = CONDITIONS["both"][0]
    for cond, (main_h, aux_h, n_seeds, desc) in MASKED.items():
        for seed in range(n_seeds):
            note = NOTE.format(family=family, seed=seed, main=set(main_h), aux=set(aux_h))
            _write(
                family, cond, seed, desc, aux,
                note=note, main_heads=f"heads = {main_h}\n", aux_heads=f"heads = {aux_h}\n",
            )  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in FAMILIES:
        sys.exit(f"usage: python analyses/zoo/make_specs.py {{{'|'.join(FAMILIES)}}}")
    main(sys.argv[1])
