"""``make demo``: the main job end to end, live training plus the zoo's trained family.

1. **train live**: arithmetic group A (reverse add <- no carry + carry only) and the main task
   alone on the ``mini`` preset, side by side (a two-cell sweep, ``analyses/demo.toml``), so a
   newcomer sees training work: step, loss and ETA while it runs;
2. analyse the live runs: accuracy by length at every checkpoint, head scores, overlap, and the
   causal stages at the last checkpoint (a few minutes of training is far too short to transfer);
3. **the zoo family** (``models/zoo/<ZOO_FAMILY>*``: the 4-layer recipe, conditions x seeds; the
   first ``ZOO_DEMO_SEEDS`` seeds of each condition):
   copy each entry's final checkpoint, evaluate it, score every head per task and run the
   between-run test (:mod:`interp.zoo.family_sweep`), all computed from the weights here, not read
   from shipped tables;
4. write ``report.html`` and ``summary.txt``; both lead with the zoo's per-condition transfer
   table and the primary (between-run) test, then the live runs.

``--quick`` runs the same pipeline at seconds scale (``analyses/demo_quick.toml`` on the
``tiny`` preset; one zoo entry per condition, 8 examples per length): every stage works, and
nothing in it is a result.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from interp.core.errors import InterpError
from interp.core.io import write_text
from interp.core.resources import ZOO_DEMO_SEEDS, ZOO_FAMILY, analyses_dir
from interp.report.html_report import write_report
from interp.runs.analysis import analyze_sweep
from interp.runs.analysis_spec import AnalysisConfig, load_analysis_spec
from interp.runs.dirs import SweepDir
from interp.runs.sweep import run_sweep

# Found through interp.core.resources: the checkout's analyses/, else the installed package's copy.
ANALYSES = analyses_dir()


def _primary_line(tables: dict[str, pd.DataFrame]) -> str:
    """The primary (between-run) test in words, or why it is not testable."""
    from interp.stats.between_table import describe

    meta = tables["meta"]
    between = tables.get("between")
    if between is not None and len(between):
        prim = between[between["primary"]] if "primary" in between.columns else between
        return describe((prim if len(prim) else between).iloc[0])
    n = int((meta["kind"] != "baseline").sum()) if "kind" in meta.columns else 0
    return f"primary test (between runs): not testable (n={n} runs with an auxiliary)"


def _zoo_lines(tables: dict[str, pd.DataFrame]) -> list[str]:
    """The zoo family: the per-condition transfer table (every seed), then the primary test."""
    from interp.zoo.family import TRANSFER_THRESHOLD, transfers

    fam = tables.get("family")
    if fam is None or not len(fam):
        return ["zoo family: no entries analysed"]
    lo = int(fam["transfer_lo"].min())
    n = int(fam["n"].max())
    lines = [
        f"zoo family (final checkpoints, {n} examples per length): main-task accuracy by length;"
        f" 'transfers' = accuracy at {lo} > {TRANSFER_THRESHOLD}"
    ]
    verdict = transfers(fam, key="run")
    for cond, g in fam.groupby("condition", sort=False):
        yes = 0
        for (run, seed), r in g.groupby(["run", "seed"], sort=False):
            r = r.set_index("length")
            ok = bool(verdict.get(run, False))
            yes += ok
            curve = " ".join(f"{int(L)}:{a:.2f}" for L, a in r["accuracy"].items())
            lines.append(f"  {cond:9s} s{seed}: {curve}  {'transfers' if ok else '-'}")
        lines.append(f"  {cond:9s} {yes}/{g['run'].nunique()} seeds transfer")
    lines.append("zoo " + _primary_line(tables))
    return lines


def _live_lines(tables: dict[str, pd.DataFrame]) -> list[str]:
    """The live runs: accuracy by length, transfer, within-run view and the causal test."""
    lines = ["live training (this machine, just now):"]
    meta = tables["meta"]
    within = tables.get("within")
    if within is not None and len(within):
        from interp.stats.between_table import PRIMARY

        for k, v in PRIMARY.items():  # the pre-declared combination; the rest is in the report
            if k in within.columns:
                within = within[within[k] == v]
        for r in within.itertuples(index=False):
            lines.append(
                f"within runs ({r.kind}, sign-flip across runs): "
                + (
                    r.reason
                    if r.reason
                    else f"mean r = {r.mean:+.2f} [{r.ci_low:+.2f}, "
                    f"{r.ci_high:+.2f}], p = {r.p_value:.3f}, {r.n_runs} runs"
                    + (
                        f"; detectable with 80% power: {r.mde:.2f}"
                        if r.p_value > 0.05 and pd.notna(getattr(r, "mde", None))
                        else ""
                    )
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
        gap = (
            f"{last['gap']:.3f}"
            if pd.notna(last["gap"])
            else "undefined (the auxiliaries solve no transfer length)"
        )
        lines.append(
            f"transfer range accuracy {last['main_transfer_acc']:.3f} vs baseline "
            f"{last['baseline_transfer_acc']:.3f}: transfer strength "
            f"{last['transfer_strength']:+.3f}, generalization gap {gap}"
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
            if pd.isna(r.r):  # too few checkpoints with a defined gap: say why, not "nan"
                why = getattr(r, "reason", "") or "undefined"
                lines.append(f"over the checkpoints of {r.run}, Spearman(map_diff, gap): {why}")
                continue
            lines.append(
                f"over the {r.n} checkpoints of {r.run}, Spearman(map_diff, gap) = {r.r:.2f} "
                f"(descriptive; not testable within one run, n=1 run)"
            )
    causal = tables.get("causal")
    if causal is not None and len(causal):
        d = causal[(causal["effect"] == "diff") & (causal["metric"] == "exact_match")]
        for r in d.itertuples(index=False):
            # A p-value only from enough distinct control sets
            # (interp.causal.top_k.MIN_CONTROL_SETS).
            test = (
                f"[{r.ci_low:+.3f}, +inf), one-sided p = {r.p_value:.3f} "
                f"({r.random_sets} distinct control sets)"
                if pd.notna(r.p_value)
                else f"no p-value: {getattr(r, 'reason', '') or 'degenerate control'}"
            )
            lines.append(
                f"causal: ablating the top-{r.k} shared heads {r.heads} drops {r.range}-range "
                f"accuracy by {r.estimate:+.3f} more than random heads matched on in-distribution "
                f"damage (median); {test}"
            )
    return lines


def shipped_family_lines(quick: bool) -> list[str]:
    """The larger family's verdicts, read from the per-checkpoint tables its entries ship
    (:mod:`interp.zoo.family_tables`): no model runs, so the lines say so, unlike the zoo lines
    above them, which are measured from the weights during the demo."""
    from interp.report import family_results
    from interp.zoo import family_tables

    if quick:
        return [f"family {family_tables.PREFIX}* from its shipped tables: skipped (--quick)"]
    try:
        return family_results.verdict_lines(family_tables.analyze(family_tables.PREFIX))
    except InterpError as e:
        return [f"family {family_tables.PREFIX}* from its shipped tables: none ({e})"]


def _summary(
    live: dict[str, pd.DataFrame],
    family: dict[str, pd.DataFrame] | None,
    elapsed: float,
    report: Path,
    shipped: list[str] | None = None,
) -> str:
    lines = ["", "=== interp demo summary ==="]
    if family is not None:
        lines += _zoo_lines(family)
    lines += shipped or []
    lines += _live_lines(live)
    lines.append(f"wall time {elapsed / 60:.1f} min; report: {report}")
    return "\n".join(lines)


ZOO_ACCURACY_EXAMPLES = 512
"""Test items per length behind the demo's per-condition transfer table."""


