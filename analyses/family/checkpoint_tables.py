"""Per-checkpoint tables for one run of the arithmetic family (issue 21, item 3).

For every checkpoint a run directory holds, this writes what every family analysis needs, so
that none of them ever has to retrain (or keep the weights of) a run:

* ``accuracy_by_step.parquet``: exact match of the main task and each auxiliary at every
  length of the spec's evaluation range (``[eval] max_length``), ``--examples`` items per
  (task, length), evaluation seed 0, Clopper-Pearson 95% bounds. Columns: ``step, task,
  length, accuracy, n, logprob, correct, ci_lo, ci_hi``.
* ``heads_by_step.parquet``: the mean-ablation head maps (metrics ``exact_match`` and
  ``frac_lost``), every task on the **shared range** (the lengths every task trains on: the
  main task's ``1..main_max``, pre-declared in ``analyses/family/PLAN.md`` as the one
  definition of "sharedness"), and each auxiliary on the **transfer range**
  (``main_max + 1 .. aux_max``; exploratory, enters no test: ``--transfer-examples`` items per
  length, 128 by default, which halves the longest part of the work). Columns: ``step, range, task,
  layer, head, score, metric,
  clean, n`` (``range``: ``shared`` or ``transfer``).

Both frames carry ``run`` (the spec's name). Evaluation and scoring run in float32 on the CPU
(one thread), whatever precision the run trained in.

    .venv/bin/python analyses/family/checkpoint_tables.py RUN_DIR OUT_DIR [--examples 256]
        [--transfer-examples 128]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from interp.core.io import write_parquet
from interp.runs.loader import load_run, read_run_spec, run_checkpoints
from interp.scoring.evaluate import accuracy_table
from interp.scoring.heads import score_heads
from interp.stats.intervals import clopper_pearson


def ranges(spec) -> tuple[list[int], list[int]]:
    """``(shared, transfer)`` lengths: the main task's training range, and
    :meth:`~interp.runs.spec.TrainSpec.transfer_range` (used only with auxiliaries)."""
    lo, hi = spec.train_range(spec.main)
    t_lo, t_hi = spec.transfer_range()
    return list(range(lo, hi + 1)), list(range(t_lo, t_hi + 1))


def tables(
    run_dir: Path, examples: int, transfer_examples: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    spec = read_run_spec(run_dir)
    shared, transfer = ranges(spec)
    aux = [t for t in spec.task_names if t != spec.main]
    acc_frames, head_frames = [], []
    steps = run_checkpoints(run_dir)
    t0 = time.perf_counter()
    for i, step in enumerate(steps):
        model = load_run(run_dir, step, device="cpu", spec=spec).model
        acc = accuracy_table(
            model, spec.task_names, {t: spec.eval_lengths(t) for t in spec.task_names},
            n_examples=examples, seed=0, step=step,
        )  # fmt: skip
        acc_frames.append(acc)
        jobs = [("shared", t, shared, examples) for t in spec.task_names]
        jobs += [("transfer", t, transfer, transfer_examples) for t in aux if transfer]
        for rng, task, lengths, n in jobs:
            h = score_heads(
                model, task, "mean_ablation", ["exact_match", "frac_lost"],
                lengths=lengths, n_examples=n,
            )  # fmt: skip
            h = h[h["length"].isna()].drop(columns=["length"])
            h.insert(0, "range", rng)
            h.insert(0, "step", step)
            head_frames.append(h)
        done = time.perf_counter() - t0
        eta = done / (i + 1) * (len(steps) - i - 1)
        print(f"step {step}: {i + 1}/{len(steps)} checkpoints, {done:.0f} s, ETA {eta:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
    acc = pd.concat(acc_frames, ignore_index=True)
    acc["correct"] = (acc["accuracy"] * acc["n"]).round().astype("int64")
    acc["ci_lo"], acc["ci_hi"] = clopper_pearson(acc["correct"].to_numpy(), acc["n"].to_numpy())
    heads = pd.concat(head_frames, ignore_index=True)
    for df in (acc, heads):
        df.insert(0, "run", spec.name)
    return acc, heads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--examples", type=int, default=256)
    p.add_argument("--transfer-examples", type=int, default=128)
    a = p.parse_args()
    torch.set_num_threads(1)
    acc, heads = tables(a.run_dir, a.examples, a.transfer_examples)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(a.out_dir / "accuracy_by_step.parquet", acc)
    write_parquet(a.out_dir / "heads_by_step.parquet", heads)


if __name__ == "__main__":
    main()
