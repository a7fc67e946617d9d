"""The precision pilot's comparison (analyses/precision/PILOT.md), and bf16 scoring measured.

Pilot: the five float32 zoo entries ``r4_both_s{k}`` against the bf16 + compile runs
``r4bf_both_s{k}`` (trained by ``interp train analyses/precision/specs/r4bf_both_s{k}.toml``):
exact match of the main task and each auxiliary at every length 1..12, 1024 items per (task,
length), evaluation seed 0, both evaluated in float32. The bf16 runs' float32 master weights are
rounded to float16 first, as ``interp zoo export`` stores the zoo's, so both sides are read
through the same storage precision. Writes ``pilot.parquet`` / ``pilot.md`` and applies the
adoption rule written in PILOT.md before the runs.

Scoring (``--scoring``): for every ``r4_*`` zoo model, the fraction of evaluation examples whose
exact-match verdict changes between float32 and bf16-autocast forward passes (all tasks,
lengths 1..12, 256 items each), the forward-pass speed of each, and whether the mean-ablation
head ranking (exact match, the main task over 1..12) is unchanged. Writes ``scoring.parquet`` /
``scoring.md``.

    .venv/bin/python analyses/precision/compare.py --runs /work/runs/precision
    .venv/bin/python analyses/precision/compare.py --scoring

Both read the ``r4_*`` weights, retired from the zoo on 2026-12-06 (their tables stay in
``analyses/zoo/r4/``): rebuild the entries first with ``interp zoo train r4_both_s0 --export``
and so on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from interp.runs.loader import load_run
from interp.scoring.evaluate import accuracy_table, answer_logits, exact_match_from_logits
from interp.scoring.heads import score_heads
from interp.stats.intervals import clopper_pearson
from interp.tasks.batches import eval_batches, iter_minibatches
from interp.tasks.encoding import vocab_for
from interp.zoo import registry as zoo

HERE = Path(__file__).resolve().parent
SEEDS = range(5)
TASKS = ("reverse_add", "no_carry", "carry_only")
LENGTHS = list(range(1, 13))


def _fp16_round(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def pilot(runs: Path, n: int) -> pd.DataFrame:
    frames = []
    for k in SEEDS:
        fp32, _ = zoo.load(f"r4_both_s{k}")
        bf16 = _fp16_round(load_run(runs / f"r4bf_both_s{k}", device="cpu").model)
        for prec, model in (("float32", fp32), ("bf16+compile", bf16)):
            acc = accuracy_table(model, TASKS, LENGTHS, n_examples=n, seed=0)
            acc["seed"], acc["precision"] = k, prec
            frames.append(acc)
    df = pd.concat(frames, ignore_index=True)
    df["correct"] = (df["accuracy"] * df["n"]).round().astype(int)
    df["ci_lo"], df["ci_hi"] = clopper_pearson(df["correct"].to_numpy(), df["n"].to_numpy())
    return df[["precision", "seed", "task", "length", "accuracy", "ci_lo", "ci_hi", "n"]]


def decide(df: pd.DataFrame, speedup: float | None) -> list[str]:
    """The four conditions of PILOT.md's adoption rule, each with its numbers."""
    out = []
    ok = []
    if speedup is None:
        out.append("1. speed: not given here (BENCHMARKS.md)")
    else:
        ok.append(speedup >= 1.5)
        out.append(f"1. speed: {speedup:.2f}x >= 1.5x: {'holds' if ok[-1] else 'fails'}")
    fp = df[df.precision == "float32"].set_index(["seed", "task", "length"])
    bf = df[df.precision == "bf16+compile"].set_index(["seed", "task", "length"])
    ind = [(s, t, L) for s in SEEDS for t in TASKS for L in range(1, 7)]
    bad = []
    for key in ind:
        got, lo, hi = bf.loc[key, "accuracy"], fp.loc[key, "ci_lo"], fp.loc[key, "ci_hi"]
        if got < 0.98 and not lo <= got <= hi:
            bad.append(
                f"seed {key[0]} {key[1]} {key[2]}: {got:.3f} vs float32 [{lo:.3f}, {hi:.3f}]"
            )
    ok.append(not bad)
    out.append(
        f"2. in distribution (lengths 1..6, every task and seed): "
        f"{'holds' if not bad else 'fails: ' + '; '.join(bad)}"
    )
    at7 = df[(df.task == "reverse_add") & (df.length == 7)].sort_values("seed")
    m7 = {p: at7[at7.precision == p]["accuracy"].to_numpy() for p in ("float32", "bf16+compile")}
    n_fp, n_bf = int((m7["float32"] > 0.1).sum()), int((m7["bf16+compile"] > 0.1).sum())
    ok.append(abs(n_fp - n_bf) <= 1)
    out.append(
        f"3. transferring seeds (> 0.1 at length 7): float32 {n_fp}/5, bf16 {n_bf}/5: "
        f"{'holds' if ok[-1] else 'fails'}"
    )
    ref = m7["float32"]  # the float32 zoo runs, evaluated here on the same items
    band = 2 * ref.std(ddof=1) / np.sqrt(len(ref))
    mean_bf = m7["bf16+compile"].mean()
    ok.append(abs(mean_bf - ref.mean()) <= band)
    out.append(
        f"4. mean at length 7: bf16 {mean_bf:.3f} (per seed "
        f"{', '.join(f'{x:.3f}' for x in m7['bf16+compile'])}) vs float32 {ref.mean():.3f} "
        f"+- {band:.3f}: {'holds' if ok[-1] else 'fails'}"
    )
    out.append(f"decision: {'ADOPT bf16 + compile' if all(ok) else 'KEEP float32'}")
    return out