def zoo_config(quick: bool) -> AnalysisConfig:
    """What the demo measures on the zoo family: the final checkpoint only, mean ablation scored
    by exact match and by the fraction of clean-correct examples lost; no attention or causal
    stages (those run on the live model), so the family fits in minutes on a CPU."""
    return AnalysisConfig(
        figure="zoo",
        description="the zoo family of the 4-layer recipe, at the final checkpoints",
        n_examples=8 if quick else 64,
        k=4,
        checkpoints="last",
        attention=False,
        causal=False,
    )


def zoo_names(quick: bool) -> list[str]:
    """The zoo family's first :data:`~interp.core.resources.ZOO_DEMO_SEEDS` seeds of every
    condition (``quick``: the first seed of each), or none when the zoo is not available (an
    installed package without its data)."""
    from interp.zoo.family_sweep import condition_of, family_names, seed_of

    try:
        names = [n for n in family_names(ZOO_FAMILY) if seed_of(n) < ZOO_DEMO_SEEDS]
    except InterpError:
        return []
    if quick:
        seen: dict[str, str] = {}
        for n in names:
            seen.setdefault(condition_of(n), n)
        names = list(seen.values())
    return names


def _zoo_job(
    names: list[str], out: str, quick: bool, device: str | None
) -> dict[str, pd.DataFrame]:
    """The zoo part in a worker process: one torch thread, no progress bars."""
    import torch

    from interp.zoo.family_sweep import analyze_family

    torch.set_num_threads(1)
    n_acc = 8 if quick else ZOO_ACCURACY_EXAMPLES
    return analyze_family(names, out, zoo_config(quick), n_acc, progress=False, device=device)


