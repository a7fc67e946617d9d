"""The model card of a zoo entry: what it was trained on and how accurate its stored weights are.

:func:`render_card` turns an entry's spec, its ``zoo.json`` metadata and its accuracy table into
the markdown ``card.md`` that :func:`interp.zoo.registry.export_run` writes beside the weights: the
training mixture, the model and optimizer, the wall time, the accuracy of the stored float16
weights per (task, length) and per stored checkpoint, and the commands that rebuild it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from interp.runs.spec import TrainSpec


def describe(s: TrainSpec) -> str:
    """The entry's default one-line description: mixture, ranges and architecture."""
    main_lo, main_hi = s.train_range(s.main)
    parts = f"{s.main} ({main_lo}-{main_hi})"
    if s.aux:
        ranges = {s.train_range(a) for a in s.aux}
        rng = ", ".join(f"{lo}-{hi}" for lo, hi in sorted(ranges))
        parts += f" <- {' + '.join(s.aux)} ({rng})"
    else:
        parts += ", no auxiliary (baseline)"
    m = s.model
    return f"{parts}; {m.n_layers}L {m.n_heads}H d{m.d_model} {m.positional}"


def _fmt_range(lo_hi: tuple[int, int]) -> str:
    return f"{lo_hi[0]}-{lo_hi[1]}"


def _markdown_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(str(v) for v in row.tolist()) + " |")
    return "\n".join(lines)


def range_mean(acc: pd.DataFrame, task: str, lo: int, hi: int) -> float:
    """Mean accuracy of ``task`` over lengths ``lo..hi`` (NaN when none are present)."""
    sub = acc[(acc["task"] == task) & acc["length"].between(lo, hi)]
    return float(sub["accuracy"].mean()) if len(sub) else float("nan")


