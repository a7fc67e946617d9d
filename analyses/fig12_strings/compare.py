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

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from interp.core.io import write_parquet, write_text  # noqa: E402
from interp.zoo.family import TRANSFER_THRESHOLD  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCES = {"rope": ROOT / "analyses" / "strings" / "analysis", "nope": HERE / "analysis"}
MAIN, AUX = "capitalize_reverse", ("capitalize", "reverse")
FIRST, LAST = 9, 16  # training range 1..8


def _fig12_summarise():
    """``analyses/fig12/compare.py``'s per-run summary (one definition for both groups)."""
    path = ROOT / "analyses" / "fig12" / "compare.py"
    spec = importlib.util.spec_from_file_location("fig12_compare", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.summarise


def table() -> pd.DataFrame:
    """One row per string-B run or capitalize-reverse baseline, RoPE first."""
    summarise, rows = _fig12_summarise(), []
    for positional, d in SOURCES.items():
        acc, meta = pd.read_parquet(d / "accuracy.parquet"), pd.read_parquet(d / "meta.parquet")
        for m in meta.itertuples(index=False):
            if m.main != MAIN:
                continue
            a = acc[acc["run"] == m.run]
            a = a[a["step"] == a["step"].max()]
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
    for r in df.itertuples(index=False):
        aux = "" if not np.isfinite(r.aux_last) else f"{r.aux_last:.3f}"
        lines.append(
            f"| {r.positional} | {r.condition} | {r.seed} | {r.acc_first:.3f} "
            f"[{r.acc_first_lo:.3f}, {r.acc_first_hi:.3f}] | {r.pooled:.3f} [{r.pooled_lo:.3f}, "
            f"{r.pooled_hi:.3f}] | {r.in_range:.3f} | {aux} | "
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
