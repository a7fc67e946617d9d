"""The larger family's results in words: the Markdown table ``interp zoo family`` writes to
``analyses/family/results.md`` (included by the docs) and the verdict lines ``make demo`` prints,
both from :func:`interp.zoo.family_tables.analyze`'s tables (this module only reads them)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from interp.zoo import registry as zoo
from interp.zoo.family_sweep import INTERVENTIONS
from interp.zoo.family_tables import PREFIX


def planned_runs(meta: pd.DataFrame) -> int:
    """How many runs the family's pre-declared specs plan (``models/zoo/specs/PREFIX*.toml``),
    at least the entries present."""
    specs = sorted(zoo.SPEC_DIR.glob(f"{PREFIX}*.toml"))
    return max(len(specs), len(meta))


def _num(x: float, digits: int = 2) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def markdown(tables: dict[str, pd.DataFrame]) -> str:
    """The results table and the intervention's per-seed transfer table, as Markdown."""
    meta = tables["meta"]
    have = meta[meta["tables"]]
    counts = have["condition"].value_counts().sort_index()
    lines = [
        f"Family `{PREFIX}*`: {len(have)} of {planned_runs(meta)} planned runs ship their tables "
        f"({', '.join(f'{c} {n}' for c, n in counts.items())}).",
        "",
        "| question | role | estimate [95% interval] | p | runs in / out | MDE (80%) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in tables["results"].itertuples(index=False):
        est = _num(r.estimate)
        if est and np.isfinite(r.ci_low):
            est += f" [{_num(r.ci_low)}, {_num(r.ci_high)}]"
        p = "" if not np.isfinite(r.p_value) else f"{r.p_value:.3f}"
        mde = "" if not np.isfinite(r.mde) else f"{abs(r.mde):.2f}"
        verdict = str(r.verdict).split(": ", 1)[-1] if r.role == "primary" else r.verdict
        lines.append(
            f"| {r.question} | {r.role} | {est} | {p} | {r.n_included} / {r.n_excluded} | "
            f"{mde} | {verdict} |"
        )
    seeds = tables["seeds"]
    arms = seeds[seeds["condition"].isin(["both", *INTERVENTIONS])]
    if len(arms):
        lines += [
            "",
            "Transfer of the main task pooled over lengths 7..12 at the final checkpoint "
            "(256 items per length), exact 95% interval; competence = lengths 1..6 unseen items:",
            "",
            "| condition | seed | transfer [95% interval] | competence |",
            "|---|---|---|---|",
        ]
        for r in arms.sort_values(["condition", "seed"]).itertuples(index=False):
            lines.append(
                f"| {r.condition} | {r.seed} | {r.transfer:.3f} [{r.ci_lo:.3f}, {r.ci_hi:.3f}] "
                f"| {r.competence:.3f} |"
            )
    conditions = tables.get("conditions")
    if conditions is not None and len(conditions):
        from interp.zoo.family import TRANSFER_THRESHOLD, condition_table

        main = conditions["task"].iloc[0]
        lo = int(conditions["transfer_lo"].min())
        lines += [
            "",
            f"The main task ({main}) at every length at the final checkpoint, per condition (named "
            "by its auxiliaries; `none`: the main task alone) and seed, 256 items per length, "
            f"exact 95% intervals; a seed transfers when its accuracy at {lo} exceeds "
            f"{TRANSFER_THRESHOLD}:",
            "",
            condition_table(conditions, main),
        ]
    return "\n".join(lines) + "\n"


def verdict_lines(tables: dict[str, pd.DataFrame]) -> list[str]:
    """One line per question, for the demo's summary (read from shipped tables)."""
    meta = tables["meta"]
    n = int(meta["tables"].sum())
    planned = planned_runs(meta)
    out = [
        f"family {PREFIX}* from its shipped tables ({n} of {planned} planned runs; no model run):"
    ]
    for r in tables["results"].itertuples(index=False):
        est = _num(r.estimate)
        ci = f" [{_num(r.ci_low)}, {_num(r.ci_high)}]" if est and np.isfinite(r.ci_low) else ""
        p = f", p = {r.p_value:.3f}" if np.isfinite(r.p_value) else ""
        mde = f", MDE {abs(r.mde):.2f}" if np.isfinite(r.mde) else ""
        verdict = str(r.verdict).split(": ", 1)[-1] if r.role == "primary" else r.verdict
        numbers = f"{est}{ci}{p}{mde}".strip(", ")
        out.append(f"  {r.question} ({r.role}): {numbers + '; ' if numbers else ''}{verdict}")
    return out
