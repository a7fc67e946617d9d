"""Analysis specs: a sweep plus what to measure on it, from training to the tables of a report.

An analysis spec (one per paper figure in ``analyses/``) is a sweep spec (:mod:`interp.sweep`)
with two optional extra tables::

    [analysis]
    figure = "fig3"                 # which paper figure it reproduces (a label for the report)
    methods = ["mean_ablation"]     # head-scoring methods (interp.heads.METHODS)
    metrics = ["exact_match", "frac_lost"]  # metrics (interp.heads.METRICS; + "logprob")
    n_examples = 128                # examples per length for accuracy, scoring, attention
    k = 4                           # top-k for the Jaccard overlap
    checkpoints = "all"             # score every checkpoint ("all") or only the last ("last")
    attention = true                # the paper's attention-matrix difference
    causal = true                   # the causal shared-head test at the last checkpoint
    causal_k = 3                    # heads ablated by the causal test
    causal_random = 30              # matched random head sets

    [paper]                         # overrides for --scale paper (GPU users), merged into
    presets = ["paper"]             # the sweep keys; nested tables merge key by key
    lengths = [[16, 32]]

``interp sweep SPEC --out DIR --analyze`` trains the grid, then :func:`analyze_sweep` writes
``DIR/analysis/``: ``accuracy``, ``scores``, ``attention``, ``overlap`` (per run and checkpoint),
``transfer`` (overlap joined with the gap per checkpoint), ``correlations`` (descriptive only
within a run), ``runs``/``between``/``within`` (the tests, whose unit is the run), ``causal``,
``causal_sets``, ``dose_sets``/``dose`` and ``interchange`` (:mod:`interp.dose`,
:mod:`interp.interchange`) and ``meta``, all Parquet; ``interp report DIR`` turns them into HTML.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from interp.config import check_fields, check_keys, read_config_file
from interp.errors import InterpError, unknown_choice
from interp.io import read_json, write_json
from interp.pipeline import accuracy_over_checkpoints, analyze_run
from interp.rundir import RunDir, SweepDir, open_dir
from interp.runs import load_run, read_run_spec

SCALES = ("cpu", "paper")
# Counts (examples, k, random sets) above this are typos, not experiments.
_MAX_COUNT = 1_000_000


@dataclass
class AnalysisConfig:
    """What :func:`analyze_sweep` measures (see the module docstring)."""

    figure: str = ""
    methods: list[str] = field(default_factory=lambda: ["mean_ablation"])
    metrics: list[str] = field(default_factory=lambda: ["exact_match", "frac_lost"])
    n_examples: int = 128
    k: int = 4
    checkpoints: str = "all"
    attention: bool = True
    causal: bool = True
    causal_k: int = 3
    causal_random: int = 30
    description: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AnalysisConfig:
        """Validate an ``[analysis]`` table (types, ranges and method/metric names).

        Raises:
            InterpError: naming the first bad key, its value and what it must be.
        """
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise InterpError("analysis spec: [analysis] must be a table")
        check_keys(d, {f.name for f in fields(cls)}, "analysis spec", "analysis")
        for key, value in d.items():
            _check_analysis_value(key, value)  # ranges and names, with the specific messages
        check_fields(cls, d, "analysis spec", "analysis")  # and the types, as every config
        return cls(**{k: list(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_analysis_value(key: str, value: Any) -> None:
    from interp.heads import METHODS, METRICS
    from interp.spec import is_int

    def bad(want: str) -> InterpError:
        return InterpError(f"analysis spec: [analysis] {key} must be {want}, got {value!r}")

    if key in ("figure", "description"):
        if not isinstance(value, str):
            raise bad("a string")
    elif key in ("methods", "metrics"):
        choices = METHODS if key == "methods" else METRICS
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise bad(f"a non-empty list of names from {', '.join(choices)}")
        for v in value:
            if v not in choices:
                raise unknown_choice(key[:-1], v, choices)
    elif key in ("attention", "causal"):
        if not isinstance(value, bool):
            raise bad("true or false")
    elif key == "checkpoints":
        if value not in ("all", "last"):
            raise bad("'all' or 'last'")
    elif not (is_int(value) and 1 <= value <= _MAX_COUNT):
        raise bad(f"an integer in 1..{_MAX_COUNT}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_analysis_spec(
    spec: str | Path | dict[str, Any], scale: str = "cpu"
) -> tuple[dict[str, Any], AnalysisConfig]:
    """Split an analysis spec into ``(sweep spec dict, analysis config)`` at ``scale``."""
    if scale not in SCALES:
        raise unknown_choice("scale", scale, SCALES)
    if isinstance(spec, dict):
        d = copy.deepcopy(spec)
    else:
        d = read_config_file(spec)
    cfg = AnalysisConfig.from_dict(d.pop("analysis", None))
    paper = d.pop("paper", None)
    if scale == "paper":
        if not isinstance(paper, dict):
            raise InterpError("this spec has no [paper] table: it defines no paper-scale variant")
        d = _merge(d, paper)
    return d, cfg


def analyze_sweep(
    sweep_dir: str | Path,
    cfg: AnalysisConfig | None = None,
    progress: bool = True,
    device: str | None = None,
    batch_size: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Measure every finished run of a sweep and write the tables to ``SWEEP_DIR/analysis/``.

    Baseline (main-only) runs get accuracy per checkpoint; every other run also gets head
    scores, attention differences and overlap per checkpoint and, if ``cfg.causal``, the causal
    test at its last checkpoint. Runs without checkpoints are skipped (and listed in ``meta``
    with ``analyzed = False``). ``device`` and ``batch_size`` are passed to every stage (see
    :mod:`interp.pipeline`).
    """
    from interp.metrics import unseen_lengths
    from interp.transfer import transfer_correlations, transfer_table

    cfg = cfg or AnalysisConfig()
    sweep = SweepDir(sweep_dir)
    cells = sweep.cells()
    frames: dict[str, list[pd.DataFrame]] = {
        k: []
        for k in (
            "accuracy", "scores", "overlap", "attention", "causal", "causal_sets",
            "dose_sets", "dose", "interchange",
        )
    }  # fmt: skip
    analyzed = []
    for row in tqdm(list(cells.itertuples(index=False)), desc="analyze runs", disable=not progress):
        rd = sweep.run(row.run)
        run_dir = rd.path
        steps = rd.checkpoints() if rd.is_run() else []
        analyzed.append(bool(steps))
        if not steps:
            continue
        chosen = steps if cfg.checkpoints == "all" else steps[-1:]
        if row.kind == "baseline":
            frames["accuracy"].append(
                accuracy_over_checkpoints(
                    run_dir,
                    chosen,
                    cfg.n_examples,
                    progress=False,
                    device=device,
                    batch_size=batch_size,
                )
            )
            continue
        out = analyze_run(
            run_dir,
            chosen,
            methods=cfg.methods,
            metrics=cfg.metrics,
            n_examples=cfg.n_examples,
            k=cfg.k,
            attention=cfg.attention,
            progress=False,
            device=device,
            batch_size=batch_size,
        )
        for key in ("accuracy", "scores", "overlap", "attention"):
            if key in out and len(out[key]):
                frames[key].append(out[key].assign(run=row.run))
        if cfg.causal:
            frames["causal"].append(
                causal_for_run(run_dir, out.get("scores"), cfg, device, batch_size)
            )
            frames["causal_sets"].append(head_sets_for_run(run_dir, cfg))
            d_sets, d_sum = dose_for_run(run_dir, cfg)
            frames["dose_sets"].append(d_sets)
            frames["dose"].append(d_sum)
            frames["interchange"].append(interchange_for_run(run_dir, cfg))
    tables = {k: pd.concat(v, ignore_index=True) for k, v in frames.items() if v}
    meta = cells.assign(analyzed=analyzed)
    tables["meta"] = meta
    if "accuracy" in tables:
        tables["accuracy"]["run"] = tables["accuracy"]["run"].astype(str)
    if "overlap" in tables:
        ov = tables["overlap"]
        # One transfer table per scoring method and metric, side by side: never averaged
        # across them, never one picked silently.
        parts = [
            transfer_table(sub, tables["accuracy"], meta).assign(score_method=m, score_metric=k)
            for (m, k), sub in ov.groupby(["method", "metric"], sort=True)
        ]
        table = pd.concat(parts, ignore_index=True)
        tables["transfer"] = table
        tables["correlations"] = transfer_correlations(table, n_boot=1000, n_perm=1000)
        id_lengths = {}
        for row in meta[meta["analyzed"]].itertuples(index=False):  # failed cells: no spec
            id_lengths[row.run] = unseen_lengths(sweep.run(row.run).spec())
        tables.update(run_level_tables(ov, tables["accuracy"], meta, id_lengths))
    if "causal_sets" in tables and "slope" in tables["causal_sets"].columns:
        tables["causal_slopes"] = causal_slopes(tables["causal_sets"], meta)
    for name, df in tables.items():
        sweep.write_table(name, df.reset_index(drop=True))
    return tables


def ensure_analyzed(path: str | Path, progress: bool = True) -> bool:
    """Analyse a sweep or run directory unless its tables exist (what ``interp report`` does).

    Returns:
        Whether the analysis ran.

    Raises:
        InterpError: if ``path`` is neither a run nor a sweep directory.
    """
    d = open_dir(path)
    if d.has_analysis():
        return False
    if isinstance(d, RunDir):
        analyze_run(d.path, progress=progress)
    else:
        analyze_sweep(d.path, progress=progress)
    return True


def run_level_tables(
    overlap: pd.DataFrame,
    acc: pd.DataFrame,
    meta: pd.DataFrame,
    id_lengths: dict[str, list[int]] | None = None,
) -> dict[str, pd.DataFrame]:
    """The statistics whose unit is the run (:mod:`interp.between`, :mod:`interp.within`).

    ``id_lengths`` gives, per run, the main-task lengths that measure in-distribution
    competence (:func:`interp.metrics.unseen_lengths`: the training lengths whose test items
    were not seen in training); the ``runs`` table records them in ``competence_lengths``.

    Returns:
        ``runs`` (one row per run and overlap statistic at its last checkpoint), ``between``
        (the primary test per method/metric/statistic), ``contrasts`` (related vs control, for
        the pre-declared primary combination), ``within_runs`` (each run's post-convergence
        summary, no test) and ``within`` (the sign-flip test across runs).
    """
    from interp.between import PRIMARY, between_table, prepare, related_vs_control
    from interp.run_table import run_table
    from interp.within import combine, convergence, per_run

    out: dict[str, pd.DataFrame] = {}
    runs = run_table(overlap, acc, meta, id_lengths=id_lengths)
    if not len(runs):
        return out
    out["runs"] = runs
    out["between"] = between_table(runs, n_perm=2000, n_boot=1000)
    prim = runs
    for k, v in PRIMARY.items():
        if k in prim.columns:
            prim = prim[prim[k] == v]
    if len(prim):
        out["contrasts"] = related_vs_control(prepare(prim), n_boot=1000)
    allsteps = run_table(overlap, acc, meta, step="all", id_lengths=id_lengths)
    within_runs = per_run(allsteps, convergence(acc, meta))
    if len(within_runs):
        out["within_runs"] = within_runs
        out["within"] = combine(within_runs)
    return out


