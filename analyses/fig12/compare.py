"""Figure 12 at CPU scale: RoPE against NoPE on arithmetic group A, from shipped tables only.

NoPE: the sweep ``analyses/fig12_rope_vs_nope.toml`` (its analysis tables shipped in
``analyses/fig12/analysis/`` by ``interp results RUNS/fig12_rope_vs_nope --out analyses/fig12``:
128 items per length at step 4000). RoPE: the ``b4_both_s*`` and ``b4_main_s*`` zoo entries, whose
specs equal the NoPE cells' but for the positional scheme (``tests/test_fig12.py``), read from their
per-checkpoint tables at the final step, 4000 (256 items per length).

For each (positional scheme, condition, seed): the main task's accuracy at 7 digits (one past its
training range) and pooled over 7..12, each with its exact (Clopper-Pearson) 95% interval, and
the worse auxiliary's accuracy at 12 digits (did the auxiliaries learn their own range?). Then the
transfer *gain* per scheme: mean pooled accuracy with both auxiliaries minus the main task alone,
so that NoPE's own length generalization is not counted as transfer.

    .venv/bin/python analyses/fig12/compare.py    # writes analyses/fig12/compare.{md,parquet}
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from interp.core.io import write_parquet, write_text  # noqa: E402
from interp.stats.intervals import clopper_pearson  # noqa: E402
from interp.zoo import registry as zoo  # noqa: E402
from interp.zoo.family import TRANSFER_THRESHOLD  # noqa: E402

HERE = Path(__file__).resolve().parent
MAIN, AUX = "reverse_add", ("no_carry", "carry_only")
FIRST, LAST = 7, 12


def summarise(
    acc: pd.DataFrame,
    positional: str,
    condition: str,
    seed: int,
    source: str,
    task: str = MAIN,
    aux: tuple[str, ...] = AUX,
    first: int = FIRST,
    last: int = LAST,
) -> dict:
    """One run's row from its accuracy rows (``task, length, accuracy, n``) at the final step:
    ``task`` at ``first`` (one past its training range ``1..first-1``) and pooled over
    ``first..last`` with exact intervals, its worst accuracy in range, the worse of ``aux`` at
    ``last``. ``analyses/fig12_strings/compare.py`` calls it with the string group's lengths."""
    main = acc[acc["task"] == task].set_index("length")
    past = main.loc[first:last]
    k1 = round(main.loc[first, "accuracy"] * main.loc[first, "n"])
    kp = int(np.round(past["accuracy"] * past["n"]).sum())
    n1, npool = int(main.loc[first, "n"]), int(past["n"].sum())
    (lo1, lop), (hi1, hip) = clopper_pearson([k1, kp], [n1, npool])
    aux_last = [
        float(acc[(acc["task"] == a) & (acc["length"] == last)]["accuracy"].iloc[0])
        for a in aux
        if ((acc["task"] == a) & (acc["length"] == last)).any()
    ]
    return {
        "positional": positional, "condition": condition, "seed": seed, "source": source,
        "acc_first": k1 / n1, "acc_first_lo": lo1, "acc_first_hi": hi1, "n_first": n1,
        "pooled": kp / npool, "pooled_lo": lop, "pooled_hi": hip, "n_pooled": npool,
        "in_range": float(main.loc[1 : first - 1, "accuracy"].min()),
        "aux_last": min(aux_last) if aux_last else np.nan,
    }  # fmt: skip


def rope_rows() -> list[dict]:
    rows = []
    for name in zoo.names():
        cond = name.split("_")[1] if name.startswith("b4_") else ""
        if cond not in ("both", "main"):
            continue
        path = zoo.entry_dir(name) / "tables" / "accuracy_by_step.parquet"
        if not path.is_file():
            continue
        acc = pd.read_parquet(path)
        last = acc[acc["step"] == acc["step"].max()]
        rows.append(summarise(last, "rope", cond, zoo.spec(name).seed, name))
    return rows


