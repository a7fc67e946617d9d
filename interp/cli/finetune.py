"""The paper's pretrained-model experiment: fine-tune each pretraining checkpoint the same way.

The paper fine-tunes checkpoints of SmolLM-360M taken at increasing pretraining steps on reverse
add (and on maze shortest path) and finds that later checkpoints extrapolate further beyond the
fine-tuning lengths: pretraining acts like a related auxiliary task. Here an *experiment spec*
lists local checkpoint directories and one fine-tuning recipe; :func:`run_experiment` fine-tunes
every checkpoint with the same budget (:mod:`interp.models.pretrained`, :mod:`interp.runs.train`),
evaluates
accuracy against length, and computes the gap per checkpoint.

Experiment spec (``analyses/pretrained/smollm_reverse_add.toml`` is the paper's)::

    name = "smollm_reverse_add"
    main = "reverse_add"
    checkpoints = ["ckpt/step-160000", "ckpt/step-2560000"]   # local Hugging Face directories
    pretraining_steps = [160000, 2560000]                   # optional: labels and x axis

    [[tasks]]                    # the fine-tuning mixture, as in a run spec
    name = "reverse_add"
    lengths = [1, 8]

    [model]                      # optional; only n_ctx may be set (the rest is the checkpoint's)
    [optim]                      # the same [optim], [train] and [eval] for every checkpoint
    [train]
    [eval]
    max_length = 16              # accuracy is measured up to here

Every key but ``checkpoints`` and ``pretraining_steps`` is a run spec's
(:class:`~interp.runs.spec.TrainSpec`); each checkpoint's run is that spec with
``[model] pretrained`` set to the directory. Checkpoint paths are relative to the current
directory. Every cell is resolved (every checkpoint directory read and checked) before anything
is trained or written.

Layout of ``OUT``::

    experiment.json       the spec as given
    runs/<label>/         an ordinary run directory per checkpoint (resumed if unfinished)
    accuracy.parquet      checkpoint, pretraining_step, task, length, accuracy, n, logprob,
                          in_train (length within that task's fine-tuning range)
    gap.parquet           per checkpoint: train_accuracy, extrapolation_accuracy, gap, gap_kind
    pretrained.html       accuracy vs length per checkpoint, and the gap vs pretraining step

**The gap.** With auxiliary tasks in the mixture it is the package's generalization gap
(:func:`interp.scoring.evaluate.generalization_gap`, main against auxiliaries over the transfer
range).
The paper's experiment fine-tunes the main task alone; then the reference curve is the main
task's own mean accuracy over its fine-tuning lengths ``acc_in``, and::

    gap = mean_{train_max < L <= eval_max} max(0, acc_in - acc(L)) / acc_in

(NaN when ``acc_in < 0.05``: a checkpoint that did not learn the task has no gap to speak of).
0 means the model is as accurate beyond its fine-tuning lengths as within them, 1 that it fails
everywhere beyond them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots
from transformer_lens import HookedTransformer

from interp.core.config import is_int, read_config_file
from interp.core.errors import InterpError
from interp.core.io import read_json, write_json, write_parquet
from interp.runs.dir_kinds import EXPERIMENT_KIND, claim_dir
from interp.runs.dirs import ExperimentDir, RunDir
from interp.runs.spec import TrainSpec, load_spec
from interp.scoring.evaluate import AUX_SOLVED, accuracy_table, generalization_gap

_EXPERIMENT_KEYS = {"checkpoints", "pretraining_steps"}


@dataclass
class Cell:
    """One checkpoint's fine-tuning run.

    Attributes:
        label: the run directory's name (``step<N>`` or the checkpoint directory's name).
        path: the checkpoint directory.
        pretraining_step: its pretraining step (its index when the spec gives none).
        spec: the resolved run spec.
    """

    label: str
    path: str
    pretraining_step: int
    spec: TrainSpec


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """A spec file (``.toml`` or ``.json``) as a dict."""
    return read_config_file(path)


def is_experiment(d: dict[str, Any]) -> bool:
    """Whether a spec dict is an experiment spec (it lists ``checkpoints``)."""
    return "checkpoints" in d


def expand(d: dict[str, Any]) -> list[Cell]:
    """Resolve an experiment spec into one run spec per checkpoint.

    Raises:
        InterpError: malformed ``checkpoints``/``pretraining_steps``, a ``[model]`` key other
            than ``n_ctx``, duplicate labels, or any checkpoint directory or run spec that
            does not resolve.
    """
    paths = d.get("checkpoints")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise InterpError("experiment spec: 'checkpoints' must be a non-empty list of paths")
    steps = d.get("pretraining_steps")
    if steps is not None and (
        not isinstance(steps, list)
        or len(steps) != len(paths)
        or not all(is_int(s) and s >= 0 for s in steps)
    ):
        raise InterpError(
            "experiment spec: 'pretraining_steps' must list one non-negative integer per checkpoint"
        )
    model = d.get("model") or {}
    if not isinstance(model, dict) or set(model) - {"n_ctx"}:
        raise InterpError(
            "experiment spec: [model] may set only n_ctx (each checkpoint brings its own "
            "architecture)"
        )
    base = {k: v for k, v in d.items() if k not in _EXPERIMENT_KEYS}
    name = d.get("name", "pretrained")
    if not isinstance(name, str) or not name.strip():
        raise InterpError(f"experiment spec: name must be a non-empty string, got {name!r}")
    cells, labels = [], set()
    for i, path in enumerate(paths):
        step = steps[i] if steps is not None else i
        label = f"step{step}" if steps is not None else Path(path).name
        if label in ("", ".", ".."):  # a run directory's name, never a way out of OUT/runs
            label = f"checkpoint{i}"
        if label in labels:
            raise InterpError(
                f"experiment spec: two checkpoints get the run name {label!r}; give "
                "pretraining_steps or distinct directory names"
            )
        labels.add(label)
        run = {**base, "name": f"{name}-{label}", "model": {**model, "pretrained": path}}
        try:
            spec = TrainSpec.from_dict(run)
        except InterpError as e:
            raise InterpError(f"checkpoint {path}: {e}") from None
        cells.append(Cell(label, path, int(step), spec))
    return cells


def extrapolation_gap(acc: pd.DataFrame, task: str, train_max: int, eval_max: int) -> float:
    """The main task's gap against its own fine-tuning accuracy (see the module docstring)."""
    sub = acc[acc["task"] == task].set_index("length")["accuracy"]
    inside = sub[sub.index <= train_max]
    outside = sub[(sub.index > train_max) & (sub.index <= eval_max)]
    if inside.empty or outside.empty:
        return float("nan")
    acc_in = float(inside.mean())
    if acc_in < AUX_SOLVED:
        return float("nan")
    return float(np.mean([max(0.0, acc_in - a) / acc_in for a in outside]))


