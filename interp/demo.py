"""``make demo``: the main job end to end on a CPU-sized preset.

1. train arithmetic group A (reverse add <- no carry + carry only) and the main task alone,
   side by side (a two-cell sweep, ``analyses/demo.toml``);
2. evaluate length generalization at every checkpoint;
3. score every head per task (mean ablation, exact match) at every checkpoint;
4. compute head overlap between main and auxiliary tasks;
5. relate overlap to the generalization gap over checkpoints (correlations with CIs);
6. run the causal shared-head test at the last checkpoint;
7. write ``report.html`` and print a short summary.

``--quick`` runs the same pipeline on a seconds-scale toy (``analyses/demo_quick.toml``), which
shows that every stage works but is far too small to show transfer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from interp.analysis import analyze_sweep, load_analysis_spec
from interp.errors import InterpError
from interp.io import write_text
from interp.report import write_report
from interp.resources import analyses_dir
from interp.rundir import SweepDir
from interp.sweep import run_sweep

# Found through interp.resources: the checkout's analyses/, else the installed package's copy.
ANALYSES = analyses_dir()


def _summary(tables: dict[str, pd.DataFrame], elapsed: float, report: Path) -> str:
    from interp.between import describe

    lines = ["", "=== interp demo summary ==="]
    meta = tables["meta"]
    between = tables.get("between")
    if between is not None and len(between):
        prim = between[between["primary"]] if "primary" in between.columns else between
        lines.append(describe((prim if len(prim) else between).iloc[0]))
    else:
        n = int((meta["kind"] != "baseline").sum()) if "kind" in meta.columns else 0
        lines.append(f"primary test (between runs): not testable (n={n} runs with an auxiliary)")
    within = tables.get("within")
    if within is not None and len(within):
        for r in within.itertuples(index=False):
            lines.append(
                f"within runs ({r.kind}, sign-flip across runs): "
                + (
                    r.reason
                    if r.reason
                    else f"mean r = {r.mean:+.2f} [{r.ci_low:+.2f}, "
                    f"{r.ci_high:+.2f}], p = {r.p_value:.3f}, {r.n_runs} runs"
                )
            )
    acc = tables.get("accuracy")
    if acc is not None:
        last = acc[acc["step"] == acc.groupby("run")["step"].transform("max")]
        for row in meta.itertuples(index=False):
            sub = last[(last["run"] == row.run) & (last["task"] == row.main)]
            if not len(sub):
                continue
            curve = sub.groupby("length")["accuracy"].mean()
            label = "with aux" if row.kind != "baseline" else "main only"
            lines.append(
                f"{row.main} ({label}, trained <= {row.main_max}): accuracy by length "
                + " ".join(f"{int(L)}:{a:.2f}" for L, a in curve.items())
            )
    tr = tables.get("transfer")
    if tr is not None and len(tr):
        last = tr[tr["step"] == tr["step"].max()].iloc[0]
        lines.append(
            f"transfer range accuracy {last['main_transfer_acc']:.3f} vs baseline "
            f"{last['baseline_transfer_acc']:.3f}: transfer strength "
            f"{last['transfer_strength']:+.3f}, generalization gap {last['gap']:.3f}"
        )
    corr = tables.get("correlations")
    if corr is not None and len(corr):
        c = corr[
            (corr["view"] == "checkpoints")
            & (corr["statistic"] == "map_diff")
            & (corr["metric"] == "gap")
            & (corr["method"] == "spearman")
        ]
        if "score_method" in c.columns:
            c = c[(c["score_method"] == "mean_ablation") & (c["score_metric"] == "exact_match")]
        for r in c.itertuples(index=False):
            lines.append(
                f"over the {r.n} checkpoints of {r.run}, Spearman(map_diff, gap) = {r.r:.2f} "
                f"(descriptive; not testable within one run, n=1 run)"
            )
    causal = tables.get("causal")
    if causal is not None and len(causal):
        d = causal[(causal["effect"] == "diff") & (causal["metric"] == "exact_match")]
        for r in d.itertuples(index=False):
            lines.append(
                f"causal: ablating the top-{r.k} shared heads {r.heads} drops {r.range}-range "
                f"accuracy by {r.estimate:+.3f} more than matched random heads "
                f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}], p = {r.p_value:.3f}"
                + (
                    f" (control degenerate: only {r.random_sets} distinct random head set(s))"
                    if r.random_sets < 5
                    else ""
                )
            )
    lines.append(f"wall time {elapsed / 60:.1f} min; report: {report}")
    return "\n".join(lines)


def run_demo(
    out: Path,
    quick: bool = False,
    workers: int = 2,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Run the demo into ``out``; returns the report path.

    ``device`` (default ``auto``) is where both runs train and the analysis runs. With
    ``progress`` each training cell shows its step, loss and ETA while it runs, and the
    analysis shows its bars; the stage lines and the summary are printed either way.
    """
    spec = ANALYSES / ("demo_quick.toml" if quick else "demo.toml")
    if not spec.is_file():
        raise InterpError(f"demo spec not found: {spec}")
    sweep = SweepDir(out)
    t0 = time.perf_counter()
    sweep_spec, cfg = load_analysis_spec(spec)
    print(f"[1/3] training {spec.name} into {out} ...", flush=True)
    run_sweep(
        sweep_spec, out, executor="local", workers=workers, device=device, progress=progress
    )
    failures = sweep.failures_path
    if failures.is_file() and failures.read_text().strip() not in ("", "[]", "{}"):
        raise InterpError(f"some demo runs failed; see {failures}")
    print("[2/3] evaluating, scoring heads, overlap, transfer statistics, causal test ...",
          flush=True)  # fmt: skip
    tables = analyze_sweep(out, cfg, device=device, progress=progress)
    print("[3/3] writing the report ...", flush=True)
    report = write_report(out, sweep.report_path, title="interp demo: arithmetic group A")
    text = _summary(tables, time.perf_counter() - t0, report)
    write_text(sweep.summary_path, text + "\n")
    print(text)
    return report
