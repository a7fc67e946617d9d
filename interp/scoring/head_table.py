"""The tidy head-score table: per-example head effects averaged per task (and length).

:func:`interp.scoring.heads.score_heads` measures, for every head, a per-example effect (the
metric's
drop when the head is ablated, or its recovery when patched); this module turns those
``(layer, head, example)`` arrays into the long table every later stage reads, one row per
``(task, length, layer, head, method, metric)``. ``frac_lost`` is a ratio of counts (clean-correct
examples broken / clean-correct examples), so it is summed, not averaged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from jaxtyping import Float
from torch import Tensor

from interp.tasks.batches import Batch

COLUMNS = [
    "task",
    "length",
    "layer",
    "head",
    "score",
    "method",
    "metric",
    "n",
    "clean",
    "corrupted",
]


def tidy(
    batch: Batch,
    per_ex: Float[Tensor, "layer head batch"],
    clean: Float[Tensor, " batch"],
    corrupted: Float[Tensor, " batch"],
    method: str,
    metric: str,
    per_length: bool,
) -> pd.DataFrame:
    """Average per-example values per task (and per (task, length)) into the tidy frame."""
    n_layers, n_heads, _ = per_ex.shape
    tasks = np.asarray(batch.tasks)
    lengths = batch.lengths.numpy()
    layer = np.repeat(np.arange(n_layers), n_heads)
    head = np.tile(np.arange(n_heads), n_layers)
    flat = per_ex.reshape(n_layers * n_heads, -1).numpy()
    clean_np, corr_np = clean.numpy(), corrupted.numpy()
    if metric == "frac_lost":
        # per_ex = clean - ablated exact match: 1 exactly where a clean-correct example broke.
        lost = (flat > 0.5).astype(np.float64)

    selections: list[tuple[str, int | None, np.ndarray]] = []
    for t in dict.fromkeys(batch.tasks):
        mask_t = tasks == t
        selections.append((t, None, mask_t))
        if per_length:
            for L in sorted(set(lengths[mask_t].tolist())):
                selections.append((t, int(L), mask_t & (lengths == L)))
    frames = []
    for t, L, mask in selections:
        frames.append(
            pd.DataFrame(
                {
                    "task": t,
                    "length": pd.array([L] * len(layer), dtype="Int64"),
                    "layer": layer,
                    "head": head,
                    "score": (
                        lost[:, mask].sum(1) / max(1.0, float(clean_np[mask].sum()))
                        if metric == "frac_lost"
                        else flat[:, mask].mean(1)
                    ),
                    "method": method,
                    "metric": metric,
                    "n": int(mask.sum()),
                    "clean": float(clean_np[mask].mean()),
                    "corrupted": float(corr_np[mask].mean()),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[COLUMNS]