def render_card(train_spec: TrainSpec, meta: dict[str, Any], acc: pd.DataFrame) -> str:
    """The markdown model card of a zoo entry.

    Args:
        train_spec: the entry's spec.
        meta: its ``zoo.json`` content.
        acc: its accuracy table (all exported steps).

    Returns:
        Markdown text.
    """
    s, m, o, t = train_spec, train_spec.model, train_spec.optim, train_spec.train
    final = meta["final_step"]
    fin = acc[acc["step"] == final]
    n_ex, seed = meta["accuracy"]["n_examples"], meta["accuracy"]["seed"]
    wall = meta.get("train_wall_time_s")
    wall_txt = f"{wall / 60:.1f} min ({wall:.0f} s)" if wall else "not recorded"
    threads = (
        f"{t.threads} torch thread{'s' if t.threads > 1 else ''}"
        if t.threads
        else "torch's default threads"
    )
    main_lo, main_hi = s.train_range(s.main)
    lines = [
        f"# Zoo model `{meta['name']}`",
        "",
        meta["description"],
        "",
        "## Training",
        "",
        "| task | role | training lengths | weight |",
        "|---|---|---|---|",
    ]
    for task in s.tasks:
        role = "main" if task.name == s.main else "auxiliary"
        lines.append(
            f"| {task.name} | {role} | {task.min_length}-{task.max_length} | {task.weight:g} |"
        )
    lines += [
        "",
        f"- group label: `{s.group or '-'}`; data seed {s.seed}",
        f"- model: {m.n_layers} layers, {m.n_heads} heads, d_model {m.d_model}, "
        f"d_mlp {m.d_mlp or 4 * m.d_model}, {m.positional}, {m.norm} norm, {m.mlp} MLP, "
        f"n_ctx {m.n_ctx}; {meta['n_params']:,} trainable parameters",
        f"- optimizer: AdamW, lr {o.lr:g}, weight decay {o.weight_decay:g}, warm-up "
        f"{o.warmup_steps} steps, cosine decay over the last {o.decay_fraction:.0%}",
        f"- {t.steps} steps of batch {t.batch_size} ({t.steps * t.batch_size:,} examples)",
        f"- training wall time: {wall_txt} (from config.json to DONE, periodic evaluation "
        f"included; {threads}, machine with {meta.get('cpu_count') or '?'} CPU cores)",
        f"- stored checkpoints (float16 parameters, weights only): steps "
        f"{', '.join(map(str, meta['steps']))}",
        *(
            [
                f"- pruned ({meta['pruned']['utc'][:10]}): the weights of steps "
                f"{', '.join(map(str, meta['pruned']['dropped_steps']))}; their accuracy stays "
                f"in `{meta['pruned']['accuracy_of_every_step']}`"
            ]
            if meta.get("pruned")
            else []
        ),
        "",
        "## Accuracy of the stored weights",
        "",
        f"Exact-match accuracy (teacher-forced, equal to greedy decoding) of the float16 weights "
        f"at step {final}, {n_ex} examples per (task, length), evaluation seed {seed}. "
        f"Lengths {main_hi + 1}+ are outside the main task's training range.",
        "",
    ]
    pivot = fin.pivot_table(index="length", columns="task", values="accuracy")
    pivot = pivot[[c for c in s.task_names if c in pivot.columns]]
    table = pivot.map(lambda v: f"{v:.3f}").reset_index()
    lines += [_markdown_table(table), ""]
    if s.aux:
        aux_hi = max(s.train_range(a)[1] for a in s.aux)
        tr_lo, tr_hi = main_hi + 1, aux_hi
        main_tr = range_mean(fin, s.main, main_lo, main_hi)
        main_x = range_mean(fin, s.main, tr_lo, tr_hi)
        aux_x = [range_mean(fin, a, tr_lo, tr_hi) for a in s.aux]
        lines += [
            "Summary (mean over lengths): main task "
            f"{main_tr:.3f} on its training range {_fmt_range((main_lo, main_hi))}, "
            f"{main_x:.3f} on the transfer range {_fmt_range((tr_lo, tr_hi))}, where the "
            "auxiliaries reach "
            + ", ".join(f"{a} {v:.3f}" for a, v in zip(s.aux, aux_x, strict=True))
            + ".",
            "",
        ]
    else:
        hi = max(s.eval_lengths(s.main))
        inside = range_mean(fin, s.main, main_lo, main_hi)
        lines += [
            f"Summary (mean over lengths): {s.main} {inside:.3f} on its training range "
            f"{_fmt_range((main_lo, main_hi))}, "
            f"{range_mean(fin, s.main, main_hi + 1, hi):.3f} on {main_hi + 1}-{hi}.",
            "",
        ]
    if len(meta["steps"]) > 1:
        hi = max(s.eval_lengths(s.main))
        if s.aux:
            aux_hi = max(s.train_range(a)[1] for a in s.aux)
            far = (main_hi + 1, aux_hi)
            head = f"| step | main, {_fmt_range((main_lo, main_hi))} | main, {_fmt_range(far)} "
            head += f"| auxiliaries (mean), {_fmt_range(far)} |"
        else:
            far = (main_hi + 1, hi)
            head = f"| step | main, {_fmt_range((main_lo, main_hi))} | main, {_fmt_range(far)} |"
        lines += [
            "Accuracy per stored checkpoint (mean over lengths):",
            "",
            head,
            "|---|---|---|" + ("---|" if s.aux else ""),
        ]
        for step in meta["steps"]:
            a = acc[acc["step"] == step]
            row = (
                f"| {step} | {range_mean(a, s.main, main_lo, main_hi):.3f} | "
                f"{range_mean(a, s.main, *far):.3f} |"
            )
            if s.aux:
                aux_mean = sum(range_mean(a, x, *far) for x in s.aux) / len(s.aux)
                row += f" {aux_mean:.3f} |"
            lines.append(row)
        lines.append("")
    if meta.get("notes"):
        lines += ["## Notes", "", meta["notes"], ""]
    lines += [
        "## Use and rebuild",
        "",
        "```python",
        "from interp import zoo",
        f'model, cfg = zoo.load("{meta["name"]}")            # step {final}',
        f'acc = zoo.accuracy("{meta["name"]}")               # the table above',
        "```",
        "",
        "```bash",
        f"interp train {meta['spec_file']} --out RUN_DIR",
        f"interp zoo export RUN_DIR {meta['name']} --steps {','.join(map(str, meta['steps']))}",
        "```",
        "",
    ]
    return "\n".join(lines)
