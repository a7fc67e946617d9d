"""Figure 12 at CPU scale on string group B: RoPE against NoPE, from shipped tables only.

RoPE: fig4_strings' string_b runs and capitalize-reverse baselines (``analyses/strings/analysis/``,
written by ``interp results RUNS/fig4_strings --out analyses/strings``). NoPE: the sweep
``analyses/fig12_strings_nope.toml``, whose cells equal those but for the positional scheme
(``tests/test_fig12.py``; ``analyses/fig12_strings/analysis/``, from ``interp results
RUNS/fig12_strings_nope --out analyses/fig12_strings``). 128 items per length, final step.

Per (scheme, condition, seed): capitalize-reverse accuracy at 9 (one past its training range
1..8) and pooled over 9..16 with exact 95% intervals, its worst accuracy on 1..8, and the worse
auxiliary at 16. Then the transfer gain per scheme (both auxiliaries minus the main task alone,
pooled 9..16), as for arithmetic (``analyses/fig12/compare.py``).

    .venv/bin/python analyses/fig12_strings/compare.py   # writes analyses/fig12_strings/compare.md
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
from interp.zoo.family import TRANSFER_THRESHOLD  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCES = {"rope": ROOT / "analyses" / "strings" / "analysis", "nope": HERE / "analysis"}
MAIN, AUX = "capitalize_reverse", ("capitalize", "reverse")
FIRST, LAST = 9, 16  # training range 1..8


@functools.cache
def _fig12():
    """``analyses/fig12/compare.py``'s helpers (one definition for both groups)."""
    return runpy.run_path(str(ROOT / "analyses" / "fig12" / "compare.py"))


def table() -> pd.DataFrame:
    """One row per string-B run or capitalize-reverse baseline, RoPE first."""
    fig12, rows = _fig12(), []
    summarise = fig12["summarise"]
    for positional, d in SOURCES.items():
        for m, a in fig12["final_runs"](d):
            if m.main != MAIN:
                continue
            cond = "main" if m.kind == "baseline" else "both"
            rows.append(summarise(a, positional, cond, int(m.seed), m.run, MAIN, AUX, FIRST, LAST))
    df = pd.DataFrame(rows).sort_values(
        ["positional", "condition", "seed"], ascending=[False, True, True]
    )
    return df.reset_index(drop=True)


def markdown(df: pd.DataFrame) -> str:
    lines = [
        f"| positional | condition | seed | at {FIRST} [95% CI] | pooled {FIRST}..{LAST} [95% CI] "
        f"| min 1..{FIRST - 1} | worse auxiliary at {LAST} | transfers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    measured = _fig12()["measured"]
    for r in df.itertuples(index=False):
        lines.append(
            f"| {r.positional} | {r.condition} | {r.seed} | {measured(r)} | "
            f"{'yes' if r.acc_first > TRANSFER_THRESHOLD else 'no'} |"
        )
    piv = df.pivot_table(index="seed", columns=["positional", "condition"], values="pooled")
    lines.append("")
    gains = {}
    for p in ("rope", "nope"):
        if (p, "both") in piv.columns and (p, "main") in piv.columns:
            gains[p] = piv[(p, "both")] - piv[(p, "main")]
            lines.append(
                f"- transfer gain with {p.upper()} (pooled {FIRST}..{LAST}, both auxiliaries minus "
                f"the main task alone), mean over seeds: {gains[p].mean():+.3f} (per seed: "
                + ", ".join(f"s{s} {v:+.3f}" for s, v in gains[p].items())
                + ")"
            )
    if len(gains) == 2:
        diff = (gains["rope"] - gains["nope"]).dropna()
        n = len(diff)
        lines.append(
            "- per seed, RoPE's gain minus NoPE's: "
            + ", ".join(f"s{s} {v:+.3f}" for s, v in diff.items())
            + f". {n} seed pairs: an exact sign-flip test's smallest two-sided p is "
            f"{2 / 2**n:.2f}, so this is descriptive."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    df = table()
    write_parquet(HERE / "compare.parquet", df)
    text = markdown(df)
    write_text(HERE / "compare.md", text)
    print(text, end="")


if __name__ == "__main__":
    main()
