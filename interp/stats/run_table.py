"""The run table: one row per run, the unit of the between-run and within-run statistics.

:func:`run_table` joins a sweep's overlap table with its accuracy table and run metadata into
one row per (run, method, metric, overlap statistic) at the run's last checkpoint (or every
checkpoint, for :mod:`interp.stats.within`): the main-vs-auxiliary overlap, and the accuracies the
tests model, each *pooled from counts* over its lengths (``transfer_acc`` over the transfer
range, ``competence`` over the in-distribution lengths, ``aux_acc`` for the auxiliaries).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from interp.core.errors import InterpError
from interp.tasks.base import transfer_range

DEFAULT_N = 1024
"""Examples assumed behind an accuracy when the table has no count column."""


def is_control(condition: str) -> bool:
    """Conditions named ``control...`` use an unrelated auxiliary."""
    return str(condition).lower().startswith("control")


def _pooled(acc: pd.DataFrame, tasks: Sequence[str], lengths: Sequence[int]) -> tuple[float, float]:
    """``(accuracy, n)`` pooled over ``tasks`` x ``lengths`` from counts (``n`` column)."""
    sub = acc[acc["task"].isin(list(tasks)) & acc["length"].isin(list(lengths))]
    if not len(sub):
        return float("nan"), 0.0
    n = sub["n"].astype(float) if "n" in sub.columns else pd.Series(DEFAULT_N, index=sub.index)
    k = (sub["accuracy"] * n).round()
    return float(k.sum() / n.sum()), float(n.sum())


def run_table(
    overlap: pd.DataFrame,
    acc: pd.DataFrame,
    meta: pd.DataFrame,
    step: str = "last",
    id_lengths: dict[str, Sequence[int]] | None = None,
    aux_agg: str = "mean",
) -> pd.DataFrame:
    """One row per (run, method, metric, statistic) at the run's last checkpoint (or each one).

    Args:
        overlap: long overlap table (``run, step, task_a, task_b, statistic, value`` and
            ``method``/``metric`` when present).
        acc: accuracy table (``run, step, task, length, accuracy`` and ``n``).
        meta: run metadata (:mod:`interp.stats.transfer`); a ``condition`` column is used when
            present, else the auxiliary list names the condition. Baseline runs are skipped.
        step: ``"last"``: each run's last checkpoint present in both tables (the between-run
            table); ``"all"``: every such checkpoint (the input of :mod:`interp.stats.within`).
        id_lengths: per run, the main-task lengths that count as in-distribution for
            ``competence`` (default: its whole training range; pass the unseen ones, see
            :func:`interp.stats.metrics.unseen_lengths`).
        aux_agg: how the main-vs-auxiliary overlap of several auxiliaries is combined:
            ``"mean"`` or ``"min"``; ``n_aux`` records how many were combined.

    Returns:
        Columns ``run, condition, kind, seed, step, method, metric, statistic, overlap, n_aux,
        transfer_acc, transfer_acc_n, competence, competence_n, competence_lengths, aux_acc,
        aux_acc_n`` (accuracies
        pooled from counts; ``aux_acc`` pools every auxiliary over the transfer range).
    """
    from interp.stats.transfer import normalize_meta

    if step not in ("last", "all"):
        raise InterpError(f"unknown step {step!r}; valid choices: last, all")
    if aux_agg not in ("mean", "min"):
        raise InterpError(f"unknown aux_agg {aux_agg!r}; valid choices: mean, min")
    m = normalize_meta(meta)
    keys = [k for k in ("method", "metric") if k in overlap.columns]
    rows = []
    for info in m.itertuples(index=False):
        aux = list(info.aux)
        if not aux or info.kind == "baseline":
            continue
        o = overlap[overlap["run"] == info.run]
        a = acc[acc["run"] == info.run]
        common = sorted(set(o["step"]) & set(a["step"]))
        if not common:
            continue
        hit = ((o["task_a"] == info.main) & o["task_b"].isin(aux)) | (
            (o["task_b"] == info.main) & o["task_a"].isin(aux)
        )
        o_run = o[hit]
        t_lo, t_hi = transfer_range(info.main_max, info.aux_max)
        transfer = range(t_lo, t_hi + 1)
        id_L = (id_lengths or {}).get(info.run, range(1, info.main_max + 1))
        cond = getattr(info, "condition", None) or ",".join(aux)
        kind = "control" if (info.kind == "control" or is_control(cond)) else "related"
        for s in common[-1:] if step == "last" else common:
            o_s, a_s = o_run[o_run["step"] == s], a[a["step"] == s]
            if not len(o_s):
                continue
            agg = o_s.groupby([*keys, "statistic"], sort=True)["value"].agg([aux_agg, "count"])
            t_acc, t_n = _pooled(a_s, [info.main], transfer)
            c_acc, c_n = _pooled(a_s, [info.main], id_L)
            x_acc, x_n = _pooled(a_s, aux, transfer)
            for key, r in agg.iterrows():
                key = key if isinstance(key, tuple) else (key,)
                rows.append(
                    {
                        "run": info.run,
                        "condition": cond,
                        "kind": kind,
                        "seed": info.seed,
                        "step": int(s),
                        **dict(zip([*keys, "statistic"], key, strict=True)),
                        "overlap": float(r[aux_agg]),
                        "n_aux": int(r["count"]),
                        "transfer_acc": t_acc,
                        "transfer_acc_n": t_n,
                        "competence": c_acc,
                        "competence_n": c_n,
                        "competence_lengths": ",".join(map(str, id_L)),
                        "aux_acc": x_acc,
                        "aux_acc_n": x_n,
                    }
                )
    cols = [
        "run",
        "condition",
        "kind",
        "seed",
        "step",
        *keys,
        "statistic",
        "overlap",
        "n_aux",
        "transfer_acc",
        "transfer_acc_n",
        "competence",
        "competence_n",
        "competence_lengths",
        "aux_acc",
        "aux_acc_n",
    ]
    return pd.DataFrame(rows, columns=cols)
