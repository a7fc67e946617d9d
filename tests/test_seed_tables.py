"""Per-seed tables of an analysed sweep (``interp results``), on planted tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from interp.cli.commands import main
from interp.report import seed_tables as st


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    meta = pd.DataFrame(
        [
            ("t-s0", "string_a", "transfer", "copy", "mqar", 0),
            ("t-s1", "string_a", "transfer", "copy", "mqar", 1),
            ("b-s0", "baseline", "baseline", "copy", "", 0),
        ],
        columns=["run", "group", "kind", "main", "aux", "seed"],
    ).assign(main_max=2, aux_max=4, positional="rope")
    # Planted: t-s0 transfers (0.5 at length 3), t-s1 does not (0.05), the baseline gets 0;
    # t-s1's auxiliary misses its gate at length 4. An earlier step must be ignored.
    main_acc = {"t-s0": [1, 1, 0.5, 0.25], "t-s1": [1, 1, 0.05, 0], "b-s0": [1, 1, 0, 0]}
    aux_acc = {"t-s0": [1, 1, 1, 0.95], "t-s1": [1, 1, 0.95, 0.5]}
    rows = []
    for run, accs in main_acc.items():
        for n, a in enumerate(accs, 1):
            rows += [(run, 10, "copy", n, a, 20), (run, 5, "copy", n, 0.0, 20)]
    for run, accs in aux_acc.items():
        for n, a in enumerate(accs, 1):
            rows.append((run, 10, "mqar", n, a, 20))
    acc = pd.DataFrame(rows, columns=["run", "step", "task", "length", "accuracy", "n"])
    return acc, meta


def test_seed_rows_intervals_and_order():
    acc, meta = _tables()
    rows = st.seed_rows(acc, meta)
    assert list(rows.columns) == st.ROW_COLUMNS
    assert rows["run"].drop_duplicates().tolist() == ["t-s0", "t-s1", "b-s0"]  # baseline last
    r = rows[(rows["run"] == "t-s0") & (rows["length"] == 3)].iloc[0]
    assert r["correct"] == 10 and r["n"] == 20
    assert r["ci_lo"] == pytest.approx(0.272, abs=1e-3) and r["ci_hi"] == pytest.approx(
        0.728, abs=1e-3
    )
    assert (rows["task"] == "copy").all() and len(rows) == 12  # the last step only


def test_markdown_counts_transferring_seeds_and_gate():
    acc, meta = _tables()
    md = st.seed_markdown(st.seed_rows(acc, meta))
    assert "| string_a | rope | 0 |" in md and "| 0.375 | yes |" in md
    assert "| **string_a** | rope | **1/2 transfer** |" in md
    assert "| **baseline** | rope | **0/1 transfer** |" in md
    gate = st.aux_gate(acc, meta)
    assert gate.set_index("run")["passes"].to_dict() == {"t-s0": True, "t-s1": False}
    assert gate.set_index("run").loc["t-s1", "worst_length"] == 4


def test_results_cli_ships_a_copy_that_regenerates_itself(tmp_path: Path, capsys):
    acc, meta = _tables()
    sweep = tmp_path / "sweep"
    (sweep / "analysis").mkdir(parents=True)
    acc.to_parquet(sweep / "analysis" / "accuracy.parquet")
    meta.to_parquet(sweep / "analysis" / "meta.parquet")
    out = tmp_path / "shipped"
    assert main(["results", str(sweep), "--out", str(out)]) == 0
    first = (out / "results.md").read_text()
    assert "1/2 transfer" in first and "| t-s1 | mqar | 0.500 | 4 | no |" in first
    assert main(["results", str(out)]) == 0  # from the shipped copy alone
    assert (out / "results.md").read_text() == first
    capsys.readouterr()
    assert main(["results", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "analyse the sweep first" in err


def test_a_length_grid_gets_one_table_per_main_length_and_labels_aux_lengths():
    """Fig. 10's sweep: one group and seed at several (main, aux) lengths. Each main length gets
    its own table and transfer range; a cell whose auxiliary is no longer than the main task has
    no length to transfer to, which reads "n/a", not "no"."""
    grid = [(2, 2), (2, 4), (4, 2), (4, 4)]
    meta = pd.DataFrame(
        [(f"m{m}a{a}", "arith_a", "transfer", "reverse_add", "no_carry", 0, m, a) for m, a in grid],
        columns=["run", "group", "kind", "main", "aux", "seed", "main_max", "aux_max"],
    ).assign(positional="rope")
    rows = []
    for m, a in grid:
        for n in range(1, max(m, a) + 1):
            rows.append((f"m{m}a{a}", 10, "reverse_add", n, 1.0 if n <= m else 0.5, 20))
    acc = pd.DataFrame(rows, columns=["run", "step", "task", "length", "accuracy", "n"])
    md = st.seed_markdown(st.seed_rows(acc, meta))
    assert "**reverse_add** (trained on 1..2; transfer from 3)" in md
    assert "**reverse_add** (trained on 1..4; transfer from 5)" in md
    assert "| **arith_a (aux 1..4)** | rope | **1/1 transfer** |" in md
    assert md.count("| **arith_a (aux 1..2)** | rope | **n/a: nothing past 2 evaluated** |") == 1
    assert "| **arith_a (aux 1..4)** | rope | **n/a: nothing past 4 evaluated** |" in md