def final_runs(d: Path):
    """Each run of a sweep's shipped analysis tables in ``d`` (``meta.parquet``,
    ``accuracy.parquet``): its ``meta`` row and its accuracy rows at its final step. The other
    figures' comparisons read their sweeps through this too."""
    acc, meta = pd.read_parquet(d / "accuracy.parquet"), pd.read_parquet(d / "meta.parquet")
    for m in meta.itertuples(index=False):
        a = acc[acc["run"] == m.run]
        yield m, a[a["step"] == a["step"].max()]


def measured(r) -> str:
    """A summary row's measured cells, as Markdown: at ``first`` and pooled, each with its
    interval, the worst accuracy in range, the worse auxiliary at ``last`` (blank if none)."""
    aux = "" if not np.isfinite(r.aux_last) else f"{r.aux_last:.3f}"
    return (
        f"{r.acc_first:.3f} [{r.acc_first_lo:.3f}, {r.acc_first_hi:.3f}] | "
        f"{r.pooled:.3f} [{r.pooled_lo:.3f}, {r.pooled_hi:.3f}] | {r.in_range:.3f} | {aux}"
    )


def gain_table(
    source: Path, groups: dict[str, tuple[str, str]], first: int, last: int
) -> pd.DataFrame:
    """One row per run of a sweep with main-alone baselines (shipped tables in ``source``): each
    group's main task with its auxiliary (``with aux``) and each main task trained alone
    (``alone``), at the final step. ``groups`` maps a group to ``(main task, auxiliary)``; a
    baseline belongs to every group whose main task it trains. The maze and string-A comparisons
    are built on it."""
    rows, runs = [], list(final_runs(source))
    for group, (main, aux) in groups.items():
        for m, a in runs:
            if m.main != main or (m.kind != "baseline" and m.group != group):
                continue
            cond = "alone" if m.kind == "baseline" else "with aux"
            row = summarise(a, m.positional, cond, int(m.seed), m.run, main, (aux,), first, last)
            rows.append({"group": group, "main": main, "aux": aux, **row})
    df = pd.DataFrame(rows)
    return df.sort_values(
        ["group", "condition", "seed"], ascending=[True, False, True]
    ).reset_index(drop=True)


def gain_markdown(df: pd.DataFrame, first: int, last: int) -> str:
    """``gain_table``'s rows as Markdown, then per group the transfer gain seed by seed (pooled
    ``first..last``, with the auxiliary minus the main task alone), descriptive at any number of
    seed pairs an exact sign-flip test cannot use."""
    header = (
        f"| group (main <- auxiliary) | condition | seed | at {first} [95% CI] | pooled "
        f"{first}..{last} [95% CI] | min on own range | auxiliary at {last} |\n"
        "|---|---|---|---|---|---|---|"
    )
    lines = [header] + [
        f"| {r.group} ({r.main} <- {r.aux}) | {r.condition} | {r.seed} | {measured(r)} |"
        for r in df.itertuples(index=False)
    ]
    lines.append("")
    for group in df["group"].unique():
        g = df[df["group"] == group]
        piv = g.pivot_table(index="seed", columns="condition", values="pooled")
        if not {"with aux", "alone"} <= set(piv.columns):
            continue
        gain = (piv["with aux"] - piv["alone"]).dropna()
        n = len(gain)
        lines.append(
            f"- {group}: transfer gain (pooled {first}..{last}, with the auxiliary minus the "
            f"main task alone), mean over seeds {gain.mean():+.3f} (per seed: "
            + ", ".join(f"s{s} {v:+.3f}" for s, v in gain.items())
            + f"); {n} seed pair{'s' if n != 1 else ''}: an exact sign-flip test's smallest "
            f"two-sided p is {2 / 2**n:.2f}, so this is descriptive."
        )
    return "\n".join(lines) + "\n"


