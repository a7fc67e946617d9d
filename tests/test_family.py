"""Zoo families: exact binomial intervals and the per-condition transfer table."""

from __future__ import annotations

import numpy as np
import pytest

from interp import zoo
from interp.cli.commands import main
from interp.zoo import family


def test_clopper_pearson_known_values():
    lo, hi = family.clopper_pearson(np.array([0, 10, 5]), np.array([10, 10, 10]))
    assert lo[0] == 0 and hi[0] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert hi[1] == 1 and lo[1] == pytest.approx(0.025 ** (1 / 10))
    # symmetric around one half, and the textbook value for 5/10
    assert lo[2] == pytest.approx(1 - hi[2]) and lo[2] == pytest.approx(0.1871, abs=1e-4)


@pytest.fixture(scope="module")
def fam():
    return family.family_accuracy(
        ["arith_a", "arith_a_baseline"], n_examples=64, main_only=False, progress=False
    )


def test_family_accuracy_rows(fam):
    assert set(fam["name"]) == {"arith_a", "arith_a_baseline"}
    assert set(fam[fam["name"] == "arith_a_baseline"]["task"]) == {"reverse_add"}
    assert set(fam["task"]) == {"reverse_add", "no_carry", "carry_only"}
    assert (fam["n"] == 64).all() and (fam["correct"] <= fam["n"]).all()
    assert ((fam["ci_lo"] <= fam["accuracy"]) & (fam["accuracy"] <= fam["ci_hi"])).all()
    base = fam[fam["name"] == "arith_a_baseline"]
    assert base["condition"].iloc[0] == "none"
    lengths = zoo.spec("arith_a_baseline").eval_lengths("reverse_add")
    assert sorted(base["length"]) == lengths


def test_condition_table_counts_transferring_seeds(fam):
    text = family.condition_table(fam, "reverse_add")
    assert "**none** | **0/1 transfer**" in text
    t = family.transfers(fam)
    expect = int(t["arith_a"])
    assert f"**no_carry+carry_only** | **{expect}/1 transfer**" in text
    first = fam[(fam["name"] == "arith_a") & (fam["length"] == 4)]["accuracy"].iloc[0]
    assert t["arith_a"] == (first > family.TRANSFER_THRESHOLD)


def test_cli_zoo_results(tmp_path, capsys):
    assert (
        main(
            [
                "zoo",
                "results",
                "--prefix",
                "arith_a",
                "--examples",
                "16",
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert (tmp_path / "results.parquet").is_file() and (tmp_path / "results.md").is_file()
    assert main(["zoo", "results", "--prefix", "zzz", "--out", str(tmp_path)]) == 2
    assert "no zoo entry starts with" in capsys.readouterr().err


def test_aux_gate(fam):
    gate = family.aux_gate(fam)
    assert list(gate["aux"]) == ["no_carry", "carry_only"] and set(gate["name"]) == {"arith_a"}
    for row in gate.itertuples():
        own = fam[(fam["name"] == "arith_a") & (fam["task"] == row.aux) & (fam["length"] <= 6)]
        assert row.min_acc == own["accuracy"].min()
        assert row.passes == (row.min_acc >= family.AUX_GATE)
    strict = family.aux_gate(fam, gate=1.01)
    assert not strict["passes"].any()


def test_family_names_keep_interventions_out(tmp_path) -> None:  # noqa: ANN001
    """Head-mask intervention entries share the family's prefix but are never pooled into the
    observational family unless asked for; their condition names their masks."""
    from interp.runs.spec import load_spec
    from interp.zoo import family_sweep

    for name in ("r4_both_s0", "r4_main_s0", "r4_disjoint_s0", "r4_shared_s1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    assert family_sweep.family_names("r4_", tmp_path) == ["r4_both_s0", "r4_main_s0"]
    assert family_sweep.family_names("r4_", tmp_path, interventions=True) == [
        "r4_both_s0", "r4_disjoint_s0", "r4_main_s0", "r4_shared_s1",
    ]  # fmt: skip
    from interp.core.resources import zoo_dir

    specs = zoo_dir() / "specs"
    both = zoo.condition(load_spec(specs / "r4_both_s0.toml"))
    disjoint = zoo.condition(load_spec(specs / "r4_disjoint_s0.toml"))
    shared = zoo.condition(load_spec(specs / "r4_shared_s0.toml"))
    assert both == "no_carry+carry_only"
    assert disjoint.startswith(both + " [heads") and "no_carry 2,3" in disjoint
    assert len({both, disjoint, shared}) == 3
