"""Collect the CPU runs into analyses/cpu/results.csv and the tables of analyses/cpu/RESULTS.md.

usage: python analyses/cpu/make_results.py [RUNS_DIR]   (default scratch/runs)

Every run directory must hold eval/step_*.parquet written by
``interp eval RUN --examples 1024 --quiet`` and wall_time.json written by analyses/cpu/run.sh.
Conditions are read from the run name: ``<condition>_s<seed>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from interp.scoring.evaluate import generalization_gap, transfer_range_accuracy, transfer_strength

HERE = Path(__file__).resolve().parent
RUNS = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("scratch/runs")


def load(run: Path) -> tuple[dict, pd.DataFrame, dict]:
    cfg = json.loads((run / "config.json").read_text())
    ev = sorted((run / "eval").glob("step_*.parquet"))[-1]
    wall = json.loads((run / "wall_time.json").read_text())
    return cfg, pd.read_parquet(ev), wall


rows, accs = [], {}
for run in sorted(p for p in RUNS.iterdir() if (p / "wall_time.json").is_file()):
    cfg, acc, wall = load(run)
    cond, seed = run.name.rsplit("_s", 1)
    main = cfg["main"]
    rng = {t["name"]: t["lengths"] for t in cfg["tasks"]}
    aux = [t for t in rng if t != main]
    main_max = rng[main][1]
    aux_max = cfg["eval"]["max_length"]
    accs[(cond, int(seed))] = acc
    rec = {
        "condition": cond,
        "seed": int(seed),
        "run": run.name,
        "steps": cfg["train"]["steps"],
        "positional": cfg["model"]["positional"],
        "aux": "+".join(aux) or "none",
        "main_max": main_max,
        "eval_max": aux_max,
        "train_s": wall["train_s"],
        "eval_s": wall["eval_s"],
        "main_acc_in_dist": transfer_range_accuracy(acc, main, 1, main_max),
        "main_acc_transfer": transfer_range_accuracy(acc, main, main_max + 1, aux_max),
        "aux_acc_transfer": float(
            np.mean([transfer_range_accuracy(acc, a, main_max + 1, aux_max) for a in aux])
        )
        if aux
        else float("nan"),
        "gap": generalization_gap(acc, main, aux, main_max, aux_max) if aux else float("nan"),
    }
    for _, r in acc[acc["task"] == main].iterrows():
        rec[f"main_L{int(r['length'])}"] = r["accuracy"]
    rows.append(rec)

df = pd.DataFrame(rows)
ORDER = ["arith_a", "arith_a_baseline", "control_1", "arith_a_nope", "demo_arith_a",
         "demo_arith_a_baseline"]
df["_o"] = df["condition"].map(lambda c: ORDER.index(c) if c in ORDER else len(ORDER))
df = df.sort_values(["_o", "seed"]).drop(columns="_o").reset_index(drop=True)
# Transfer strength: against the main-only baseline of the same seed (seed 0 if missing).
base_prefix = {c: c.replace("demo_arith_a", "demo_arith_a_baseline") if c.startswith("demo")
               else "arith_a_baseline" for c in df["condition"].unique()}
ts = []
for _, r in df.iterrows():
    b = base_prefix[r["condition"]]
    key = (b, r["seed"]) if (b, r["seed"]) in accs else (b, 0)
    if key in accs and r["condition"] != b:
        ts.append(transfer_strength(accs[(r["condition"], r["seed"])], accs[key], "reverse_add",
                                    int(r["main_max"]), int(r["eval_max"])))
    else:
        ts.append(float("nan"))
df["transfer_strength"] = ts
df.to_csv(HERE / "results.csv", index=False, float_format="%.4f")

# Markdown tables (mean ± std over seeds; std with ddof=0 so one seed shows ± 0).
Lcols = sorted((c for c in df.columns if c.startswith("main_L")), key=lambda c: int(c[6:]))


def ms(x: pd.Series, k: float = 100, fmt: str = ".1f") -> str:
    x = x.dropna()
    if not len(x):
        return "–"
    m, s = k * x.mean(), k * x.std(ddof=0)
    return f"{m:{fmt}} ± {s:{fmt}}" if len(x) > 1 else f"{m:{fmt}}"


out = []
hdr = "| condition | seeds | " + " | ".join(f"L={c[6:]}" for c in Lcols) + " |"
out.append(hdr)
out.append("|" + "---|" * (len(Lcols) + 2))
for cond, g in df.groupby("condition", sort=False):
    out.append(f"| {cond} | {len(g)} | " + " | ".join(ms(g[c]) for c in Lcols) + " |")
out.append("")
out.append("| condition | seeds | main acc 1..main_max (%) | main acc transfer range (%) | "
           "aux acc transfer range (%) | transfer strength | generalization gap | "
           "train wall s | eval wall s |")
out.append("|---|---|---|---|---|---|---|---|---|")
for cond, g in df.groupby("condition", sort=False):
    out.append(
        f"| {cond} | {len(g)} | {ms(g['main_acc_in_dist'])} | {ms(g['main_acc_transfer'])} | "
        f"{ms(g['aux_acc_transfer'])} | {ms(g['transfer_strength'], 1, '.3f')} | "
        f"{ms(g['gap'], 1, '.3f')} | {ms(g['train_s'], 1, '.0f')} | {ms(g['eval_s'], 1, '.0f')} |"
    )
(HERE / "results_tables.md").write_text("\n".join(out) + "\n")
print("\n".join(out))

# Main-task accuracy over the transfer range at every checkpoint (training-time eval, 256
# examples per length), mean over seeds: shows when transfer appears and how unstable it is.
traj = []
for run in sorted(p for p in RUNS.iterdir() if (p / "wall_time.json").is_file()):
    cfg = json.loads((run / "config.json").read_text())
    cond, seed = run.name.rsplit("_s", 1)
    m = pd.read_parquet(run / "metrics.parquet")
    mm = next(t["lengths"][1] for t in cfg["tasks"] if t["name"] == cfg["main"])
    a = m[(m["kind"] == "accuracy") & (m["task"] == cfg["main"]) & (m["length"] > mm)]
    for step, g in a.groupby("step"):
        traj.append({"condition": cond, "seed": int(seed), "step": int(step),
                     "main_acc_transfer": g["value"].mean()})
tr = pd.DataFrame(traj)
tr.to_csv(HERE / "results_trajectory.csv", index=False, float_format="%.4f")
piv = tr.groupby(["condition", "step"])["main_acc_transfer"].mean().unstack("step") * 100
piv = piv.loc[[c for c in df["condition"].unique() if c in piv.index]]
lines = ["| condition | " + " | ".join(f"step {s}" for s in piv.columns) + " |",
         "|---|" + "---|" * len(piv.columns)]
for cond, r in piv.iterrows():
    lines.append(f"| {cond} | " + " | ".join("–" if np.isnan(v) else f"{v:.1f}" for v in r) + " |")
with open(HERE / "results_tables.md", "a") as f:
    f.write("\n" + "\n".join(lines) + "\n")
print("\n".join(lines))
