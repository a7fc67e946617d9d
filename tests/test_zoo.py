"""The model zoo: entries load, their specs still train, their stored accuracy is reproducible."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch

from interp.cli.commands import main
from interp.core.errors import InterpError
from interp.core.resources import ZOO_FAMILY
from interp.models.checkpoint import list_checkpoints
from interp.runs.spec import TrainSpec
from interp.runs.train import is_done, train
from interp.zoo import registry as zoo

ENTRIES = zoo.names()


def _one_per_condition(names: list[str]) -> list[str]:
    """Every entry outside a family, and the lowest seed of each family condition: the family's
    entries come from one export code path, so re-evaluating one per condition checks it while
    the suite's time stays flat as the family grows (each entry's files are checked for all)."""
    best: dict[object, tuple[int, str]] = {}
    for n in names:
        m = re.match(r"^(?P<prefix>.+?)_(?P<condition>[a-z0-9]+)_s(?P<seed>\d+)$", n)
        key, seed = ((m["prefix"], m["condition"]), int(m["seed"])) if m else (n, 0)
        best[key] = min(best.get(key, (seed, n)), (seed, n))
    return sorted(n for _, n in best.values())


EVALUATED = _one_per_condition(ENTRIES)
# The entry retrained in the smoke test: the string group trains fastest.
SMOKE = "string_b"


def _spec_dict(name: str) -> dict:
    return tomllib.loads(zoo.spec_path(name).read_text())


def _assert_same_accuracy(stored: pd.DataFrame, fresh: pd.DataFrame) -> None:
    cols = ["step", "task", "length", "accuracy", "n"]
    a = stored[cols].sort_values(["task", "length"]).reset_index(drop=True)
    b = fresh[cols].sort_values(["task", "length"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # logprob is a float mean: equal up to summation order across thread counts.
    lp_a = stored.sort_values(["task", "length"])["logprob"].to_numpy()
    lp_b = fresh.sort_values(["task", "length"])["logprob"].to_numpy()
    assert lp_a == pytest.approx(lp_b, rel=1e-5, abs=1e-6)


def test_zoo_has_the_required_entries():
    assert {"arith_a", "arith_a_baseline", "string_b"} <= set(ENTRIES)
    df = zoo.list_models()
    assert list(df.columns) == zoo.LIST_COLUMNS
    assert list(df["name"]) == ENTRIES
    row = df.set_index("name").loc["arith_a"]
    assert row["main"] == "reverse_add" and row["aux"] == "no_carry,carry_only"
    assert df.set_index("name").loc["arith_a_baseline", "aux"] == ""
    for name, steps in zip(df["name"], df["steps"], strict=True):
        assert steps == zoo.checkpoints(name) and steps, name
    # intermediate checkpoints for the over-training analysis
    assert len(zoo.checkpoints("arith_a")) >= 5 and len(zoo.checkpoints("string_b")) >= 5


@pytest.mark.parametrize("name", ENTRIES)
def test_entry_files_and_spec_provenance(name):
    d = zoo.entry_dir(name)
    for f in ("config.json", "metrics.parquet", "accuracy.parquet", "card.md", "zoo.json"):
        assert (d / f).is_file(), f
    # the spec beside the entry is the one in models/zoo/specs and resolves to config.json
    assert zoo.spec_path(name).read_text() == (zoo.SPEC_DIR / f"{name}.toml").read_text()
    assert TrainSpec.from_dict(_spec_dict(name)).to_dict() == zoo.spec(name).to_dict()
    info = zoo.info(name)
    assert info["steps"] == zoo.checkpoints(name)
    assert info["accuracy"]["n_examples"] >= 64
    assert set(zoo.accuracy(name, -1)["step"]) == set(info["steps"])


@pytest.mark.parametrize("name", ENTRIES)
def test_load_returns_the_stored_fp16_model(name):
    model, cfg = zoo.load(name)
    assert cfg == zoo.spec(name).model
    assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_model, model.cfg.n_ctx) == (
        cfg.n_layers,
        cfg.n_heads,
        cfg.d_model,
        cfg.n_ctx,
    )
    assert not model.training
    for pname, p in model.named_parameters():
        assert torch.equal(p, p.half().float()), f"{pname} is not float16-exact"
    first = zoo.checkpoints(name)[0]
    early, _ = zoo.load(name, checkpoint=first)
    if first != zoo.checkpoints(name)[-1]:
        assert not torch.equal(early.W_E, model.W_E)


def _check_lengths(s: TrainSpec) -> dict[str, list[int]]:
    """A few lengths per task that matter: the shortest, the main task's last training length,
    the first transfer length and the longest evaluated. Evaluation sets are fixed per (task,
    length), so a subset reproduces the stored rows exactly at a fraction of the cost (the
    4-layer family has 15 entries)."""
    main_hi = s.train_range(s.main)[1]
    out = {}
    for t in s.task_names:
        ls = s.eval_lengths(t)
        out[t] = sorted({ls[0], min(main_hi, ls[-1]), min(main_hi + 1, ls[-1]), ls[-1]})
    return out


@pytest.mark.parametrize("name", EVALUATED)
def test_stored_accuracy_matches_a_fresh_evaluation(name):
    from interp.scoring.evaluate import accuracy_table

    info = zoo.info(name)
    model, _ = zoo.load(name)
    lengths = _check_lengths(zoo.spec(name))
    fresh = accuracy_table(
        model,
        zoo.spec(name).task_names,
        lengths,
        n_examples=info["accuracy"]["n_examples"],
        seed=info["accuracy"]["seed"],
        step=info["final_step"],
    )
    stored = zoo.accuracy(name)
    keep = pd.concat(
        [stored[(stored["task"] == t) & stored["length"].isin(ls)] for t, ls in lengths.items()]
    )
    assert len(keep) == len(fresh)
    _assert_same_accuracy(keep, fresh)


def test_list_models_transfer_columns():
    df = zoo.list_models().set_index("name")
    row = df.loc["arith_a"]
    assert row["condition"] == "no_carry+carry_only" and row["seed"] == 0
    assert row["transfer_range"] == "4-6"
    acc = zoo.accuracy("arith_a")
    expect = acc[(acc["task"] == "reverse_add") & acc["length"].between(4, 6)]["accuracy"].mean()
    assert row["transfer_acc"] == pytest.approx(expect)
    assert df.loc["arith_a_baseline", "condition"] == "none"


def test_cli_zoo_train_unknown_name(capsys):
    assert main(["zoo", "train", "no_such_entry"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("interp: error: no zoo spec") and f"{ZOO_FAMILY}both_s0" in err


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(InterpError, match="unknown zoo model 'nope'") as e:
        zoo.load("nope")
    for n in ENTRIES:
        assert n in str(e.value)
    with pytest.raises(InterpError, match="available"):
        zoo.spec("nope")


def test_missing_step_lists_the_stored_ones():
    steps = zoo.checkpoints(SMOKE)
    with pytest.raises(InterpError, match="no checkpoint at step 7") as e:
        zoo.load(SMOKE, checkpoint=7)
    assert ", ".join(map(str, steps)) in str(e.value)
    with pytest.raises(InterpError, match="available steps"):
        zoo.accuracy(SMOKE, checkpoint=7)


def test_cli_zoo_list(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for n in ENTRIES:
        assert n in out
    assert main(["zoo"]) == 0  # "list" is the default


def test_cli_zoo_export_errors(capsys, tmp_path):
    assert main(["zoo", "export"]) == 2
    assert "usage" in capsys.readouterr().err
    assert main(["zoo", "export", str(tmp_path / "missing"), "x"]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert main(["zoo", "export", str(tmp_path), "x", "--steps", "a,b"]) == 2


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, dict]:
    """The smoke entry's own spec, retrained for 5 steps."""
    d = _spec_dict(SMOKE)
    d["train"] = {**d["train"], "steps": 5, "checkpoint_every": 0}
    d["eval"] = {**d["eval"], "every": 0, "examples": 8}
    run = tmp_path_factory.mktemp("zoo") / "run"
    train(TrainSpec.from_dict(d), run, progress=False)
    return run, d


def test_zoo_spec_still_trains(smoke_run):
    run, d = smoke_run
    assert is_done(run) and list_checkpoints(run) == [5]
    original = zoo.spec(SMOKE)
    retrained = TrainSpec.from_dict(d)
    assert retrained.model == original.model and retrained.tasks == original.tasks


def test_export_round_trip(smoke_run, tmp_path):
    run, d = smoke_run
    spec_file = tmp_path / "smoke.json"
    spec_file.write_text(json.dumps(d))
    root = tmp_path / "zoo"
    path = zoo.export_run(
        run, "smoke", root=root, spec_file=spec_file, n_examples=8, notes="five steps only"
    )
    assert path == root / "smoke" and zoo.names(root) == ["smoke"]
    assert "## Notes\n\nfive steps only" in zoo.card("smoke", root)
    assert (path / "spec.json").read_text() == spec_file.read_text()
    listed = zoo.list_models(root)
    assert listed.loc[0, "steps"] == [5] and listed.loc[0, "main"] == d["main"]
    assert "capitalize_reverse" in zoo.card("smoke", root)
    model, cfg = zoo.load("smoke", root=root)
    assert cfg == TrainSpec.from_dict(d).model
    fresh = zoo.evaluate(model, zoo.spec("smoke", root), n_examples=8, step=5)
    _assert_same_accuracy(zoo.accuracy("smoke", root=root), fresh)
    assert (zoo.accuracy("smoke", root=root)["n"] == 8).all()
    # re-export replaces the entry; refusing to overwrite is an error
    zoo.export_run(run, "smoke", root=root, spec_file=spec_file, n_examples=8)
    assert zoo.names(root) == ["smoke"] and not list(root.glob(".smoke*"))
    with pytest.raises(InterpError, match="already exists"):
        zoo.export_run(run, "smoke", root=root, spec_file=spec_file, overwrite=False)


def test_export_rejects_bad_input(smoke_run, tmp_path):
    run, d = smoke_run
    spec_file = tmp_path / "smoke.json"
    spec_file.write_text(json.dumps(d))
    root = tmp_path / "zoo"
    with pytest.raises(InterpError, match="zoo name"):
        zoo.export_run(run, "Bad Name", root=root, spec_file=spec_file)
    with pytest.raises(InterpError, match="available steps: 5"):
        zoo.export_run(run, "smoke", [3], root=root, spec_file=spec_file)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**d, "seed": 1}))
    with pytest.raises(InterpError, match="does not resolve"):
        zoo.export_run(run, "smoke", root=root, spec_file=other)
    with pytest.raises(InterpError, match="spec file not found"):
        zoo.export_run(run, "smoke", root=root, spec_file=tmp_path / "none.toml")
    (run / "DONE").rename(run / "DONE.bak")
    try:
        with pytest.raises(InterpError, match="not a finished run"):
            zoo.export_run(run, "smoke", root=root, spec_file=spec_file)
    finally:
        (run / "DONE.bak").rename(run / "DONE")
    assert zoo.names(root) == []
    assert zoo.list_models(root).empty
    with pytest.raises(InterpError, match="the zoo is empty"):
        zoo.load("smoke", root=root)


def test_train_entry_trains_and_exports(smoke_run, tmp_path, monkeypatch):
    _, d = smoke_run
    specs = tmp_path / "specs"
    specs.mkdir()
    d = {**d, "name": "tiny_entry"}
    lines = ['name = "tiny_entry"', f'group = "{d["group"]}"', f'main = "{d["main"]}"']
    lines.append(f"seed = {d.get('seed', 0)}")
    for t in d["tasks"]:
        lines += ["[[tasks]]", f'name = "{t["name"]}"', f"lengths = {list(t['lengths'])}"]
    for section in ("model", "optim", "train", "eval"):
        lines.append(f"[{section}]")
        for k, v in d.get(section, {}).items():
            lines.append(f"{k} = {json.dumps(v)}")
    (specs / "tiny_entry.toml").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(zoo, "SPEC_DIR", specs)
    root = tmp_path / "zoo"
    kw = {"export": True, "n_examples": 8, "progress": False, "root": root}
    entry = zoo.train_entry("tiny_entry", tmp_path / "run", **kw)
    assert entry == root / "tiny_entry" and zoo.names(root) == ["tiny_entry"]
    assert zoo.checkpoints("tiny_entry", root) == [5]
    # a second call resumes the finished run (no retraining) and re-exports identically
    again = zoo.train_entry("tiny_entry", tmp_path / "run", **kw)
    assert again == entry


# --------------------------------------------------------------------------------------------
# Issue 26: one damaged entry is listed as damaged; the others still list


def _wrong_columns(path: Path) -> None:
    pd.DataFrame({"a": [1]}).to_parquet(path)


DAMAGE = [
    ("accuracy.parquet", b"junk"),
    ("accuracy.parquet", _wrong_columns),
    ("zoo.json", b"[1, 2]"),
    ("zoo.json", b"{half"),
    ("config.json", b"[]"),
    ("config.json", b'{"name": "x"}'),
    ("checkpoints/index.json", b"{}{"),
    ("checkpoints/index.json", b'{"5": 1}'),
]


@pytest.mark.parametrize("target, damage", DAMAGE, ids=[f"{t}-{i}" for i, (t, _) in
                                                         enumerate(DAMAGE)])  # fmt: skip
def test_zoo_list_names_a_corrupt_entry_and_lists_the_others(target, damage, tmp_path, monkeypatch,
                                                             capsys):  # fmt: skip
    import shutil

    root = tmp_path / "zoo"
    for n in ("arith_a", "string_b"):
        shutil.copytree(zoo.ZOO_DIR / n, root / n)
    path = root / "arith_a" / target
    damage(path) if callable(damage) else path.write_bytes(damage)
    listed = zoo.list_models(root).set_index("name")
    assert listed.loc["arith_a", "problem"] and listed.loc["string_b", "problem"] == ""
    good = zoo.list_models(zoo.ZOO_DIR).set_index("name").loc["string_b", "transfer_acc"]
    assert listed.loc["string_b", "transfer_acc"] == good
    monkeypatch.setattr(zoo, "ZOO_DIR", root)
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("arith_a: corrupt: ") for line in out), out
    assert any(line.split()[0] == "string_b" for line in out), out


@pytest.mark.parametrize("name", ["../../../../specs/good", "/etc/passwd", "..", "a/b", "A", ""])
def test_zoo_names_are_never_paths(name, tmp_path):
    with pytest.raises(InterpError, match="zoo name must be"):
        zoo.train_entry(name, tmp_path / "out")
    with pytest.raises(InterpError):
        zoo.load(name)
    assert not (tmp_path / "out").exists()


def test_models_folder_stays_within_130_mb():
    """Issue 21: the zoo ships final float16 weights and per-checkpoint tables for every family
    run, dense checkpoints for at most a few; ``models/`` stays within 130 MB (10**6 bytes)."""
    root = zoo.ZOO_DIR.parent
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total <= 130 * 10**6, f"models/ holds {total / 1e6:.1f} MB"
