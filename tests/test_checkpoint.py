"""Checkpoints: exact round trips, corruption detection, step lookup, and no pickles anywhere."""

from __future__ import annotations

import json
import pickle
import random
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import interp
from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig, load_preset
from interp.models.checkpoint import (
    CKPT_DIR,
    ckpt_name,
    list_checkpoints,
    load_model_weights,
    load_tensors,
    read_index,
    resolve_step,
    restore_training_state,
    save_checkpoint,
    sha256,
)
from interp.models.factory import build_model
from interp.runs.spec import TrainSpec
from interp.runs.train import answer_loss, make_optimizer
from interp.tasks.batches import MixtureSampler

SPEC = TrainSpec.from_dict(
    {
        "name": "ckpt",
        "main": "copy",
        "tasks": [{"name": "copy", "lengths": [1, 4]}],
        "model": {"preset": "tiny"},
    }
)


def _trained(steps: int = 3) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A tiny model and its AdamW after a few steps, so the optimizer has state."""
    model = build_model(SPEC.model)
    opt = make_optimizer(model, SPEC)
    sampler = MixtureSampler(SPEC.tasks, batch_size=8, seed=0)
    for step in range(steps):
        batch = sampler.batch(step)
        loss = answer_loss(model(batch.tokens), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


def _normalise_groups(groups: list[dict]) -> list[dict]:
    # JSON turns AdamW's betas tuple into a list; the values are what matters.
    return [{**g, "betas": tuple(g["betas"])} for g in groups]


def test_round_trip_weights_optimizer_and_rng(tmp_path: Path) -> None:
    model, opt = _trained()
    torch.manual_seed(11)
    random.seed(11)
    path = save_checkpoint(tmp_path, 3, model, opt, extra={"loss": 1.5})
    assert path == tmp_path / CKPT_DIR / ckpt_name(3) and path.name == "step_000003.safetensors"
    expect_torch = torch.rand(4)
    expect_py = random.random()

    model2 = build_model(ModelConfig.from_dict({**SPEC.model.to_dict(), "init_seed": 1}))
    opt2 = make_optimizer(model2, SPEC)
    assert not torch.equal(model2.W_E, model.W_E)
    tensors, meta = load_tensors(tmp_path, 3)
    assert meta["step"] == "3" and json.loads(meta["extra"]) == {"loss": 1.5}
    load_model_weights(model2, tensors)
    restore_training_state(opt2, tensors, meta)

    sd1, sd2 = model.state_dict(), model2.state_dict()
    assert sd1.keys() == sd2.keys()
    for k in sd1:
        assert torch.equal(sd1[k], sd2[k]), k
    o1, o2 = opt.state_dict(), opt2.state_dict()
    assert o1["state"].keys() == o2["state"].keys() and len(o1["state"]) > 0
    for pid in o1["state"]:
        for key, val in o1["state"][pid].items():
            assert torch.equal(val, o2["state"][pid][key]), (pid, key)
    assert _normalise_groups(o1["param_groups"]) == _normalise_groups(o2["param_groups"])
    # The RNG state is that at save time, not whatever ran in between.
    assert torch.equal(torch.rand(4), expect_torch)
    assert random.random() == expect_py


def test_restored_optimizer_continues_identically(tmp_path: Path) -> None:
    model, opt = _trained(steps=2)
    save_checkpoint(tmp_path, 2, model, opt)
    model2 = build_model(SPEC.model)
    opt2 = make_optimizer(model2, SPEC)
    tensors, meta = load_tensors(tmp_path, 2)
    load_model_weights(model2, tensors)
    restore_training_state(opt2, tensors, meta)
    batch = MixtureSampler(SPEC.tasks, batch_size=8, seed=0).batch(2)
    for m, o in ((model, opt), (model2, opt2)):
        loss = answer_loss(m(batch.tokens), batch)
        o.zero_grad()
        loss.backward()
        o.step()
    for p1, p2 in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_weights_only_and_half(tmp_path: Path) -> None:
    model, _ = _trained(steps=1)
    save_checkpoint(tmp_path, 1, model, half=True)
    path = tmp_path / CKPT_DIR / ckpt_name(1)
    with safe_open(str(path), framework="pt") as f:
        assert f.get_tensor("model.embed.W_E").dtype == torch.float16
        # Buffers (RoPE tables) stay exact: they are not trained and are loaded verbatim.
        assert f.get_tensor("model.blocks.0.attn.rotary_sin").dtype == torch.float32
        assert not any(k.startswith(("optim.", "rng.")) for k in f.keys())
    tensors, meta = load_tensors(tmp_path, 1)
    fresh = build_model(SPEC.model)
    load_model_weights(fresh, tensors)
    assert fresh.W_E.dtype == torch.float32
    assert torch.allclose(fresh.W_E, model.W_E, atol=1e-3)
    assert torch.equal(fresh.blocks[0].attn.rotary_sin, model.blocks[0].attn.rotary_sin)
    with pytest.raises(InterpError, match="weights-only"):
        restore_training_state(make_optimizer(fresh, SPEC), tensors, meta)


def test_mismatched_model_refused(tmp_path: Path) -> None:
    model, _ = _trained(steps=1)
    save_checkpoint(tmp_path, 1, model)
    tensors, _ = load_tensors(tmp_path, 1)
    cfg = dict(load_preset("tiny"), n_ctx=SPEC.model.n_ctx)
    with pytest.raises(InterpError, match="does not match the model config"):
        load_model_weights(build_model(ModelConfig.from_dict({**cfg, "n_layers": 3})), tensors)
    with pytest.raises(InterpError, match="has shape"):
        load_model_weights(build_model(ModelConfig.from_dict({**cfg, "d_mlp": 64})), tensors)


def _saved(tmp_path: Path, steps: tuple[int, ...] = (2, 4)) -> Path:
    model, opt = _trained(steps=1)
    for s in steps:
        save_checkpoint(tmp_path, s, model, opt)
    return tmp_path / CKPT_DIR / ckpt_name(steps[-1])


def test_index_and_atomic_writes(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    index = read_index(tmp_path)
    assert sorted(index) == ["2", "4"]
    assert index["4"] == {"file": path.name, "sha256": sha256(path)}
    assert list_checkpoints(tmp_path) == [2, 4]
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "append"])
def test_corrupt_file_detected(tmp_path: Path, damage: str) -> None:
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) - 100] ^= 0xFF  # inside the tensor data: only the hash can tell
    else:
        data += b"\0"
    path.write_bytes(bytes(data))
    with pytest.raises(InterpError, match="corrupt checkpoint"):
        load_tensors(tmp_path, 4)
    load_tensors(tmp_path, 2)  # the other checkpoint is unaffected


def test_unreadable_file_with_matching_hash_is_corrupt(tmp_path: Path) -> None:
    # A garbage file whose hash was (wrongly) recorded must still fail readably.
    path = _saved(tmp_path)
    path.write_bytes(b"not a safetensors file at all")
    index = read_index(tmp_path)
    index["4"]["sha256"] = sha256(path)
    (tmp_path / CKPT_DIR / "index.json").write_text(json.dumps(index))
    with pytest.raises(InterpError, match="corrupt checkpoint"):
        load_tensors(tmp_path, 4)


def test_missing_step_lists_available(tmp_path: Path) -> None:
    _saved(tmp_path)
    with pytest.raises(InterpError, match="no checkpoint at step 3 .*available steps: 2, 4"):
        load_tensors(tmp_path, 3)
    with pytest.raises(InterpError, match="available steps: 2, 4"):
        resolve_step(tmp_path, 7)
    assert resolve_step(tmp_path, None) == 4 and resolve_step(tmp_path, 2) == 2


def test_missing_file_and_empty_run(tmp_path: Path) -> None:
    with pytest.raises(InterpError, match="no checkpoints"):
        resolve_step(tmp_path, None)
    assert list_checkpoints(tmp_path) == []
    path = _saved(tmp_path)
    path.unlink()
    with pytest.raises(InterpError, match="checkpoint file missing"):
        load_tensors(tmp_path, 4)
    (tmp_path / CKPT_DIR / "index.json").write_text("{broken")
    with pytest.raises(InterpError, match="malformed JSON"):
        list_checkpoints(tmp_path)


def test_no_pickle_during_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle-based loading used")

    for mod, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(mod, name, forbidden)
    for mod, name in ((torch, "save"), (pickle, "dump"), (pickle, "dumps")):
        monkeypatch.setattr(mod, name, forbidden)
    model, opt = _trained(steps=1)
    save_checkpoint(tmp_path, 1, model, opt)
    tensors, meta = load_tensors(tmp_path, 1)
    load_model_weights(model, tensors)
    restore_training_state(opt, tensors, meta)


def test_package_source_never_uses_pickle() -> None:
    pattern = re.compile(r"torch\.load|torch\.save|\bimport pickle|\bpickle\.|cloudpickle|dill")
    root = Path(interp.__file__).parent
    offenders = [
        f"{p.relative_to(root)}:{i}"
        for p in sorted(root.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []
