"""Analysis specs: a sweep plus what to measure on it, from training to the tables of a report.

An analysis spec (one per paper figure in ``analyses/``) is a sweep spec (:mod:`interp.sweep`)
with two optional extra tables::

    [analysis]
    figure = "fig3"                 # which paper figure it reproduces (a label for the report)
    methods = ["mean_ablation"]     # head-scoring methods (interp.heads.METHODS)
    metrics = ["exact_match"]       # metrics (interp.heads.METRICS)
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
``transfer`` (overlap joined with the generalization gap and transfer strength per checkpoint),
``correlations`` (Pearson/Spearman with bootstrap CIs and permutation p-values over checkpoints,
seeds and groups), ``causal`` and ``meta``, all Parquet; ``interp report DIR`` turns them into
HTML.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from interp.errors import InterpError, unknown_choice
from interp.io import read_json, write_json, write_parquet
from interp.pipeline import accuracy_over_checkpoints, analyze_run
from interp.runs import load_run, read_run_spec, run_checkpoints

SCALES = ("cpu", "paper")
ANALYSIS_DIR = "analysis"
CONFIG_JSON = "analysis.json"
# Counts (examples, k, random sets) above this are typos, not experiments.
_MAX_COUNT = 1_000_000


@dataclass
class AnalysisConfig:
    """What :func:`analyze_sweep` measures (see the module docstring)."""

    figure: str = ""
    methods: list[str] = field(default_factory=lambda: ["mean_ablation"])
    metrics: list[str] = field(default_factory=lambda: ["exact_match"])
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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InterpError(
                f"analysis spec: unknown keys {unknown} in [analysis]; valid keys: "
                f"{', '.join(sorted(known))}"
            )
        for key, value in d.items():
            _check_analysis_value(key, value)
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
        p = Path(spec)
        if not p.is_file():
            raise InterpError(f"spec file not found: {p}")
        try:
            d = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InterpError(f"malformed spec {p}: {e}") from None
    cfg = AnalysisConfig.from_dict(d.pop("analysis", None))
    paper = d.pop("paper", None)
    if scale == "paper":
        if not isinstance(paper, dict):
            raise InterpError("this spec has no [paper] table: it defines no paper-scale variant")
        d = _merge(d, paper)
    return d, cfg


def _read_cells(sweep_dir: Path) -> pd.DataFrame:
    p = sweep_dir / "cells.parquet"
    if not p.is_file():
        raise InterpError(f"{sweep_dir} is not a sweep directory (no cells.parquet)")
    return pd.read_parquet(p)


def analyze_sweep(
    sweep_dir: str | Path, cfg: AnalysisConfig | None = None, progress: bool = True
) -> dict[str, pd.DataFrame]:
    """Measure every finished run of a sweep and write the tables to ``SWEEP_DIR/analysis/``.

    Baseline (main-only) runs get accuracy per checkpoint; every other run also gets head
    scores, attention differences and overlap per checkpoint and, if ``cfg.causal``, the causal
    test at its last checkpoint. Runs without checkpoints are skipped (and listed in ``meta``
    with ``analyzed = False``).
    """
    from interp.transfer import transfer_correlations, transfer_table

    cfg = cfg or AnalysisConfig()
    sweep_dir = Path(sweep_dir)
    cells = _read_cells(sweep_dir)
    frames: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("accuracy", "scores", "overlap", "attention", "causal")
    }
    analyzed = []
    for row in tqdm(list(cells.itertuples(index=False)), desc="analyze runs", disable=not progress):
        run_dir = sweep_dir / "runs" / row.run
        steps = run_checkpoints(run_dir) if (run_dir / "config.json").is_file() else []
        analyzed.append(bool(steps))
        if not steps:
            continue
        chosen = steps if cfg.checkpoints == "all" else steps[-1:]
        if row.kind == "baseline":
            frames["accuracy"].append(
                accuracy_over_checkpoints(run_dir, chosen, cfg.n_examples, progress=False)
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
        )
        for key in ("accuracy", "scores", "overlap", "attention"):
            if key in out and len(out[key]):
                frames[key].append(out[key].assign(run=row.run))
        if cfg.causal:
            frames["causal"].append(causal_for_run(run_dir, out.get("scores"), cfg))
    tables = {k: pd.concat(v, ignore_index=True) for k, v in frames.items() if v}
    meta = cells.assign(analyzed=analyzed)
    tables["meta"] = meta
    if "accuracy" in tables:
        tables["accuracy"]["run"] = tables["accuracy"]["run"].astype(str)
    if "overlap" in tables:
        ov = tables["overlap"]
        first = ov[["method", "metric"]].iloc[0]
        ov1 = ov[(ov["method"] == first["method"]) & (ov["metric"] == first["metric"])]
        table = transfer_table(ov1, tables["accuracy"], meta)
        tables["transfer"] = table
        tables["correlations"] = transfer_correlations(table, n_boot=1000, n_perm=1000)
    out_dir = sweep_dir / ANALYSIS_DIR
    for name, df in tables.items():
        write_parquet(out_dir / f"{name}.parquet", df.reset_index(drop=True))
    return tables


def save_config(sweep_dir: str | Path, cfg: AnalysisConfig) -> Path:
    """Keep a sweep's analysis config beside it, for a later ``interp analyze SWEEP_DIR``."""
    return write_json(Path(sweep_dir) / CONFIG_JSON, cfg.to_dict())