def run_demo(
    out: Path,
    quick: bool = False,
    workers: int = 2,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Run the demo into ``out``; returns the report path.

    ``out`` is the live sweep's directory; the zoo family is analysed in ``out/zoo``. ``device``
    (default ``auto``) is where the live runs train and everything is measured. With
    ``progress`` each training cell shows its step, loss and ETA while it runs, and the analysis
    shows its bars; the stage lines and the summary are printed either way.
    """
    spec = ANALYSES / ("demo_quick.toml" if quick else "demo.toml")
    if not spec.is_file():
        raise InterpError(f"demo spec not found: {spec}")
    sweep = SweepDir(out)
    t0 = time.perf_counter()
    sweep_spec, cfg = load_analysis_spec(spec)
    names = zoo_names(quick)
    zoo_dir = sweep.path / "zoo"
    # The zoo analysis is one single-threaded process's work and needs nothing from the live
    # runs, so it runs beside them (in a fresh interpreter) instead of after them.
    pool = (
        ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) if names else None
    )
    try:
        future = pool.submit(_zoo_job, names, str(zoo_dir), quick, device) if pool else None
        side = f"; the zoo family ({len(names)} entries) is analysed beside it" if names else ""
        print(f"[1/4] training {spec.name} live into {out}{side} ...", flush=True)
        run_sweep(
            sweep_spec, out, executor="local", workers=workers, device=device, progress=progress
        )
        failures = sweep.failures_path
        if failures.is_file() and failures.read_text().strip() not in ("", "[]", "{}"):
            raise InterpError(f"some demo runs failed; see {failures}")
        print("[2/4] the live runs: accuracy, head scores, overlap, causal tests ...", flush=True)
        live = analyze_sweep(out, cfg, device=device, progress=progress)
        if future is not None:
            print(f"[3/4] the zoo family ({len(names)} entries of models/zoo/{ZOO_FAMILY}*, "
                  f"seeds 0-{ZOO_DEMO_SEEDS - 1}): "
                  "accuracy, head scores, overlap, between-run test ...", flush=True)  # fmt: skip
            family = future.result()
        else:
            family = None
            print("[3/4] no zoo family found; skipped", flush=True)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    shipped = shipped_family_lines(quick)
    print("[4/4] writing the report ...", flush=True)
    report = write_report(
        out,
        sweep.report_path,
        title="interp demo: arithmetic group A",
        family=zoo_dir if family is not None else None,
    )
    text = _summary(live, family, time.perf_counter() - t0, report, shipped)
    write_text(sweep.summary_path, text + "\n")
    print(text)
    return report
