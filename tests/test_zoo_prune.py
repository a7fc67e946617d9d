"""Pruning an entry's intermediate weights: the entry stays loadable and consistent, and no
measurement is lost (the accuracy of every step moves to ``tables/``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from interp.cli.commands import main
from interp.core.errors import InterpError
from interp.runs.spec import TrainSpec
from interp.runs.train import train
from interp.zoo import registry as zoo
from interp.zoo.pruning import ACCURACY_TABLE, prune


@pytest.fixture()
def entry(tmp_path: Path) -> tuple[Path, str]:
    """A three-checkpoint entry (steps 2, 4, 6) of the string_b recipe, in a zoo under tmp."""
    d = json.loads(json.dumps(zoo.spec("string_b").to_dict()))
    d["train"] = {**d["train"], "steps": 6, "checkpoint_every": 2, "checkpoint_steps": []}
    d["eval"] = {**d["eval"], "every": 0, "examples": 8}
    run = tmp_path / "run"
    train(TrainSpec.from_dict(d), run, progress=False)
    spec_file = tmp_path / "smoke.json"
    spec_file.write_text(json.dumps(d))
    root = tmp_path / "zoo"
    zoo.export_run(run, "smoke", root=root, spec_file=spec_file, n_examples=8)
    return root, "smoke"


def test_prune_keeps_the_final_weights_and_every_measurement(entry):
    root, name = entry
    before = zoo.accuracy(name, -1, root)
    final_model, _ = zoo.load(name, root=root)
    assert zoo.checkpoints(name, root) == [2, 4, 6]
    assert prune(name, root=root) == [2, 4]
    d = zoo.entry_dir(name, root)
    assert zoo.checkpoints(name, root) == [6] == zoo.info(name, root)["steps"]
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == [
        "index.json", "step_000006.safetensors",
    ]  # fmt: skip
    assert set(zoo.accuracy(name, -1, root)["step"]) == {6}
    every = pd.read_parquet(d / "tables" / ACCURACY_TABLE)
    pd.testing.assert_frame_equal(every, before)
    model, _ = zoo.load(name, root=root)
    for k, v in final_model.state_dict().items():
        assert (model.state_dict()[k] == v).all(), k
    card = zoo.card(name, root)
    assert "steps 6\n" in card and "the weights of steps 2, 4" in card
    assert prune(name, root=root) == []  # nothing left to prune


def test_prune_keep_list_and_a_second_prune_keep_the_full_table(entry):
    root, name = entry
    full = zoo.accuracy(name, -1, root)
    assert prune(name, [4, 6], root=root) == [2]
    assert prune(name, [6], root=root) == [4]
    d = zoo.entry_dir(name, root)
    pd.testing.assert_frame_equal(pd.read_parquet(d / "tables" / ACCURACY_TABLE), full)
    assert zoo.info(name, root)["pruned"]["dropped_steps"] == [2, 4]


def test_prune_refuses_steps_it_does_not_store(entry):
    root, name = entry
    with pytest.raises(InterpError, match="no checkpoint at step.* 3; stored: 2, 4, 6"):
        prune(name, [3], root=root)
    assert zoo.checkpoints(name, root) == [2, 4, 6]


def test_prune_cli_bad_input_is_one_line(capsys):
    assert main(["zoo", "prune", "no_such_entry"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no_such_entry" in err and len(err.splitlines()) == 1
    assert main(["zoo", "prune", "arith_a", "--keep", "x"]) == 2
    assert "--keep must look like A,B,C" in capsys.readouterr().err
