"""Figures 6-7 at CPU scale: do the maze tasks transfer? From shipped tables only.

The sweep ``analyses/fig6_7_mazes.toml`` (maze groups A and B, each main task alone as the
baseline, 3 seeds, 6 / 12 nodes) ships its analysis tables in ``analyses/mazes/analysis/``
(``interp results RUNS/fig6_7_mazes --out analyses/mazes``: 128 items per length at the final
step). Mazes may generalize in length by themselves (the pilot's DFS trace was 0.94 at 7 nodes
with no baseline to compare), so transfer is the *gain*: the main task pooled over 7..12 nodes
with its auxiliary minus the same main task trained alone, seed by seed.

Per (group, condition, seed): the main task at 7 nodes (one past its training range) and pooled
over 7..12, each with its exact (Clopper-Pearson) 95% interval, its worst accuracy on its own
range, and the auxiliary at 12 nodes (did it learn its own range?). Rows and the gain lines come
from ``analyses/fig12/compare.py``'s ``gain_comparison`` (one definition for every figure).

    .venv/bin/python analyses/mazes/compare.py    # writes analyses/mazes/compare.{md,parquet}
"""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HERE = Path(__file__).resolve().parent
GROUPS = {"maze_a": ("dfs_trace", "shortest_path"), "maze_b": ("shortest_path", "dfs_trace")}
FIRST, LAST = 7, 12  # main tasks trained on up to 6 nodes, auxiliaries on up to 12


table, markdown, main = runpy.run_path(str(ROOT / "analyses" / "fig12" / "compare.py"))[
    "gain_comparison"
](HERE, GROUPS, FIRST, LAST)

if __name__ == "__main__":
    main()
