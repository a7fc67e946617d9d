"""Run specs: TOML/JSON loading, presets, n_ctx sizing, validation errors, the lr schedule."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from interp.core.errors import InterpError
from interp.models.architecture import load_preset
from interp.runs.spec import TrainSpec, load_spec
from interp.runs.spec_sections import OptimConfig, TrainConfig
from interp.tasks import get_task
from interp.tasks.batches import encode, eval_examples

TOML = """
name = "arith_a_cpu"
group = "arith_a"
main = "reverse_add"
seed = 3

[[tasks]]
name = "reverse_add"
lengths = [1, 6]

[[tasks]]
name = "no_carry"
lengths = [1, 12]
weight = 2.0

[[tasks]]
name = "carry_only"
lengths = [1, 12]

[model]
preset = "mini"
positional = "nope"

[optim]
lr = 2e-3
betas = [0.9, 0.95]

[train]
steps = 300
batch_size = 64
checkpoint_every = 100
checkpoint_steps = [50]

[eval]
max_length = 14
every = 50
examples = 32
"""


def _base(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": "t",
        "main": "copy",
        "tasks": [{"name": "copy", "lengths": [1, 4]}, {"name": "reverse", "lengths": [1, 8]}],
        "model": {"preset": "tiny"},
    }
    d.update(over)
    return d


def test_load_toml(tmp_path: Path) -> None:
    p = tmp_path / "run.toml"
    p.write_text(TOML)
    spec = load_spec(p)
    assert (spec.name, spec.group, spec.main, spec.seed) == (
        "arith_a_cpu",
        "arith_a",
        "reverse_add",
        3,
    )
    assert spec.task_names == ["reverse_add", "no_carry", "carry_only"]
    assert spec.aux == ["no_carry", "carry_only"]
    assert spec.train_range("no_carry") == (1, 12)
    assert spec.tasks[1].weight == 2.0 and spec.tasks[0].weight == 1.0
    assert spec.optim.lr == 2e-3 and spec.optim.betas == (0.9, 0.95)
    assert spec.train.save_steps() == [50, 100, 200, 300]
    assert spec.eval.every == 50 and spec.eval.examples == 32
    assert spec.eval_lengths("reverse_add") == list(range(1, 15))
    with pytest.raises(InterpError, match="not trained"):
        spec.train_range("copy")


def test_load_json_equals_toml(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(TOML)
    spec = load_spec(tmp_path / "a.toml")
    (tmp_path / "a.json").write_text(json.dumps(spec.to_dict()))
    assert load_spec(tmp_path / "a.json").to_dict() == spec.to_dict()


def test_preset_expansion_and_overrides() -> None:
    spec = TrainSpec.from_dict(_base(model={"preset": "mini", "positional": "learned"}))
    cpu = load_preset("mini")
    m = spec.model
    assert (m.n_layers, m.n_heads, m.d_model) == (cpu["n_layers"], cpu["n_heads"], cpu["d_model"])
    assert m.positional == "learned" and m.norm == cpu["norm"] and m.mlp == cpu["mlp"]
    # The init seed defaults to the run seed unless the model table sets one.
    assert TrainSpec.from_dict(_base(seed=5)).model.init_seed == 5
    spec = TrainSpec.from_dict(_base(seed=5, model={"preset": "tiny", "init_seed": 9}))
    assert spec.model.init_seed == 9
    # No preset: ModelConfig defaults.
    assert TrainSpec.from_dict(_base(model=None)).model.n_layers == 2


def test_unknown_preset() -> None:
    with pytest.raises(InterpError, match="unknown model preset"):
        TrainSpec.from_dict(_base(model={"preset": "gigantic"}))


def test_round_trip_through_dict() -> None:
    spec = TrainSpec.from_dict(_base(optim={"betas": [0.8, 0.9]}, train={"checkpoint_steps": [3]}))
    d = spec.to_dict()
    again = TrainSpec.from_dict(json.loads(json.dumps(d)))
    assert again.to_dict() == d
    assert again.model == spec.model and again.optim == spec.optim


@pytest.mark.parametrize("max_length", [0, 8, 20])
def test_n_ctx_covers_longest_sequence(max_length: int) -> None:
    spec = TrainSpec.from_dict(_base(eval={"max_length": max_length}))
    n_ctx = spec.model.n_ctx
    longest = 0
    for t in spec.tasks:
        lengths = set(spec.eval_lengths(t.name)) | set(range(t.min_length, t.max_length + 1))
        for L in lengths:
            batch = encode(eval_examples(t.name, L, 4), n_ctx=n_ctx)  # must not raise
            longest = max(longest, batch.n_pos)
    assert n_ctx == longest  # sized tightly: <bos> + the longest prompt and target


def test_n_ctx_auto_sizing_covers_worst_case_mazes() -> None:
    spec = TrainSpec.from_dict(
        _base(
            main="shortest_path",
            tasks=[
                {"name": "dfs_trace", "lengths": [2, 6]},
                {"name": "shortest_path", "lengths": [2, 3]},
            ],
        )
    )
    # Maze sequences vary with the tree; the bound is the worst case of the longest length.
    assert spec.model.n_ctx == 1 + get_task("dfs_trace").max_tokens(6)
    for L in range(2, 7):
        encode(eval_examples("dfs_trace", L, 64), n_ctx=spec.model.n_ctx)


def test_explicit_n_ctx_kept_when_large_enough() -> None:
    spec = TrainSpec.from_dict(_base(model={"preset": "tiny", "n_ctx": 100}))
    assert spec.model.n_ctx == 100


def test_n_ctx_too_small() -> None:
    need = TrainSpec.from_dict(_base()).model.n_ctx
    with pytest.raises(InterpError, match=f"n_ctx={need - 1} is too small.*needs {need}"):
        TrainSpec.from_dict(_base(model={"preset": "tiny", "n_ctx": need - 1}))


def test_malformed_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[tasks]\n')
    with pytest.raises(InterpError, match="malformed spec"):
        load_spec(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    with pytest.raises(InterpError, match="malformed spec"):
        load_spec(bad_json)
    with pytest.raises(InterpError, match="not found"):
        load_spec(tmp_path / "missing.toml")


def _task(**over: Any) -> list[dict[str, Any]]:
    return [{"name": "copy", "lengths": [1, 4], **over}]


@pytest.mark.parametrize(
    "d, message",
    [
        (["not", "a", "table"], "table/dict"),
        ({"name": "t", "main": "copy"}, "missing required key 'tasks'"),
        (_base(tasks=[]), "non-empty list"),
        (_base(tasks=[{"name": "copy"}]), "needs 'name' and 'lengths'"),
        (_base(main="reverse_add"), "main task 'reverse_add' is not among"),
        (_base(main="nonsense", tasks=_task(name="nonsense")), "unknown task 'nonsense'"),
        (_base(tasks=_task(lengths=[1, 65])), "outside task 'copy'"),
        (_base(tasks=_task(lengths=[0, 4])), "outside task 'copy'"),
        (_base(tasks=_task(lengths=[4, 1])), "empty"),
        (_base(tasks=_task(lengths=4)), "lengths must be"),
        (_base(tasks=_task(lengths=[1, 2.5])), "lengths must be"),
        (_base(tasks=_task(weight="heavy")), "weight must be a number"),
        (_base(tasks=_task(weight=-1.0)), "weight must be positive"),
        (_base(tasks=_task(colour="red")), "unknown keys \\['colour'\\]"),
        (_base(tasks=_task() + _task()), "listed twice"),
        (_base(epochs=3), "unknown top-level keys \\['epochs'\\]"),
        (_base(train={"stepz": 3}), "unknown keys \\['stepz'\\] in \\[train\\]"),
        (_base(optim={"learning_rate": 1.0}), "in \\[optim\\]"),
        (_base(eval={"lengths": [1]}), "in \\[eval\\]"),
        (_base(model={"preset": "tiny", "layers": 3}), "model config: unknown keys"),
        (_base(model={"preset": "tiny", "n_heads": 3}), "not divisible"),
        (_base(train=[1, 2]), "\\[train\\] must be a table"),
        (_base(train={"steps": "100"}), "steps must be an integer"),
        (_base(train={"steps": 0}), "steps must be in 1..1000000000"),
        (_base(optim={"lr": "fast"}), "lr must be a number"),
        (_base(optim={"betas": [0.9]}), "betas must be a list of 2 numbers"),
        (_base(train={"checkpoint_steps": [1.5]}), "list of integers"),
        (_base(seed="zero"), "seed must be an integer"),
    ],
)
def test_invalid_specs(d: Any, message: str) -> None:
    with pytest.raises(InterpError, match=message):
        TrainSpec.from_dict(d)


def test_lr_schedule_shape() -> None:
    o = OptimConfig(lr=1e-3, warmup_steps=10, decay_fraction=0.25, min_lr_ratio=0.1)
    total = 1000
    lrs = [o.lr_at(s, total) for s in range(total)]
    # Linear warm-up, reaching the peak at the last warm-up step.
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[:10] == pytest.approx([1e-3 * (s + 1) / 10 for s in range(10)])
    # Constant until the last quarter.
    assert all(lr == 1e-3 for lr in lrs[10:750])
    # Cosine decay: monotone, half-way at the middle of the phase, ending at the min ratio.
    decay = lrs[750:]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))
    assert decay[0] == pytest.approx(1e-3)
    assert o.lr_at(875, total) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert decay[-1] == pytest.approx(1e-4, rel=1e-3)
    assert min(lrs) >= 1e-4 * (1 - 1e-9)
    assert o.lr_at(total, total) == pytest.approx(1e-4)  # exactly the floor at the end


def test_lr_schedule_without_warmup_or_decay() -> None:
    o = OptimConfig(lr=0.5, warmup_steps=0, decay_fraction=0.0)
    assert {o.lr_at(s, 100) for s in range(100)} == {0.5}
    cos = OptimConfig(lr=1.0, warmup_steps=0, decay_fraction=1.0, min_lr_ratio=0.0)
    assert cos.lr_at(0, 100) == 1.0
    assert cos.lr_at(50, 100) == pytest.approx(0.5)
    assert cos.lr_at(25, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_save_steps() -> None:
    assert TrainConfig(steps=10).save_steps() == [10]
    assert TrainConfig(steps=10, checkpoint_every=4).save_steps() == [4, 8, 10]
    assert TrainConfig(steps=10, checkpoint_steps=[0, 3, 3, 11]).save_steps() == [3, 10]
