"""How well does attribution patching estimate activation patching on trained models?

For each run directory given, at its last checkpoint and for every task of the run (on the task's
training lengths), scores every head by activation patching and by attribution patching (both on
the answer log-probability, the metric attribution patching linearises) and reports the Spearman
rank correlation over heads, and the top-3 overlap.

    python analyses/attribution_agreement.py RUN_DIR [RUN_DIR ...] [--examples N]
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
import torch
from scipy.stats import spearmanr

from interp.runs.loader import load_run
from interp.runs.pipeline import score_lengths
from interp.scoring.heads import score_heads


def agreement(run_dir: str, n_examples: int) -> pd.DataFrame:
    run = load_run(run_dir)
    rows = []
    for task in run.spec.task_names:
        lengths = score_lengths(run.spec, task)
        kw = dict(lengths=lengths, n_examples=n_examples, seed=0)
        act = score_heads(run.model, task, "activation_patching", "logprob", **kw)
        att = score_heads(run.model, task, "attribution_patching", "logprob", **kw)
        a, b = act["score"].to_numpy(), att["score"].to_numpy()
        top = lambda s: set(s.sort_values(ascending=False).index[:3])  # noqa: E731
        rows.append(
            {
                "run": run.spec.name,
                "step": run.step,
                "task": task,
                "lengths": f"{lengths[0]}..{lengths[-1]}",
                "spearman": spearmanr(a, b).statistic,
                "top3_shared": len(top(act["score"]) & top(att["score"])),
                "max_act": a.max(),
                "max_attr": b.max(),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--examples", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(1)
    df = pd.concat([agreement(r, args.examples) for r in args.runs], ignore_index=True)
    print(df.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else df.to_string())
    sys.stdout.flush()


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