def gap_row(acc: pd.DataFrame, spec: TrainSpec) -> dict[str, Any]:
    """Train-range and beyond-range accuracy of the main task, and the gap, for one run."""
    main = spec.main
    train_max = spec.train_range(main)[1]
    eval_max = spec.eval.max_length
    m = acc[acc["task"] == main]
    inside = m[m["length"] <= train_max]["accuracy"]
    outside = m[m["length"] > train_max]["accuracy"]
    if spec.aux:
        aux_max = max(spec.train_range(a)[1] for a in spec.aux)
        gap, kind = generalization_gap(acc, main, spec.aux, train_max, aux_max), "aux"
    else:
        gap, kind = extrapolation_gap(acc, main, train_max, eval_max), "in_distribution"
    return {
        "main": main,
        "train_max": train_max,
        "eval_max": eval_max,
        "train_accuracy": float(inside.mean()) if len(inside) else float("nan"),
        "extrapolation_accuracy": float(outside.mean()) if len(outside) else float("nan"),
        "gap": gap,
        "gap_kind": kind,
    }


def evaluate_run(
    model: HookedTransformer, spec: TrainSpec, run_dir: Path, step: int, progress: bool
) -> pd.DataFrame:
    """Final accuracy per task and length (``eval.final_examples`` each), saved like
    ``interp eval`` saves it (``RUN_DIR/eval/step_NNNNNN.parquet``)."""
    acc = accuracy_table(
        model,
        spec.task_names,
        {t: spec.eval_lengths(t) for t in spec.task_names},
        n_examples=spec.eval.final_examples,
        seed=spec.eval.seed,
        progress=progress,
        run=spec.name,
        step=step,
    )
    RunDir(run_dir).write_eval(step, acc)
    return acc


def finetune_run(
    spec: TrainSpec, run_dir: str | Path, device: str = "cpu", progress: bool = True
) -> pd.DataFrame:
    """Fine-tune a run (resuming an unfinished one; a finished one is only reloaded) and
    return its final accuracy table."""
    from interp.runs.train import train

    model = train(spec, run_dir, progress=progress, device=device)
    return evaluate_run(model, spec, Path(run_dir), spec.train.steps, progress)


