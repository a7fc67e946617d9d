"""The causal measurements of an analysis on one run directory: top-k ablation, head sets, dose
and interchange, each reading the run's spec for its length ranges.

Called by :func:`interp.runs.loader.analysis.analyze_sweep` for every run of a sweep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from interp.core.errors import InterpError
from interp.runs.analysis_spec import AnalysisConfig
from interp.runs.loader import load_run, read_run_spec
from interp.tasks.base import transfer_range


def causal_for_run(
    run_dir: str | Path,
    scores: pd.DataFrame | None,
    cfg: AnalysisConfig,
    device: str | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """The causal shared-head test at a run's last checkpoint (empty without a transfer range)."""
    from interp.causal.top_k import causal_test

    spec = read_run_spec(run_dir)
    lo, main_max = spec.train_range(spec.main)
    aux_max = max(spec.train_range(a)[1] for a in spec.aux)
    if aux_max <= main_max:
        return pd.DataFrame()
    run = load_run(run_dir, device=device, spec=spec)
    sc = None
    if scores is not None and len(scores):
        sc = scores[
            (scores["step"] == run.step)
            & scores["length"].isna()
            & (scores["method"] == "mean_ablation")
            & (scores["metric"] == "exact_match")
        ]
        sc = sc if sc["task"].nunique() == len(spec.task_names) else None
    n_heads = spec.model.n_layers * spec.model.n_heads
    df = causal_test(
        run.model,
        spec.main,
        spec.aux,
        (lo, main_max),
        transfer_range(main_max, aux_max),
        k=min(cfg.causal_k, n_heads - 1),
        n_random=cfg.causal_random,
        n_examples=cfg.n_examples,
        seed=spec.eval.seed,
        scores=sc,
        n_boot=1000,
        batch_size=batch_size or spec.eval.batch_size or None,
    )
    return df.assign(run=spec.name, step=run.step)


def _rows_per_pass(run: Any, batch_size: int | None) -> dict[str, int]:
    """``batch_size=`` for a causal stage: ``batch_size``, else the run's ``[eval] batch_size``;
    neither set, the stage's own default (nothing is passed)."""
    b = batch_size or run.spec.eval.batch_size
    return {"batch_size": b} if b else {}


def head_sets_for_run(
    run_dir: str | Path,
    cfg: AnalysisConfig,
    max_size: int = 3,
    device: str | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Every head set of size 1..``max_size`` ablated at the run's last checkpoint
    (:func:`interp.causal.head_sets.causal_sets`); one row per set with the run's ``slope``. The
    model
    is loaded on ``device`` (default: the run's ``[train] device``) and runs ``batch_size`` rows
    per pass (default: the run's ``[eval] batch_size``, else the device's)."""
    from interp.causal.head_sets import causal_sets

    spec = read_run_spec(run_dir)
    lo, main_max = spec.train_range(spec.main)
    aux_max = max(spec.train_range(a)[1] for a in spec.aux)
    if aux_max <= main_max:
        return pd.DataFrame()
    run = load_run(run_dir, device=device, spec=spec)
    df, summary = causal_sets(
        run.model, spec.main, spec.aux, (lo, main_max), transfer_range(main_max, aux_max),
        n_examples=cfg.n_examples, seed=spec.eval.seed, max_size=max_size,
        **_rows_per_pass(run, batch_size),
    )  # fmt: skip
    return df.assign(run=spec.name, step=run.step, slope=summary["slope"])


def causal_slopes(sets: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """The sign-flip test across runs of each kind of the head-set slopes, with every run that
    has none listed as not applicable (:func:`interp.stats.within.head_set_summary`): columns of
    :func:`interp.stats.within.combine` plus ``not_applicable``."""
    from interp.stats.within import head_set_summary

    return head_set_summary(sets, meta)


def _ranges(run_dir: str | Path) -> tuple[Any, tuple[int, int], tuple[int, int]] | None:
    """``(spec, main range, transfer range)``, or None for a run without a transfer range."""
    spec = read_run_spec(run_dir)
    lo, main_max = spec.train_range(spec.main)
    aux_max = max((spec.train_range(a)[1] for a in spec.aux), default=main_max)
    if aux_max <= main_max:
        return None
    return spec, (lo, main_max), transfer_range(main_max, aux_max)


def dose_for_run(
    run_dir: str | Path,
    cfg: AnalysisConfig,
    device: str | None = None,
    batch_size: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dose-matched graded ablation at the run's last checkpoint
    (:func:`interp.causal.dose.dose_matched`,
    pre-declared: top-4 of each map, subsets of up to 2 heads, d_ID = 0.2): ``(sets, summary)``,
    both with ``run, step``; empty without a transfer range or when the clean model solves
    nothing in the training range."""
    from interp.causal.dose import dose_matched

    r = _ranges(run_dir)
    if r is None:
        return pd.DataFrame(), pd.DataFrame()
    spec, main_range, transfer = r
    run = load_run(run_dir, device=device, spec=spec)
    try:
        sets, summary = dose_matched(
            run.model, spec.main, spec.aux, main_range, transfer,
            n_examples=cfg.n_examples, seed=spec.eval.seed,
            **_rows_per_pass(run, batch_size),
        )  # fmt: skip
    except InterpError:
        return pd.DataFrame(), pd.DataFrame()
    tag = {"run": spec.name, "step": run.step}
    return sets.assign(**tag), summary.assign(**tag)


def interchange_for_run(
    run_dir: str | Path,
    cfg: AnalysisConfig,
    device: str | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Cross-task interchange patching at the run's last checkpoint on the transfer range
    (:func:`interp.causal.interchange.interchange_scores`), for each auxiliary whose prompts share
    the
    main task's operand layout (the others are skipped: there is no same-operand pair)."""
    from interp.causal.interchange import interchange_scores

    r = _ranges(run_dir)
    if r is None:
        return pd.DataFrame()
    spec, _, (lo, hi) = r
    run = load_run(run_dir, device=device, spec=spec)
    frames = []
    for a in spec.aux:
        try:
            df = interchange_scores(
                run.model, spec.main, a, list(range(lo, hi + 1)),
                n_examples=cfg.n_examples, seed=spec.eval.seed,
                **_rows_per_pass(run, batch_size),
            )  # fmt: skip
        except InterpError:
            continue
        frames.append(df.assign(run=spec.name, step=run.step))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