def save_config(sweep_dir: str | Path, cfg: AnalysisConfig) -> Path:
    """Keep a sweep's analysis config beside it, for a later ``interp analyze SWEEP_DIR``."""
    return write_json(SweepDir(sweep_dir).analysis_config_path, cfg.to_dict())


def read_config(sweep_dir: str | Path) -> AnalysisConfig:
    """The analysis config saved by ``interp sweep`` (the defaults if there is none)."""
    p = SweepDir(sweep_dir).analysis_config_path
    if not p.is_file():
        return AnalysisConfig()
    try:
        return AnalysisConfig.from_dict(read_json(p))
    except InterpError as e:
        raise InterpError(f"corrupt {p}: {e}") from None


def analyze_path(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    device: str | None = None,
    batch_size: int | None = None,
) -> dict[str, pd.DataFrame]:
    """``interp analyze``: analyse a sweep directory or a single run directory.

    A sweep uses the analysis config ``interp sweep`` saved with it; a run uses the defaults.
    ``overrides`` (``AnalysisConfig`` fields) replace either, and are validated like a spec's
    ``[analysis]`` table. A run's tables go to ``RUN_DIR/analysis/`` (:func:`analyze_run`), plus
    ``causal.parquet`` when the run has a transfer range and ``causal`` is on. ``device`` and
    ``batch_size`` are passed to every stage.

    Raises:
        InterpError: for a directory that is neither a run nor a sweep, or bad overrides.
    """
    d = open_dir(path)
    base = read_config(d.path) if isinstance(d, SweepDir) else AnalysisConfig()
    cfg = AnalysisConfig.from_dict({**base.to_dict(), **(overrides or {})})
    if isinstance(d, SweepDir):
        return analyze_sweep(d.path, cfg, progress=progress, device=device, batch_size=batch_size)
    steps = d.checkpoints()
    if not steps:
        raise InterpError(f"no checkpoints in {d.path}: nothing to analyse")
    out = analyze_run(
        d.path,
        steps if cfg.checkpoints == "all" else steps[-1:],
        methods=cfg.methods,
        metrics=cfg.metrics,
        n_examples=cfg.n_examples,
        k=cfg.k,
        attention=cfg.attention,
        progress=progress,
        device=device,
        batch_size=batch_size,
    )
    if cfg.causal and d.spec().aux:
        causal = causal_for_run(d.path, out.get("scores"), cfg, device, batch_size)
        if len(causal):
            out["causal"] = causal
            d.write_table("causal", causal)
    return out


def causal_for_run(
    run_dir: str | Path,
    scores: pd.DataFrame | None,
    cfg: AnalysisConfig,
    device: str | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """The causal shared-head test at a run's last checkpoint (empty without a transfer range)."""
    from interp.causal import causal_test

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
        (main_max + 1, aux_max),
        k=min(cfg.causal_k, n_heads - 1),
        n_random=cfg.causal_random,
        n_examples=cfg.n_examples,
        seed=spec.eval.seed,
        scores=sc,
        n_boot=1000,
        batch_size=batch_size or spec.eval.batch_size or None,
    )
    return df.assign(run=spec.name, step=run.step)


def head_sets_for_run(run_dir: str | Path, cfg: AnalysisConfig, max_size: int = 3) -> pd.DataFrame:
    """Every head set of size 1..``max_size`` ablated at the run's last checkpoint
    (:func:`interp.head_sets.causal_sets`); one row per set with the run's ``slope``."""
    from interp.head_sets import causal_sets

    spec = read_run_spec(run_dir)
    lo, main_max = spec.train_range(spec.main)
    aux_max = max(spec.train_range(a)[1] for a in spec.aux)
    if aux_max <= main_max:
        return pd.DataFrame()
    run = load_run(run_dir, spec=spec)
    df, summary = causal_sets(
        run.model, spec.main, spec.aux, (lo, main_max), (main_max + 1, aux_max),
        n_examples=cfg.n_examples, seed=spec.eval.seed, max_size=max_size,
    )  # fmt: skip
    return df.assign(run=spec.name, step=run.step, slope=summary["slope"])


def causal_slopes(sets: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """The sign-flip test across runs of each kind of the head-set slopes, with every run that
    has none listed as not applicable (:func:`interp.within.head_set_summary`): columns of
    :func:`interp.within.combine` plus ``not_applicable``."""
    from interp.within import head_set_summary

    return head_set_summary(sets, meta)


def _ranges(run_dir: str | Path) -> tuple[Any, tuple[int, int], tuple[int, int]] | None:
    """``(spec, main range, transfer range)``, or None for a run without a transfer range."""
    spec = read_run_spec(run_dir)
    lo, main_max = spec.train_range(spec.main)
    aux_max = max((spec.train_range(a)[1] for a in spec.aux), default=main_max)
    if aux_max <= main_max:
        return None
    return spec, (lo, main_max), (main_max + 1, aux_max)


def dose_for_run(run_dir: str | Path, cfg: AnalysisConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dose-matched graded ablation at the run's last checkpoint (:func:`interp.dose.dose_matched`,
    pre-declared: top-4 of each map, subsets of up to 2 heads, d_ID = 0.2): ``(sets, summary)``,
    both with ``run, step``; empty without a transfer range or when the clean model solves
    nothing in the training range."""
    from interp.dose import dose_matched

    r = _ranges(run_dir)
    if r is None:
        return pd.DataFrame(), pd.DataFrame()
    spec, main_range, transfer = r
    run = load_run(run_dir, spec=spec)
    try:
        sets, summary = dose_matched(
            run.model, spec.main, spec.aux, main_range, transfer,
            n_examples=cfg.n_examples, seed=spec.eval.seed,
        )  # fmt: skip
    except InterpError:
        return pd.DataFrame(), pd.DataFrame()
    tag = {"run": spec.name, "step": run.step}
    return sets.assign(**tag), summary.assign(**tag)


def interchange_for_run(run_dir: str | Path, cfg: AnalysisConfig) -> pd.DataFrame:
    """Cross-task interchange patching at the run's last checkpoint on the transfer range
    (:func:`interp.interchange.interchange_scores`), for each auxiliary whose prompts share the
    main task's operand layout (the others are skipped: there is no same-operand pair)."""
    from interp.interchange import interchange_scores

    r = _ranges(run_dir)
    if r is None:
        return pd.DataFrame()
    spec, _, (lo, hi) = r
    run = load_run(run_dir, spec=spec)
    frames = []
    for a in spec.aux:
        try:
            df = interchange_scores(
                run.model, spec.main, a, list(range(lo, hi + 1)),
                n_examples=cfg.n_examples, seed=spec.eval.seed,
            )  # fmt: skip
        except InterpError:
            continue
        frames.append(df.assign(run=spec.name, step=run.step))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
