"""The family's statistics from its shipped per-checkpoint tables: no model runs.

Every run of the arithmetic family (issue 21; ``analyses/family/PLAN.md``) ships, beside its
final float16 weights, two tables in ``models/zoo/NAME/tables/`` written right after training
by ``analyses/family/checkpoint_tables.py``:

* ``accuracy_by_step.parquet``: exact match of every task at every length 1..12, at each of
  the 12 checkpoints (256 items per length);
* ``heads_by_step.parquet``: mean-ablation head maps (``exact_match`` and ``frac_lost``) of
  every task on the **shared range** (the main task's training lengths 1..6, the plan's one
  definition of sharedness) and of each auxiliary on the transfer range (exploratory).

This module reads them and runs the plan's tests, so every family analysis can be redone
without retraining and without loading a model:

1. overlap per run and checkpoint from the shared-range maps
   (:func:`interp.scoring.overlap.overlap_table`);
2. the observational run-level statistics of :func:`interp.runs.analysis.run_level_tables`: the
   primary between-run test (section 4), related vs control (section 5) and the within-run
   sign-flip test (section 6);
3. the intervention (section 8): ``shared`` vs ``disjoint`` by the exact rank-sum test
   (:func:`interp.stats.arms.arm_contrast`) on transfer and, as the manipulation check, on
   competence; the paired sign-flip test of per-seed differences as a secondary row;
4. :func:`results_table`: one row per question with the estimate, interval, p-value, runs
   included and excluded, minimum detectable effect and verdict.

The masked runs (``*_disjoint_s*``, ``*_shared_s*``) never enter the observational tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interp.core.errors import InterpError
from interp.core.io import read_parquet
from interp.scoring.overlap import overlap_table
from interp.stats.intervals import clopper_pearson, empirical_logit, not_testable
from interp.stats.metrics import unseen_lengths
from interp.zoo import registry as zoo
from interp.zoo.family import condition_accuracy
from interp.zoo.family_sweep import INTERVENTIONS, entry_meta, family_names, with_baselines

PREFIX = "b4_"
"""The family trained with per-checkpoint tables (bf16 + compile, ``analyses/family/PLAN.md``)."""
TABLES = "tables"
"""The folder of a family entry that holds its per-checkpoint tables."""
ACCURACY_FILE = "accuracy_by_step.parquet"
HEADS_FILE = "heads_by_step.parquet"
HEAD_SETS_FILE = "head_sets.parquet"
"""Head sets at the final checkpoint (``analyses/family/head_sets.py``), where computed."""
SHARED_RANGE = "shared"
K = 4
"""Top-k of the Jaccard overlap statistics (the analysis default, :class:`AnalysisConfig`)."""
COMPETENT = 0.9
"""Exploratory, not in the plan: the intervention's arms compared among the runs whose main task
reaches this accuracy on its own unseen training lengths (the auxiliary gate's threshold), the
plan's "comparable in-distribution accuracy" (section 8) made a filter."""
MIN_PAIRS = 6
"""Fewest seed pairs for the paired sign-flip row (5 pairs cannot reach p = 0.05 two-sided)."""


def tables_dir(name: str, root: str | Path | None = None) -> Path:
    """``models/zoo/NAME/tables``: where a family entry's per-checkpoint tables live."""
    return zoo.entry_dir(name, root) / TABLES


def has_tables(name: str, root: str | Path | None = None) -> bool:
    """Whether entry ``name`` ships both per-checkpoint tables."""
    d = tables_dir(name, root)
    return (d / ACCURACY_FILE).is_file() and (d / HEADS_FILE).is_file()


def entry_tables(name: str, root: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(accuracy, heads)``: the two per-checkpoint tables of entry ``name``.

    Raises:
        InterpError: the entry ships no tables, or one is unreadable.
    """
    d = tables_dir(name, root)
    if not has_tables(name, root):
        raise InterpError(f"zoo entry {name} ships no per-checkpoint tables ({d} is incomplete)")
    acc = read_parquet(d / ACCURACY_FILE)
    heads = read_parquet(d / HEADS_FILE)
    acc["run"], heads["run"] = name, name
    return acc, heads


def overlap_by_step(heads: pd.DataFrame, k: int = K) -> pd.DataFrame:
    """Overlap statistics of every task pair at every checkpoint, from the shared-range maps.

    Args:
        heads: ``heads_by_step`` rows of one or more runs (``run, step, range, task, layer,
            head, score, method, metric``).
        k: top-``k`` of the Jaccard statistics.

    Returns:
        Long frame ``run, step, method, metric, task_a, task_b, statistic, value`` (the layout
        of the sweep analysis's ``overlap`` table).
    """
    shared = heads[heads["range"] == SHARED_RANGE]
    frames = []
    for (run, step, method, metric), sub in shared.groupby(
        ["run", "step", "method", "metric"], sort=True
    ):
        if sub["task"].nunique() < 2:
            continue
        sub = sub.assign(length=pd.NA)
        ov = overlap_table(sub, None, k=k)
        frames.append(ov.assign(run=run, step=int(step), method=method, metric=metric))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def family_meta(names: list[str], root: str | Path | None = None) -> pd.DataFrame:
    """One metadata row per entry (:func:`interp.runs.dirs.meta_row`), with ``condition`` from
    the entry's name (``both``, ``nocarry``, ..., ``disjoint``, ``shared``) and each run's
    main-only ``baseline`` of the same seed (else the first)."""
    return with_baselines(pd.DataFrame([entry_meta(n, zoo.spec(n, root)) for n in names]))


def seed_table(
    acc: pd.DataFrame,
    meta: pd.DataFrame,
    step: int | None = None,
    root: str | Path | None = None,
) -> pd.DataFrame:
    """The main task's transfer per run at the final checkpoint (or ``step``): pooled over the
    transfer range ``main_max + 1 .. aux_max`` (7..12), with the exact 95% interval.

    Returns:
        One row per run: ``run, condition, seed, step, correct, n, transfer, ci_lo, ci_hi,
        competence`` (main task pooled over its unseen training lengths).
    """
    rows = []
    for info in meta.itertuples(index=False):
        r = acc[(acc["run"] == info.run) & (acc["task"] == info.main)]
        if not len(r):
            continue
        at = int(r["step"].max()) if step is None else step
        r = r[r["step"] == at]
        spec = zoo.spec(info.run, root)
        t_lo, t_hi = spec.transfer_range()
        t = r[r["length"].between(t_lo, t_hi)]
        c = r[r["length"].isin(unseen_lengths(spec))]
        k = int(t["correct"].sum())
        n = int(t["n"].sum())
        rows.append(
            {
                "run": info.run,
                "condition": info.condition,
                "seed": int(info.seed),
                "step": at,
                "correct": k,
                "n": n,
                "transfer": k / n if n else np.nan,
                "competence": float(c["correct"].sum() / c["n"].sum()) if len(c) else np.nan,
            }
        )
    df = pd.DataFrame(rows)
    if len(df):
        df["ci_lo"], df["ci_hi"] = clopper_pearson(df["correct"].to_numpy(), df["n"].to_numpy())
    return df


def paired_arms(seeds: pd.DataFrame, arm_a: str = "shared", arm_b: str = "disjoint") -> dict:
    """Secondary row of section 8: the sign-flip test of per-seed differences in logit
    transfer (``arm_a - arm_b``, seeds present in both arms), interval by inverting it."""
    from interp.stats.within import sign_flip_ci, sign_flip_p

    a = seeds[seeds["condition"] == arm_a].set_index("seed")
    b = seeds[seeds["condition"] == arm_b].set_index("seed")
    common = sorted(set(a.index) & set(b.index))
    la = empirical_logit(
        a.loc[common, "correct"].to_numpy(float), a.loc[common, "n"].to_numpy(float)
    )
    lb = empirical_logit(
        b.loc[common, "correct"].to_numpy(float), b.loc[common, "n"].to_numpy(float)
    )
    d = np.asarray(la - lb, dtype=float)
    nan = float("nan")
    row = {"n_pairs": len(common), "estimate": float(d.mean()) if len(d) else nan}
    if len(common) < MIN_PAIRS:
        why = not_testable(len(common), f"the paired sign-flip test needs {MIN_PAIRS} seed pairs")
        return {**row, "ci_low": nan, "ci_high": nan, "p_value": nan, "reason": why}
    lo, hi = sign_flip_ci(d)
    return {
        **row,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "p_value": float(sign_flip_p(d)),
        "reason": "",
    }


def head_set_tables(obs: pd.DataFrame, root: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The head-set sign-flip test over the observational runs whose ``head_sets.parquet``
    exists (:func:`interp.stats.within.head_set_summary`; runs without a slope are listed as
    not applicable there), and ``head_sets_pending``: runs with an auxiliary not computed yet."""
    from interp.stats.within import head_set_summary

    with_aux = obs[obs["kind"] != "baseline"]
    have = [r for r in with_aux["run"] if (tables_dir(r, root) / HEAD_SETS_FILE).is_file()]
    pending = pd.DataFrame({"run": [r for r in with_aux["run"] if r not in set(have)]})
    if not have:
        return {"head_sets_pending": pending}
    sets = pd.concat(
        [read_parquet(tables_dir(r, root) / HEAD_SETS_FILE) for r in have], ignore_index=True
    )
    done = with_aux[with_aux["run"].isin(have)]
    return {"head_sets": head_set_summary(sets, done), "head_sets_pending": pending}


def analyze(prefix: str, root: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the family ``PREFIX*`` from its shipped tables (module docstring).

    Args:
        prefix: the family's name prefix (``b4_``).
        root: zoo root (default: ``models/zoo``).

    Returns:
        ``meta`` (every entry, with ``tables``: whether it ships them), ``accuracy``,
        ``overlap``, ``seeds`` (:func:`seed_table`), the observational ``runs``, ``between``,
        ``contrasts``, ``within_runs``, ``within`` (:func:`interp.runs.analysis.run_level_tables`),
        ``arms`` (the intervention's contrasts), ``conditions``
        (:func:`interp.zoo.family.condition_accuracy`)
        and ``results`` (:func:`results_table`).

    Raises:
        InterpError: no entry of the family ships its tables.
    """
    from interp.runs.analysis import run_level_tables
    from interp.stats.arms import arm_contrast
    from interp.stats.run_table import run_table

    names = family_names(prefix, root, interventions=True)
    meta = family_meta(names, root)
    meta["tables"] = [has_tables(n, root) for n in names]
    shipped = [n for n in names if has_tables(n, root)]
    if not shipped:
        raise InterpError(f"no {prefix}* zoo entry ships per-checkpoint tables")
    accs, heads = zip(*(entry_tables(n, root) for n in shipped), strict=True)
    acc = pd.concat(accs, ignore_index=True)
    ov = overlap_by_step(pd.concat(heads, ignore_index=True))
    have = meta[meta["tables"]]
    masked = have["condition"].isin(INTERVENTIONS)
    obs = have[~masked].reset_index(drop=True)
    id_lengths = {r: unseen_lengths(zoo.spec(r, root)) for r in have["run"]}
    out: dict[str, pd.DataFrame] = {"meta": meta, "accuracy": acc, "overlap": ov}
    out["seeds"] = seed_table(acc, have, root=root)
    out["conditions"] = condition_accuracy(acc, obs, root)
    obs_ov = ov[ov["run"].isin(set(obs["run"]))]
    out.update(run_level_tables(obs_ov, acc[acc["run"].isin(set(obs["run"]))], obs, id_lengths))
    arms = have[masked | (have["condition"] == "both")]
    arm_runs = run_table(ov[ov["run"].isin(set(arms["run"]))], acc, arms, id_lengths=id_lengths)
    from interp.stats.between_table import PRIMARY

    for key, v in PRIMARY.items():
        if key in arm_runs.columns:
            arm_runs = arm_runs[arm_runs[key] == v]
    out.update(head_set_tables(obs, root))
    rows = [arm_contrast(arm_runs, value=v) for v in ("transfer_acc", "competence")]
    paired = paired_arms(out["seeds"])
    rows.append(
        {
            "value": "transfer_acc (paired by seed)",
            "arm_a": "shared",
            "arm_b": "disjoint",
            "n_a": paired["n_pairs"],
            "n_b": paired["n_pairs"],
            **{k: paired[k] for k in ("estimate", "ci_low", "ci_high", "p_value", "reason")},
        }
    )
    competent = arm_runs[arm_runs["competence"] >= COMPETENT]
    rows.append({**arm_contrast(competent), "value": f"transfer_acc (competence >= {COMPETENT})"})
    out["arms"] = pd.DataFrame(rows)
    out["results"] = results_table(out)
    return out


INTERVENTION_EFFECTS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
"""Latent shifts of the transfer logit (``disjoint`` below ``shared``) simulated for the
intervention's power (:func:`interp.stats.power.power_intervention`, the plan's model)."""


RANK_SUM_TRANSFER = ("transfer_acc", f"transfer_acc (competence >= {COMPETENT})")
"""The ``arms`` rows that compare transfer by the rank-sum test whose power
:func:`interp.stats.power.power_intervention` simulates (the paired row is a sign-flip test and
the competence row a manipulation check)."""


def _intervention_mde(n_per_arm: int | tuple[int, int]) -> tuple[float, float]:
    """The rank-sum test's minimum detectable shift at ``n_per_arm`` seeds per arm, or
    ``(n_shared, n_disjoint)`` (80% power, 2000 simulated families, the plan's seed), and the
    highest power on the grid."""
    from interp.stats.power import mde, power_intervention

    power = power_intervention(INTERVENTION_EFFECTS, n_per_arm, n_datasets=2000, seed=5)
    return mde(INTERVENTION_EFFECTS, power), max(power)


def _verdict(p: float, reason: str, yes: str, no: str) -> str:
    if reason:
        return reason
    return yes if p <= 0.05 else no


def results_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per question of the plan: ``question, role, estimate, ci_low, ci_high, p_value,
    n_included, n_excluded, mde, verdict`` (``mde``: minimum detectable effect at 80% power at
    the design used, in the estimate's units; NaN where only simulated power exists, which the
    plan quotes)."""
    from interp.stats.between_table import describe

    rows = []
    nan = float("nan")
    b = tables.get("between")
    if b is not None and len(b):
        from interp.stats.between_table import PRIMARY

        for key, v in PRIMARY.items():  # the pre-declared combination: primary + sensitivity
            if key in b.columns:
                b = b[b[key] == v]
        for _, r in b[b["primary"] | b["model"].str.startswith("rank")].iterrows():
            if not (r["primary"] or "all runs" in str(r["model"])):
                continue
            rows.append(
                {
                    "question": "overlap predicts transfer (between runs)"
                    + ("" if r["primary"] else ", no competence rule"),
                    "role": "primary" if r["primary"] else "sensitivity",
                    "estimate": r["estimate"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "p_value": r["p_value"],
                    "n_included": int(r["n_runs"]),
                    "n_excluded": int(r["n_excluded"]),
                    "mde": r.get("mde", nan),
                    "verdict": describe(r),
                }
            )
    c = tables.get("contrasts")
    if c is not None and len(c):
        r = c[c["value"] == "overlap"].iloc[0]
        rows.append(
            {
                "question": "related runs' overlap differs from the control's",
                "role": "secondary",
                "estimate": r["diff"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "p_value": r["p_value"],
                "n_included": int(r["n_related"] + r["n_control"]),
                "n_excluded": 0,
                "mde": r["mde"],
                "verdict": _verdict(
                    r["p_value"],
                    r.get("reason", "") or "",
                    "overlap differs (map_diff)",
                    "no evidence of a difference",
                ),
            }
        )
    w = tables.get("within")
    if w is not None and len(w):
        from interp.stats.between_table import PRIMARY

        sub = w[w["kind"] != "control"] if "kind" in w.columns else w
        for key, v in PRIMARY.items():  # the pre-declared combination only
            if key in sub.columns:
                sub = sub[sub[key] == v]
        for _, r in sub.iterrows():
            rows.append(
                {
                    "question": "overlap and transfer move together within runs",
                    "role": "secondary",
                    "estimate": r["mean"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "p_value": r["p_value"],
                    "n_included": int(r["n_runs"]),
                    "n_excluded": int(r["n_excluded"]),
                    "mde": r["mde"],
                    "verdict": _verdict(
                        r["p_value"],
                        r["reason"] or "",
                        "they move together",
                        "no evidence that they move together",
                    ),
                }
            )
    hs = tables.get("head_sets")
    pend = tables.get("head_sets_pending")
    n_pend = 0 if pend is None else len(pend)
    if hs is not None and len(hs):
        for _, r in hs[hs["kind"] == "related"].iterrows():
            why = r["reason"] or ""
            na = str(r.get("not_applicable", "") or "")
            extra = "; ".join(
                x
                for x in (
                    f"{na.count(': not applicable')} runs not applicable" if na else "",
                    f"{n_pend} runs not computed yet" if n_pend else "",
                )
                if x
            )
            verdict = _verdict(
                r["p_value"], why, "shared-head damage tracks transfer damage",
                "no evidence that shared-head damage tracks transfer damage",
            )  # fmt: skip
            rows.append({
                "question": "head sets: damage to shared heads predicts transfer damage",
                "role": "secondary", "estimate": r["mean"], "ci_low": r["ci_low"],
                "ci_high": r["ci_high"], "p_value": r["p_value"], "n_included": int(r["n_runs"]),
                "n_excluded": int(r["n_excluded"]), "mde": r["mde"],
                "verdict": verdict + (f" ({extra})" if extra else ""),
            })  # fmt: skip
    elif n_pend:
        rows.append({
            "question": "head sets: damage to shared heads predicts transfer damage",
            "role": "secondary", "estimate": nan, "ci_low": nan, "ci_high": nan,
            "p_value": nan, "n_included": 0, "n_excluded": 0, "mde": nan,
            "verdict": f"not computed yet for {n_pend} runs (analyses/family/head_sets.py)",
        })  # fmt: skip
    a = tables.get("arms")
    if a is not None and len(a):
        comp = a[a["value"] == "competence"]
        comp_p = float(comp["p_value"].iloc[0]) if len(comp) else nan
        for _, r in a.iterrows():
            what = {
                "transfer_acc": "transfer: shared heads vs disjoint heads (intervention)",
                "competence": "competence: shared vs disjoint (manipulation check)",
                f"transfer_acc (competence >= {COMPETENT})": (
                    f"transfer: shared vs disjoint, runs with competence >= {COMPETENT} only"
                ),
            }
            role = {"transfer_acc": "key secondary", "competence": "secondary"}.get(
                r["value"], "exploratory" if "competence >=" in r["value"] else "secondary"
            )
            verdict = _verdict(
                r["p_value"],
                r.get("reason", "") or "",
                "the arms differ",
                "no evidence that the arms differ",
            )
            mde = nan
            # Every rank-sum transfer contrast, the exploratory one included, carries its power.
            if r["value"] in RANK_SUM_TRANSFER and min(r["n_a"], r["n_b"]) >= 2:
                mde, top = _intervention_mde((int(r["n_a"]), int(r["n_b"])))
                if not np.isfinite(mde):
                    verdict += f" (power never reaches 80% at this size: at most {top:.2f})"
            if r["value"] == "transfer_acc" and np.isfinite(comp_p) and comp_p <= 0.05:
                # PLAN section 8: read only at comparable in-distribution accuracy.
                verdict += (
                    f"; but competence differs too (p = {comp_p:.3f}), so the contrast is "
                    "confounded by capacity use, not evidence about sharing (plan, section 8)"
                )
            rows.append(
                {
                    "question": what.get(r["value"], f"{r['value']}: shared vs disjoint"),
                    "role": role,
                    "estimate": r["estimate"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "p_value": r["p_value"],
                    "n_included": int(r["n_a"] + r["n_b"]),
                    "n_excluded": 0,
                    "mde": mde,
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "question",
            "role",
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "n_included",
            "n_excluded",
            "mde",
            "verdict",
        ],
    )