def read_config(sweep_dir: str | Path) -> AnalysisConfig:
    """The analysis config saved by ``interp sweep`` (the defaults if there is none)."""
    p = Path(sweep_dir) / CONFIG_JSON
    if not p.is_file():
        return AnalysisConfig()
    try:
        return AnalysisConfig.from_dict(read_json(p))
    except InterpError as e:
        raise InterpError(f"corrupt {p}: {e}") from None


def analyze_path(
    path: str | Path, overrides: dict[str, Any] | None = None, progress: bool = True
) -> dict[str, pd.DataFrame]:
    """``interp analyze``: analyse a sweep directory or a single run directory.

    A sweep uses the analysis config ``interp sweep`` saved with it; a run uses the defaults.
    ``overrides`` (``AnalysisConfig`` fields) replace either, and are validated like a spec's
    ``[analysis]`` table. A run's tables go to ``RUN_DIR/analysis/`` (:func:`analyze_run`), plus
    ``causal.parquet`` when the run has a transfer range and ``causal`` is on.

    Raises:
        InterpError: for a directory that is neither a run nor a sweep, or bad overrides.
    """
    path = Path(path)
    if not path.is_dir():
        raise InterpError(f"directory not found: {path}")
    is_sweep = (path / "cells.parquet").is_file()
    if not (is_sweep or (path / "config.json").is_file()):
        raise InterpError(f"{path} is neither a run directory nor a sweep directory")
    base = read_config(path) if is_sweep else AnalysisConfig()
    cfg = AnalysisConfig.from_dict({**base.to_dict(), **(overrides or {})})
    if is_sweep:
        return analyze_sweep(path, cfg, progress=progress)
    steps = run_checkpoints(path)
    if not steps:
        raise InterpError(f"no checkpoints in {path}: nothing to analyse")
    out = analyze_run(
        path,
        steps if cfg.checkpoints == "all" else steps[-1:],
        methods=cfg.methods,
        metrics=cfg.metrics,
        n_examples=cfg.n_examples,
        k=cfg.k,
        attention=cfg.attention,
        progress=progress,
    )
    if cfg.causal and read_run_spec(path).aux:
        causal = causal_for_run(path, out.get("scores"), cfg)
        if len(causal):
            out["causal"] = causal
            write_parquet(path / ANALYSIS_DIR / "causal.parquet", causal)
    return out


def causal_for_run(
    run_dir: str | Path, scores: pd.DataFrame | None, cfg: AnalysisConfig
) -> pd.DataFrame:
    """The causal shared-head test at a run's last checkpoint (empty without a transfer range)."""
    from interp.causal import causal_test

    spec = read_run_spec(run_dir)
    lo, main_max = spec.train_range(spec.main)
    aux_max = max(spec.train_range(a)[1] for a in spec.aux)
    if aux_max <= main_max:
        return pd.DataFrame()
    run = load_run(run_dir)
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
    )
    return df.assign(run=spec.name, step=run.step)
