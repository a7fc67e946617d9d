"""Figure 4, string group A at 8000 steps: does copy borrow MQAR's length? Shipped tables only.

The sweep ``analyses/fig4_strings_a8k.toml`` (string group A: copy <- MQAR; the string control:
copy <- reverse; copy alone as the baseline; 3 seeds; main task on 1..8 characters, auxiliaries on
1..16) ships its analysis tables in ``analyses/strings/a8k/analysis/`` (``interp results
RUNS/fig4_strings_a8k --out analyses/strings/a8k``: 128 items per length at step 8000). Transfer
is the *gain*: copy pooled over 9..16 with its auxiliary minus copy trained alone, seed by seed.

Per (group, condition, seed): copy at 9 (one past its training range) and pooled over 9..16, each
with its exact (Clopper-Pearson) 95% interval, its worst accuracy on 1..8, and the auxiliary at 16
(did it learn its own range?). Rows and the gain lines come from ``analyses/fig12/compare.py``'s
``gain_comparison`` (one definition for every figure).

    .venv/bin/python analyses/strings/a8k/compare.py   # writes compare.{md,parquet} beside it
"""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

HERE = Path(__file__).resolve().parent
GROUPS = {"string_a": ("copy", "mqar"), "control_2": ("copy", "reverse")}
FIRST, LAST = 9, 16  # copy trained on 1..8 characters, the auxiliaries on 1..16


table, markdown, main = runpy.run_path(str(ROOT / "analyses" / "fig12" / "compare.py"))[
    "gain_comparison"
](HERE, GROUPS, FIRST, LAST)

if __name__ == "__main__":
    main()
