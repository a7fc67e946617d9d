"""Power of the family's planned tests, simulated before training (PLAN.md quotes its table).

Run from the repository root (about a minute of one core):

    python analyses/family/power.py

Writes ``analyses/family/power.parquet`` and ``power.md``: per test, design and effect size,
the simulated power at the 5% level, and per (test, design) the minimum detectable effect at
80% power (interpolated on the effect grid; "> max" when the grid's largest effect falls
short). The models behind each test are in :mod:`interp.stats.power`'s docstring.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from interp.stats.power import (
    ZOO_CONDITIONS,
    mde,
    power_intervention,
    power_primary,
    power_two_groups,
    power_within,
    sign_flip_power,
)

OUT = Path(__file__).resolve().parent
ZOO_SIZES = {"both": 5, "nocarry": 2, "carry": 2, "control1": 3}


def _rows(test: str, design: str, unit: str, effects, power) -> list[dict]:
    return [
        {"test": test, "design": design, "effect_unit": unit, "effect": float(e), "power": p}
        for e, p in zip(effects, power, strict=True)
    ]


def main() -> pd.DataFrame:
    t0 = time.time()
    rows: list[dict] = []
    eff = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
    unit = "logit per within-condition SD of overlap"
    for label, conds in (
        ("planned 20/6/6/6", ZOO_CONDITIONS),
        (
            "zoo today 5/2/2/3",
            tuple(replace(c, n_runs=ZOO_SIZES[c.name]) for c in ZOO_CONDITIONS),
        ),
    ):
        pw = power_primary(eff, conds, n_datasets=500, n_perm=400, seed=1)
        rows += _rows("primary: rank outcome (pre-declared)", label, unit, eff, pw["rank"])
        rows += _rows("primary: empirical logit (secondary)", label, unit, eff, pw["logit"])
    eff = [0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
    for n_r, n_c in ((32, 6), (9, 3)):
        rows += _rows(
            "related vs control (overlap)", f"{n_r} related, {n_c} control",
            "SD of overlap", eff, power_two_groups(eff, n_r, n_c, n_datasets=2000, seed=2),
        )  # fmt: skip
    eff = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    for m in (6, 10, 15):
        for k in (5, 9):
            rows += _rows(
                "within-run sign flip (diff)", f"{m} runs x {k} kept checkpoints",
                "correlation of the series' steps", eff,
                power_within(eff, m, k, n_datasets=1000, seed=3),
            )  # fmt: skip
    eff = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    for m in (6, 10, 15, 20):
        rows += _rows(
            "head-set sign flip (slope)", f"{m} transferring runs",
            "between-run SD of the slope", eff,
            sign_flip_power(eff, m, n_datasets=2000, seed=4),
        )  # fmt: skip
    eff = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0]
    for n in (5, 8):
        rows += _rows(
            "intervention: disjoint vs shared (rank)", f"{n} vs {n} seeds",
            "latent transfer logit lowered in disjoint", eff,
            power_intervention(eff, n, n_datasets=2000, seed=5),
        )  # fmt: skip
    df = pd.DataFrame(rows)
    df["power"] = df["power"].round(3)
    summ = (
        df.groupby(["test", "design", "effect_unit"], sort=False)
        .apply(lambda g: mde(g["effect"], g["power"]), include_groups=False)
        .rename("mde_80")
        .reset_index()
    )
    df.to_parquet(OUT / "power.parquet", index=False)
    _write_md(df, summ, time.time() - t0)
    return df


def _write_md(df: pd.DataFrame, summ: pd.DataFrame, secs: float) -> None:
    lines = [
        "# Power of the family's tests (simulated; `python analyses/family/power.py`)",
        "",
        "Written by `analyses/family/power.py` from `interp.stats.power` (models in its docstring);"
        f" {secs:.0f} s on one core. Power = share of simulated families rejecting at 5%.",
        "The power at effect 0 is the false-positive rate. MDE = smallest effect with 80%"
        " power (linear interpolation on the grid).",
        "",
        "## Minimum detectable effect at 80% power",
        "",
        "| test | design | effect unit | MDE (80%) |",
        "|---|---|---|---|",
    ]
    for r in summ.itertuples(index=False):
        m = "> grid max" if not np.isfinite(r.mde_80) else f"{r.mde_80:.2f}"
        lines.append(f"| {r.test} | {r.design} | {r.effect_unit} | {m} |")
    lines += ["", "## Power by effect size", ""]
    for (test, design), g in df.groupby(["test", "design"], sort=False):
        cells = ", ".join(f"{e:g}: {p:.2f}" for e, p in zip(g["effect"], g["power"], strict=True))
        lines.append(f"- **{test}**, {design} ({g['effect_unit'].iloc[0]}): {cells}")
    (OUT / "power.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
