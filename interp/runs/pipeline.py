"""Run directories in, analysis tables out: the glue between training and the statistics.

Data flow one way: checkpoints -> (accuracy, head scores, attention differences) -> overlap ->
transfer tables. Each stage reads the previous stage's output and writes a tidy Parquet table
under ``RUN_DIR/analysis/``:

* ``accuracy.parquet``: exact match per ``(run, step, task, length)``;
* ``scores.parquet``: head importance per ``(run, step, task, method, metric, layer, head)``;
* ``attention.parquet``: the paper's attention-matrix difference per ``(run, step, task_a,
  task_b, layer, head)``;
* ``overlap.parquet``: overlap statistics per ``(run, step, task_a, task_b, statistic)``.

**Which lengths a head is scored on: like with like.** Comparing a main map scored on 1..3
with an auxiliary map scored on 1..6 confounds task with length. So every task of a run is
scored on the *common* lengths (those all its tasks were trained on: the main task's training
range), and each task trained beyond them (the auxiliaries) gets a second map of its own on
the transfer range ``main_max + 1 .. its max``, under the task label ``<task>@transfer`` (e.g.
``no_carry@transfer``). The overlap table then compares main and auxiliary on equal lengths
(the pair the run-level statistics use), and the ``@transfer`` maps appear as their own rows.
The ``lengths=`` argument overrides this (every task on those lengths, no ``@transfer`` maps).
:func:`score_plan` lists the maps.

**Which metrics.** ``exact_match`` and ``frac_lost`` (the fraction of clean-correct examples
an ablation breaks, :mod:`interp.scoring.heads`) come from the same forward passes; a method is
scored
once for all its metrics. Rows of different methods and metrics are never combined: overlap is
computed per ``(method, metric)``.

**Device and chunking.** Every entry point takes ``device`` (default: the run's ``[train]
device``, usually ``auto``) and ``batch_size`` (rows per forward pass; default: the run's
``[eval] batch_size``, else the device's default, see :mod:`interp.core.device`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from interp.core.errors import InterpError
from interp.core.progress import ACCURACY, OVERLAP, SCORES, StageProgress, maybe_stage, run_plan
from interp.runs.dirs import RunDir, upsert
from interp.runs.loader import LoadedRun, load_run, read_run_spec, run_checkpoints
from interp.runs.spec import TrainSpec
from interp.scoring.evaluate import accuracy_table

TABLE_KEYS = {
    "accuracy": ["step"],
    "scores": ["step", "task", "method", "metric"],
    "overlap": ["step", "method", "metric"],
    "attention": ["step"],
}
"""Key columns by which each run-level table is merged
(:meth:`interp.runs.dirs.TableDir.upsert_table`)."""


def score_lengths(spec: TrainSpec, task: str, lengths: Sequence[int] | None = None) -> list[int]:
    """Lengths a task is scored on: ``lengths`` or the task's training range in the run."""
    if lengths is not None:
        return list(lengths)
    lo, hi = spec.train_range(task)
    return list(range(lo, hi + 1))


TRANSFER_SUFFIX = "@transfer"
"""Task-label suffix of an auxiliary's map scored on the transfer range (module docstring)."""


def score_plan(
    spec: TrainSpec, tasks: Sequence[str], lengths: Sequence[int] | None = None
) -> list[tuple[str, str, list[int]]]:
    """The maps scored for a run: ``(label, task, lengths)`` per map (module docstring).

    Args:
        spec: the run's spec.
        tasks: tasks to score (tasks outside the run need ``lengths``).
        lengths: score every task on these lengths instead (no ``@transfer`` maps).

    Raises:
        InterpError: a task outside the run without ``lengths``.
    """
    if lengths is not None:
        return [(t, t, list(lengths)) for t in tasks]
    outside = [t for t in tasks if t not in spec.task_names]
    if outside:
        raise InterpError(f"tasks {outside} are not trained in run {spec.name!r}: give lengths")
    common = common_lengths(spec, spec.task_names)
    hi = max(common)
    plan = [(t, t, common) for t in tasks]
    for t in tasks:
        t_hi = spec.train_range(t)[1]
        if t_hi > hi:
            plan.append((f"{t}{TRANSFER_SUFFIX}", t, list(range(hi + 1, t_hi + 1))))
    return plan


