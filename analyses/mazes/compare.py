"""Figures 6-7 at CPU scale: do the maze tasks transfer? From shipped tables only.

The sweep ``analyses/fig6_7_mazes.toml`` (maze groups A and B, each main task alone as the
baseline, 3 seeds, 6 / 12 nodes) ships its analysis tables in ``analyses/mazes/analysis/``
(``interp results RUNS/fig6_7_mazes --out analyses/mazes``: 128 items per length at the final
step). Mazes may generalize in length by themselves (the pilot's DFS trace was 0.94 at 7 nodes
with no baseline to compare), so transfer is the *gain*: the main task pooled over 7..12 nodes
with its auxiliary minus the same main task trained alone, seed by seed.

Per (group, condition, seed): the main task at 7 nodes (one past its training range) and pooled
over 7..12, each with its exact (Clopper-Pearson) 95% interval, its worst accuracy on its own
range, and the auxiliary at 12 nodes (did it learn its own range?). Rows come from
``analyses/fig12/compare.py``'s ``summarise`` and ``measured`` (one definition for every figure).

    .venv/bin/python analyses/mazes/compare.py    # writes analyses/mazes/compare.{md,parquet}
"""

from __future__ import annotations

import functools
import runpy
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from interp.core.io import write_parquet, write_text  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "analysis"
GROUPS = {"maze_a": ("dfs_trace", "shortest_path"), "maze_b": ("shortest_path", "dfs_trace")}
FIRST, LAST = 7, 12  # main tasks trained on up to 6 nodes, auxiliaries on up to 12


@functools.cache
def _fig12():
    """``analyses/fig12/compare.py``'s helpers (one row definition for every figure)."""
    return runpy.run_path(str(ROOT / "analyses" / "fig12" / "compare.py"))


def table(source: Path = SOURCE) -> pd.DataFrame:
    """One row per maze run: each group's main task with its auxiliary (``with aux``) and each
    main task trained alone (``alone``), at the final step. A baseline belongs to the group whose
    main task it trains."""
    fig12, rows = _fig12(), []
    runs = list(fig12["final_runs"](source))
    for group, (main, aux) in GROUPS.items():
        for m, a in runs:
            if m.main != main or (m.kind != "baseline" and m.group != group):
                continue
            cond = "alone" if m.kind == "baseline" else "with aux"
            row = fig12["summarise"](
                a, m.positional, cond, int(m.seed), m.run, main, (aux,), FIRST, LAST
            )
            rows.append({"group": group, "main": main, "aux": aux, **row})
    df = pd.DataFrame(rows)
    return df.sort_values(
        ["group", "condition", "seed"], ascending=[True, False, True]
    ).reset_index(drop=True)


def markdown(df: pd.DataFrame) -> str:
    measured = _fig12()["measured"]
    header = (
        f"| group (main <- auxiliary) | condition | seed | at {FIRST} [95% CI] | pooled "
        f"{FIRST}..{LAST} [95% CI] | min on own range | auxiliary at {LAST} |\n"
        "|---|---|---|---|---|---|---|"
    )
    lines = [header] + [
        f"| {r.group} ({r.main} <- {r.aux}) | {r.condition} | {r.seed} | {measured(r)} |"
        for r in df.itertuples(index=False)
    ]
    lines.append("")
    for group in GROUPS:
        g = df[df["group"] == group]
        piv = g.pivot_table(index="seed", columns="condition", values="pooled")
        if not {"with aux", "alone"} <= set(piv.columns):
            continue
        gain = (piv["with aux"] - piv["alone"]).dropna()
        n = len(gain)
        lines.append(
            f"- {group}: transfer gain (pooled {FIRST}..{LAST}, with the auxiliary minus the main "
            f"task alone), mean over seeds {gain.mean():+.3f} (per seed: "
            + ", ".join(f"s{s} {v:+.3f}" for s, v in gain.items())
            + f"); {n} seed pair{'s' if n != 1 else ''}: an exact sign-flip test's smallest "
            f"two-sided p is {2 / 2**n:.2f}, so this is descriptive."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    df = table()
    text = markdown(df)
    write_text(HERE / "compare.md", text)
    write_parquet(HERE / "compare.parquet", df)
    print(text, end="")


if __name__ == "__main__":
    main()
