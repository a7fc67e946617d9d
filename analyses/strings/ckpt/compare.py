"""The paper's Appendix B claim for strings: over training, only the ablation-map difference tracks
the generalization gap. From shipped tables only.

The sweep ``analyses/fig4_strings_ckpt.toml`` (string group B, capitalize-reverse <- capitalize +
reverse, 6 seeds, every checkpoint scored) ships its analysis tables in
``analyses/strings/ckpt/analysis/`` (``interp results RUNS/fig4_strings_ckpt --out
analyses/strings/ckpt``). Head maps are the pre-declared ones (mean ablation, exact match).

Two views of "tracks the gap", for the ablation-map difference (``map_diff``) and the
attention-matrix difference (``attn_diff``), both distances (large = the tasks' heads differ):

* **the paper's**: Spearman's r of the distance with the gap across one run's checkpoints (all of
  them). Descriptive only: checkpoints are autocorrelated and both series follow training
  progress, so r has no p-value (``interp.stats.transfer``). The paper's claim reads as
  ``map_diff`` r > 0 in (nearly) every run and ``attn_diff`` not.
* **the honest one**: ``interp.stats.within``'s sign-flip test over runs of a per-run summary with
  training progress removed (first differences after a log-step + saturating trend; converged
  checkpoints only), against transfer accuracy (so a distance that tracks transfer has a
  *negative* summary), with its minimum detectable effect.

    .venv/bin/python analyses/strings/ckpt/compare.py   # writes compare.{md,parquet} beside it
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from interp.core.io import write_parquet, write_text  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "analysis"
STATISTICS = ("map_diff", "attn_diff")
METHOD, METRIC = "mean_ablation", "exact_match"  # the pre-declared head maps


def _within(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of an ``interp.stats.within`` table for the pre-declared maps, ``diff`` summary."""
    return df[(df["method"] == METHOD) & (df["metric"] == METRIC) & (df["within"] == "diff")]


def table(source: Path = SOURCE) -> pd.DataFrame:
    """One row per (run, statistic): checkpoints scored (and how many have a gap: it is undefined
    until the auxiliaries score on the transfer range), Spearman(distance, gap) across those
    (descriptive), the gap at the first and last of them, the distance at the first and last
    checkpoint, and the within-run summary with its reason when the run is excluded."""
    corr = pd.read_parquet(source / "correlations.parquet")
    corr = corr[
        (corr["view"] == "checkpoints") & (corr["method"] == "spearman") & (corr["metric"] == "gap")
        & (corr["score_method"] == METHOD) & (corr["score_metric"] == METRIC)
    ]  # fmt: skip
    tr = pd.read_parquet(source / "transfer.parquet")
    tr = tr[(tr["score_method"] == METHOD) & (tr["score_metric"] == METRIC)]
    wr = _within(pd.read_parquet(source / "within_runs.parquet"))
    rows = []
    for (run, stat), t in tr[tr["statistic"].isin(STATISTICS)].groupby(["run", "statistic"]):
        t = t.sort_values("step")
        g = t["gap"].dropna()  # undefined until the auxiliaries score on the transfer range
        c = corr[(corr["run"] == run) & (corr["statistic"] == stat)]
        w = wr[(wr["run"] == run) & (wr["statistic"] == stat)]
        rows.append(
            {
                "run": run, "group": t["group"].iloc[0], "seed": int(t["seed"].iloc[0]),
                "statistic": stat,
                "n_checkpoints": len(t), "first_step": int(t["step"].iloc[0]),
                "n_gap": len(g), "gap_first": float(g.iloc[0]) if len(g) else np.nan,
                "gap_last": float(g.iloc[-1]) if len(g) else np.nan,
                "distance_first": float(t["overlap"].iloc[0]),
                "distance_last": float(t["overlap"].iloc[-1]),
                "r_gap": float(c["r"].iloc[0]) if len(c) else np.nan,
                "within_value": float(w["value"].iloc[0]) if len(w) else np.nan,
                "within_reason": str(w["reason"].iloc[0]) if len(w) else "",
            }
        )  # fmt: skip
    return pd.DataFrame(rows).sort_values(["statistic", "group", "seed"]).reset_index(drop=True)


def tests(source: Path = SOURCE) -> pd.DataFrame:
    """The within-run sign-flip tests (related runs) for the two distances."""
    w = _within(pd.read_parquet(source / "within.parquet"))
    return w[(w["kind"] == "related") & w["statistic"].isin(STATISTICS)].reset_index(drop=True)


def _num(v: float, fmt: str = "+.2f") -> str:
    return "" if not np.isfinite(v) else format(v, fmt)


def markdown(df: pd.DataFrame, tt: pd.DataFrame) -> str:
    lines = [
        "| statistic | group | seed | checkpoints (with a gap) | gap first -> last | "
        "distance first -> last | Spearman(distance, gap) over checkpoints | within-run summary |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples(index=False):
        within = _num(r.within_value) or r.within_reason
        lines.append(
            f"| {r.statistic} | {r.group} | {r.seed} | "
            f"{r.n_checkpoints} from step {r.first_step} ({r.n_gap}) | "
            f"{r.gap_first:.2f} -> {r.gap_last:.2f} | {r.distance_first:.3g} -> "
            f"{r.distance_last:.3g} | {_num(r.r_gap)} | {within} |"
        )
    lines.append("")
    for stat in STATISTICS:
        r = df.loc[df["statistic"] == stat, "r_gap"].dropna()
        if len(r):
            lines.append(
                f"- {stat}: Spearman(distance, gap) > 0 in {int((r > 0).sum())} of {len(r)} runs "
                f"(median {r.median():+.2f}, range {r.min():+.2f} to {r.max():+.2f}); "
                "descriptive, no p-value (autocorrelated checkpoints, shared training trend)."
            )
    for t in tt.itertuples(index=False):
        if np.isfinite(t.p_value):
            lines.append(
                f"- {t.statistic}, within runs (trend removed, against transfer accuracy; "
                f"sign-flip over {t.n_runs} runs, {t.n_excluded} excluded): mean summary "
                f"{t.mean:+.2f} [{t.ci_low:+.2f}, {t.ci_high:+.2f}], p = {t.p_value:.3f}; "
                f"detects {t.mde:.2f} with 80% power."
            )
        else:
            lines.append(f"- {t.statistic}, within runs: {t.reason}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    df, tt = table(), tests()
    text = markdown(df, tt)
    write_text(HERE / "compare.md", text)
    write_parquet(HERE / "compare.parquet", df)
    print(text, end="")


if __name__ == "__main__":
    main()