def run_experiment(
    spec: str | Path | dict[str, Any],
    out: str | Path,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fine-tune every checkpoint of an experiment spec and write the tables and the figure.

    Returns:
        ``(accuracy, gap)``, the frames also written to ``OUT/accuracy.parquet`` and
        ``OUT/gap.parquet``.
    """
    d = spec if isinstance(spec, dict) else read_spec_file(spec)
    cells = expand(d)
    exp = ExperimentDir(out)
    claim_dir(exp.path, EXPERIMENT_KIND)  # not a run, sweep or zoo entry
    if exp.spec_path.is_file() and read_json(exp.spec_path) != json.loads(json.dumps(d)):
        raise InterpError(
            f"{out} already holds an experiment with a different spec; use a new --out "
            "directory (or delete the old experiment)"
        )
    write_json(exp.spec_path, d)
    acc_frames, gap_rows = [], []
    for c in cells:
        acc = finetune_run(c.spec, exp.run(c.label).path, device, progress)
        labels = {"checkpoint": c.label, "pretraining_step": c.pretraining_step, "path": c.path}
        train_max = {t: c.spec.train_range(t)[1] for t in c.spec.task_names}
        acc = acc.assign(
            **labels,
            in_train=[L <= train_max[t] for t, L in zip(acc["task"], acc["length"], strict=True)],
        )
        acc_frames.append(acc)
        gap_rows.append({**labels, **gap_row(acc, c.spec)})
    accuracy = pd.concat(acc_frames, ignore_index=True)
    gap = pd.DataFrame(gap_rows)
    write_parquet(exp.accuracy_path, accuracy)
    write_parquet(exp.gap_path, gap)
    from interp.report.plots import write_html

    write_html(experiment_figure(accuracy, gap, title=str(d.get("name", ""))), exp.figure_path)
    return accuracy, gap


def experiment_figure(accuracy: pd.DataFrame, gap: pd.DataFrame, title: str = "") -> go.Figure:
    """The paper's view: main-task accuracy against length, one curve per checkpoint coloured
    from early (light) to late (dark) pretraining, the fine-tuning range shaded; and the gap
    against the pretraining step."""
    main = str(gap["main"].iloc[0])
    train_max = int(gap["train_max"].iloc[0])
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.62, 0.38],
        subplot_titles=(f"{main}: exact match vs length", "gap vs pretraining step"),
    )
    order = gap.sort_values("pretraining_step")
    n = len(order)
    colors = sample_colorscale("Viridis", [0.85 * (1 - i / max(1, n - 1)) for i in range(n)])
    for color, (_, row) in zip(colors, order.iterrows(), strict=True):
        cur = accuracy[(accuracy["checkpoint"] == row["checkpoint"]) & (accuracy["task"] == main)]
        cur = cur.sort_values("length")
        fig.add_trace(
            go.Scatter(
                x=cur["length"],
                y=cur["accuracy"],
                mode="lines+markers",
                name=str(row["checkpoint"]),
                line={"color": color},
                hovertemplate="length %{x}: %{y:.3f}<extra>" + str(row["checkpoint"]) + "</extra>",
            ),
            row=1,
            col=1,
        )
    fig.add_vrect(
        x0=0.5, x1=train_max + 0.5, fillcolor="gray", opacity=0.12, line_width=0, row=1, col=1
    )
    fig.add_vline(x=train_max + 0.5, line_dash="dash", line_color="gray", row=1, col=1)
    fig.add_trace(
        go.Scatter(
            x=order["pretraining_step"],
            y=order["gap"],
            mode="lines+markers",
            name="gap",
            line={"color": "black"},
            text=order["checkpoint"],
            hovertemplate="%{text}: gap %{y:.3f}<extra></extra>",
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    dtick = 1 if accuracy["length"].max() <= 20 else None
    fig.update_xaxes(title_text="length", dtick=dtick, row=1, col=1)
    fig.update_yaxes(title_text="exact match", range=[-0.02, 1.02], row=1, col=1)
    fig.update_xaxes(title_text="pretraining step", row=1, col=2)
    fig.update_yaxes(title_text="gap", range=[-0.02, 1.02], row=1, col=2)
    fig.update_layout(title=title or None, legend_title_text="checkpoint")
    return fig


def summary_lines(accuracy: pd.DataFrame, gap: pd.DataFrame) -> list[str]:
    """One readable line per checkpoint: main-task accuracy by length, and the gap."""
    lines = []
    for _, row in gap.sort_values("pretraining_step").iterrows():
        cur = accuracy[
            (accuracy["checkpoint"] == row["checkpoint"]) & (accuracy["task"] == row["main"])
        ]
        curve = " ".join(
            f"{int(L)}:{a:.2f}" for L, a in zip(cur["length"], cur["accuracy"], strict=True)
        )
        lines.append(
            f"{row['checkpoint']}: {row['main']} (fine-tuned <= {row['train_max']}) accuracy by "
            f"length {curve}; gap {row['gap']:.3f}"
        )
    return lines


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, before anything is written (the one
    device parser, :func:`interp.core.device.resolve_device`, gives the message)."""
    from interp.core.device import resolve_device

    resolve_device(device)


def finetune(
    spec_path: str | Path, out: str | Path, device: str = "cpu", progress: bool = True
) -> list[str]:
    """``interp finetune``: an experiment spec (see the module docstring), or one run spec
    with ``[model] pretrained``; returns the summary lines to print."""
    check_device(device)
    d = read_spec_file(spec_path)
    if is_experiment(d):
        accuracy, gap = run_experiment(d, out, device, progress)
        return [*summary_lines(accuracy, gap), f"tables and figure: {out}"]
    spec = load_spec(spec_path)
    if not spec.model.pretrained:
        raise InterpError(
            f'{spec_path} fine-tunes nothing: give [model] pretrained = "DIR" (or a '
            "'checkpoints' list for an experiment); use `interp train` to train from scratch"
        )
    acc = finetune_run(spec, out, device, progress)
    acc = acc.assign(checkpoint=spec.name, pretraining_step=0)
    gap = pd.DataFrame([{"checkpoint": spec.name, "pretraining_step": 0, **gap_row(acc, spec)}])
    return [*summary_lines(acc, gap), f"run: {out}"]