def _steps(run_dir: str | Path, steps: Sequence[int] | None) -> list[int]:
    available = run_checkpoints(run_dir)
    if not available:
        raise InterpError(f"no checkpoints in {run_dir}: nothing to analyse")
    if steps is None:
        return available
    missing = sorted(set(steps) - set(available))
    if missing:
        raise InterpError(
            f"no checkpoint at steps {missing} in {run_dir}; available steps: "
            f"{', '.join(map(str, available))}"
        )
    return list(steps)


def run_meta(run_dir: str | Path, baseline: str | None = None, kind: str | None = None) -> dict:
    """One metadata row for :mod:`interp.stats.transfer` from a run's spec
    (:meth:`interp.runs.dirs.RunDir.meta`)."""
    return RunDir(run_dir).meta(baseline, kind)


def _batch_size(run: LoadedRun, batch_size: int | None) -> int | None:
    return batch_size or run.spec.eval.batch_size or None


def _accuracy_at(run: LoadedRun, n_examples: int, batch_size: int | None = None) -> pd.DataFrame:
    """Accuracy per task and length of one loaded checkpoint (evaluation range from the spec)."""
    spec = run.spec
    return accuracy_table(
        run.model,
        spec.task_names,
        {t: spec.eval_lengths(t) for t in spec.task_names},
        n_examples=n_examples,
        seed=spec.eval.seed,
        batch_size=_batch_size(run, batch_size),
        run=spec.name,
        step=run.step,
    )