def gain_comparison(here: Path, groups: dict[str, tuple[str, str]], first: int, last: int):
    """``(table, markdown, main)`` of a gain comparison whose sweep's shipped tables lie in
    ``here / "analysis"``: ``main`` writes ``compare.md`` and ``compare.parquet`` into ``here``.
    The maze and string-A scripts are this with their groups and lengths."""

    def table(source: Path = here / "analysis") -> pd.DataFrame:
        return gain_table(source, groups, first, last)

    def markdown(df: pd.DataFrame) -> str:
        return gain_markdown(df, first, last)

    def main() -> None:
        df = table()
        text = markdown(df)
        write_text(here / "compare.md", text)
        write_parquet(here / "compare.parquet", df)
        print(text, end="")

    return table, markdown, main


def nope_rows() -> list[dict]:
    rows = []
    for m, a in final_runs(HERE / "analysis"):
        cond = "main" if m.kind == "baseline" else "both"
        rows.append(summarise(a, m.positional, cond, int(m.seed), m.run))
    return rows


def markdown(df: pd.DataFrame) -> str:
    lines = [
        "| positional | condition | seed | at 7 [95% CI] | pooled 7..12 [95% CI] | min 1..6 | "
        "worse auxiliary at 12 | transfers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples(index=False):
        lines.append(
            f"| {r.positional} | {r.condition} | {r.seed} | {measured(r)} | "
            f"{'yes' if r.acc_first > TRANSFER_THRESHOLD else 'no'} |"
        )
    g = df.groupby(["positional", "condition"])
    summ = g.agg(
        n=("seed", "size"),
        pooled=("pooled", "mean"),
        acc_first=("acc_first", "mean"),
        transfer=("acc_first", lambda x: int((x > TRANSFER_THRESHOLD).sum())),
    )
    lines += [
        "",
        "| positional | condition | seeds | mean at 7 | mean pooled 7..12 | seeds > 0.1 at 7 |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for r in summ.reset_index().itertuples(index=False):
        lines.append(
            f"| {r.positional} | {r.condition} | {r.n} | {r.acc_first:.3f} | {r.pooled:.3f} | "
            f"{r.transfer}/{r.n} |"
        )
    gain = {
        p: summ.loc[(p, "both"), "pooled"] - summ.loc[(p, "main"), "pooled"]
        for p in ("rope", "nope")
        if (p, "both") in summ.index and (p, "main") in summ.index
    }
    lines.append("")
    for p, v in gain.items():
        lines.append(
            f"- transfer gain with {p.upper()} (mean pooled 7..12, both auxiliaries minus the "
            f"main task alone): {v:+.3f}"
        )
    paired = df[df["seed"].isin(df[df["positional"] == "nope"]["seed"])]
    piv = paired.pivot_table(index="seed", columns=["positional", "condition"], values="pooled")
    need = {("rope", "both"), ("rope", "main"), ("nope", "both"), ("nope", "main")}
    if need <= set(piv.columns):
        diff = (piv[("rope", "both")] - piv[("rope", "main")]) - (
            piv[("nope", "both")] - piv[("nope", "main")]
        )
        n = int(diff.notna().sum())
        matched = {p: (piv[(p, "both")] - piv[(p, "main")]).mean() for p in ("rope", "nope")}
        lines.append(
            f"- on the {n} seeds both schemes share, mean gain: RoPE {matched['rope']:+.3f}, "
            f"NoPE {matched['nope']:+.3f}"
        )
        lines.append(
            "- per seed, RoPE's gain minus NoPE's gain: "
            + ", ".join(f"s{s} {v:+.3f}" for s, v in diff.items())
            + f". Not testable as a claim: {n} seed pairs give an exact sign-flip test a "
            f"smallest two-sided p of {2 / 2**n:.2f}; read it descriptively."
        )
    return "\n".join(lines) + "\n"


def table() -> pd.DataFrame:
    """Every run's row: RoPE first, then NoPE; ``both`` before ``main``; by seed."""
    df = pd.DataFrame(rope_rows() + nope_rows())
    df = df.sort_values(["positional", "condition", "seed"], ascending=[False, True, True])
    return df.reset_index(drop=True)


def main() -> None:
    df = table()
    write_parquet(HERE / "compare.parquet", df)
    write_text(HERE / "compare.md", markdown(df))
    print(markdown(df))


if __name__ == "__main__":
    main()