def _fmt_table(df: pd.DataFrame) -> str:
    lines = []
    for task in TASKS:
        lines.append(f"\n### {task}\n")
        lines.append("| precision | seed | " + " | ".join(str(L) for L in LENGTHS) + " |")
        lines.append("|---|---|" + "---|" * len(LENGTHS))
        sub = df[df.task == task]
        for (seed, prec), g in sub.groupby(["seed", "precision"], sort=False):
            g = g.sort_values("length")
            cells = [f"{a:.3f} [{lo:.2f}, {hi:.2f}]" for a, lo, hi in
                     zip(g.accuracy, g.ci_lo, g.ci_hi, strict=True)]  # fmt: skip
            lines.append(f"| {prec} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scoring(n: int) -> pd.DataFrame:
    rows = []
    for name in [x for x in zoo.names() if x.startswith("r4_")]:
        model, _ = zoo.load(name)
        s = zoo.spec(name)
        vocab = vocab_for(model)
        changed = total = 0
        t32 = t16 = 0.0
        for task in s.task_names:
            sets = eval_batches(task, LENGTHS, n, 0, n_ctx=model.cfg.n_ctx, vocab=vocab)
            for L in LENGTHS:
                for b in iter_minibatches(sets[L], 512):
                    with torch.no_grad():
                        t0 = time.perf_counter()
                        v32 = exact_match_from_logits(answer_logits(model, b), b)
                        t1 = time.perf_counter()
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            v16 = exact_match_from_logits(answer_logits(model, b).float(), b)
                        t2 = time.perf_counter()
                    t32, t16 = t32 + t1 - t0, t16 + t2 - t1
                    changed += int((v32 != v16).sum())
                    total += len(b)
        h32 = score_heads(model, s.main, lengths=LENGTHS, n_examples=n)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h16 = score_heads(model, s.main, lengths=LENGTHS, n_examples=n)
        a, b = h32["score"].to_numpy(), h16["score"].to_numpy()
        rank_same = bool((np.argsort(-a, kind="stable") == np.argsort(-b, kind="stable")).all())
        rows.append({
            "model": name, "examples": total, "verdicts_changed": changed,
            "agreement": 1 - changed / total, "fp32_s": t32, "bf16_s": t16,
            "speedup": t32 / t16, "ranking_identical": rank_same,
            "spearman": float(sps.spearmanr(a, b).statistic),
            "top1_same": int(np.argmax(a)) == int(np.argmax(b)),
            "max_score_diff": float(np.abs(a - b).max()),
        })  # fmt: skip
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def _markdown(df: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(False)]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("/work/runs/precision"))
    p.add_argument("--examples", type=int, default=1024)
    p.add_argument("--speedup", type=float, help="bf16+compile vs fp32 eager, 1 thread (bench)")
    p.add_argument("--scoring", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.scoring:
        df = scoring(min(a.examples, 256))
        df.to_parquet(HERE / "scoring.parquet", index=False)
        (HERE / "scoring.md").write_text(_markdown(df))
        print(df.to_string())
        return
    df = pilot(a.runs, a.examples)
    df.to_parquet(HERE / "pilot.parquet", index=False)
    verdict = decide(df, a.speedup)
    (HERE / "pilot.md").write_text(
        "# Precision pilot: per-seed exact match (1024 items, Clopper-Pearson 95%)\n\n"
        "Regenerate: `.venv/bin/python analyses/precision/compare.py --speedup X`.\n\n"
        + "\n".join(f"- {v}" for v in verdict)
        + "\n"
        + _fmt_table(df)
        + "\n"
    )
    print("\n".join(verdict))


if __name__ == "__main__":
    main()