def _scores_at(
    run: LoadedRun,
    tasks: Sequence[str],
    methods: Sequence[str],
    metrics: Sequence[str],
    lengths: Sequence[int] | None,
    n_examples: int,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Head scores of one loaded checkpoint for every map of :func:`score_plan` x method x
    metric (metrics defined for ablations only are skipped for patching methods)."""
    from interp.scoring.heads import ABLATION_ONLY_METRICS, ABLATIONS_METHODS, score_heads

    spec = run.spec
    frames = []
    for label, task, task_lengths in score_plan(spec, tasks, lengths):
        for method in methods:
            ok = [
                m for m in metrics if method in ABLATIONS_METHODS or m not in ABLATION_ONLY_METRICS
            ]
            if not ok:
                continue
            df = score_heads(
                run.model,
                task,
                method,
                ok,
                lengths=task_lengths,
                n_examples=n_examples,
                seed=spec.eval.seed,
                batch_size=_batch_size(run, batch_size),
            )
            df["task"] = label
            df.insert(0, "step", run.step)
            df.insert(0, "run", spec.name)
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _overlap_at(
    run: LoadedRun, scores: pd.DataFrame, k: int, attention: bool, n_examples: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Overlap statistics (and attention differences) of one loaded checkpoint's head scores."""
    from interp.scoring.attention import attention_table
    from interp.scoring.overlap import overlap_table

    spec = run.spec
    attn = None
    if attention and len(spec.task_names) > 1:
        attn = attention_table(
            run.model,
            spec.task_names,
            common_lengths(spec, spec.task_names),
            n_examples=n_examples,
            seed=spec.eval.seed,
        ).assign(run=spec.name, step=run.step)
    frames = []
    for (method, metric), sub in scores.groupby(["method", "metric"]):
        if sub["task"].nunique() < 2:
            continue
        ov = overlap_table(sub[sub["length"].isna()], attn, k=k)
        frames.append(ov.assign(run=spec.name, step=run.step, method=method, metric=metric))
    overlap = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return overlap, attn if attn is not None else pd.DataFrame()


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _write_tables(run_dir: str | Path, **tables: pd.DataFrame) -> None:
    rd = RunDir(run_dir)
    for name, df in tables.items():
        if name == "overlap" or len(df):
            rd.upsert_table(name, df, TABLE_KEYS[name])


def accuracy_over_checkpoints(
    run_dir: str | Path,
    steps: Sequence[int] | None = None,
    n_examples: int = 256,
    progress: bool = True,
    device: str | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Accuracy per task and length at each checkpoint (evaluation range from the spec)."""
    spec = read_run_spec(run_dir)
    df = _concat(
        [
            _accuracy_at(load_run(run_dir, step, device, spec=spec), n_examples, batch_size)
            for step in tqdm(_steps(run_dir, steps), desc="accuracy", disable=not progress)
        ]
    )
    _write_tables(run_dir, accuracy=df)
    return df


def _check_scoring(
    spec: TrainSpec, tasks: Sequence[str] | None, methods: Sequence[str], metrics: Sequence[str]
) -> list[str]:
    from interp.core.errors import unknown_choice
    from interp.scoring.heads import METHODS, METRICS
    from interp.tasks import get_task

    for m in methods:
        if m not in METHODS:
            raise unknown_choice("method", m, METHODS)
    for m in metrics:
        if m not in METRICS:
            raise unknown_choice("metric", m, METRICS)
    tasks = list(tasks or spec.task_names)
    for t in tasks:
        get_task(t)
    return tasks


def score_run(
    run_dir: str | Path,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] = ("mean_ablation",),
    metrics: Sequence[str] = ("exact_match",),
    checkpoint: int | None = None,
    steps: Sequence[int] | None = None,
    lengths: Sequence[int] | None = None,
    n_examples: int = 256,
    progress: bool = True,
    out: str | Path | None = None,
    device: str | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Score every head for each task, method and metric, at one or several checkpoints.

    Args:
        run_dir: the run.
        tasks: tasks to score (default: all the run's tasks).
        methods: head-scoring methods (see :func:`interp.scoring.heads.score_heads`).
        metrics: metrics.
        checkpoint: a single step (default: the latest); ignored when ``steps`` is given.
        steps: several steps.
        lengths: lengths to score on (default: each task's training range).
        n_examples: examples per length.
        progress: progress bar.
        out: output parquet (default: ``RUN_DIR/analysis/scores.parquet``).
        device: where to score (see the module docstring).
        batch_size: rows per forward pass, replicas included (see the module docstring).

    Returns:
        Tidy frame with ``run, step`` plus :func:`~interp.scoring.heads.score_heads`'s columns.
    """
    spec = read_run_spec(run_dir)
    tasks = _check_scoring(spec, tasks, methods, metrics)
    if steps is None:
        steps = [checkpoint] if checkpoint is not None else run_checkpoints(run_dir)[-1:]
    scores = _concat(
        [
            _scores_at(
                load_run(run_dir, step, device, spec=spec),
                tasks,
                methods,
                metrics,
                lengths,
                n_examples,
                batch_size,
            )
            for step in tqdm(_steps(run_dir, steps), desc="score", disable=not progress)
        ]
    )
    if out:
        upsert(out, scores, TABLE_KEYS["scores"])
    else:
        _write_tables(run_dir, scores=scores)
    return scores


def common_lengths(spec: TrainSpec, tasks: Sequence[str]) -> list[int]:
    """Lengths every task in ``tasks`` was trained on (where attention patterns are comparable)."""
    lo = max(spec.train_range(t)[0] for t in tasks)
    hi = min(spec.train_range(t)[1] for t in tasks)
    return list(range(lo, hi + 1))


def overlap_over_checkpoints(
    run_dir: str | Path,
    scores: pd.DataFrame,
    steps: Sequence[int] | None = None,
    k: int = 4,
    attention: bool = True,
    n_examples: int = 64,
    progress: bool = True,
    device: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Overlap statistics between the run's tasks at each checkpoint.

    Args:
        run_dir: the run.
        scores: :func:`score_run` output covering ``steps``.
        steps: checkpoints (default: every step in ``scores``).
        k: top-k for the Jaccard statistic.
        attention: also compute the paper's attention-matrix difference (on the lengths all
            tasks were trained on).
        n_examples: examples per length for the attention patterns.
        progress: progress bar.
        device: where to take the attention patterns (see the module docstring).

    Returns:
        ``(overlap, attention)``: the long overlap table with ``run, step, method, metric``
        columns, and the per-head attention differences with ``run, step``.
    """
    steps = list(steps) if steps is not None else sorted(scores["step"].unique().tolist())
    spec = read_run_spec(run_dir)
    pairs = [
        _overlap_at(load_run(run_dir, step, device, spec=spec), scores[scores["step"] == step],
                    k, attention, n_examples)
        for step in tqdm(steps, desc="overlap", disable=not progress)
    ]  # fmt: skip
    overlap, attn = _concat([o for o, _ in pairs]), _concat([a for _, a in pairs])
    _write_tables(run_dir, overlap=overlap, attention=attn)
    return overlap, attn


def overlap_run(
    run_dir: str | Path,
    checkpoint: int | None = None,
    k: int = 4,
    n_examples: int = 128,
    device: str | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """``interp overlap``: head scores (reused from the ``scores`` table when it covers the
    checkpoint) and overlap at one checkpoint, written to ``RUN_DIR/analysis/``. The heatmaps
    are the presentation stage's: :func:`interp.report.plots.write_overlap_figures` draws them from
    these tables.

    Args:
        run_dir: the run.
        checkpoint: the step (default: the latest).
        k: top-k for the Jaccard statistic.
        n_examples: examples per length for scoring (at most 64 for attention).
        device: where to score.
        batch_size: rows per forward pass.

    Returns:
        The checkpoint's overlap table.
    """
    spec = read_run_spec(run_dir)
    if len(spec.task_names) < 2:
        raise InterpError(f"run {spec.name!r} trains one task: there is no pair to compare")
    step = (
        _steps(run_dir, [checkpoint])[0] if checkpoint is not None else run_checkpoints(run_dir)[-1]
    )
    rd = RunDir(run_dir)
    scores = rd.read_table("scores") if rd.has_table("scores") else pd.DataFrame()
    if (
        not len(scores)
        or step not in set(scores["step"])
        or set(spec.task_names) - set(scores.loc[scores["step"] == step, "task"])
    ):
        scores = score_run(
            run_dir,
            steps=[step],
            n_examples=n_examples,
            progress=False,
            device=device,
            batch_size=batch_size,
        )
    scores = scores[scores["step"] == step]
    overlap, _ = overlap_over_checkpoints(
        run_dir,
        scores,
        [step],
        k=k,
        n_examples=min(n_examples, 64),
        progress=False,
        device=device,
    )
    return overlap


def analyze_run(
    run_dir: str | Path,
    steps: Sequence[int] | None = None,
    methods: Sequence[str] = ("mean_ablation",),
    metrics: Sequence[str] = ("exact_match", "frac_lost"),
    n_examples: int = 128,
    k: int = 4,
    attention: bool = True,
    progress: bool = True,
    device: str | None = None,
    batch_size: int | None = None,
    stages: StageProgress | None = None,
) -> dict[str, pd.DataFrame]:
    """Accuracy, head scores, attention differences and overlap at every checkpoint of a run.

    Each checkpoint is loaded once (on ``device``) and every measurement is taken on that model.
    ``stages`` reports each stage as it starts (:mod:`interp.core.progress`; a sweep's analysis
    passes its own, planned over all runs); without it, ``progress`` prints this run's stages.
    """
    spec = read_run_spec(run_dir)
    multi = len(spec.task_names) > 1
    tasks = _check_scoring(spec, None, methods, metrics)
    chosen = _steps(run_dir, steps)
    name = Path(run_dir).name
    if stages is None and progress:
        stages = StageProgress(run_plan(name, len(chosen), multi))
    acc, scores, overlap, attn = [], [], [], []
    for step in tqdm(chosen, desc="analyze", disable=not progress):
        with maybe_stage(stages, name, ACCURACY, f"step {step}"):
            run = load_run(run_dir, step, device, spec=spec)
            acc.append(_accuracy_at(run, n_examples, batch_size))
        if multi:
            with maybe_stage(stages, name, SCORES, f"step {step}"):
                sc = _scores_at(run, tasks, methods, metrics, None, n_examples, batch_size)
            with maybe_stage(stages, name, OVERLAP, f"step {step}"):
                ov, at = _overlap_at(run, sc, k, attention, min(64, n_examples))
            scores.append(sc)
            overlap.append(ov)
            attn.append(at)
    out = {"accuracy": _concat(acc)}
    if multi:
        out.update(scores=_concat(scores), overlap=_concat(overlap), attention=_concat(attn))
    _write_tables(run_dir, **out)
    return out
