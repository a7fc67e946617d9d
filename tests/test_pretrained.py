"""interp.models.pretrained: local Llama-family checkpoints as HookedTransformers."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig
from interp.models.factory import build_model
from interp.models.pretrained import load, model_config_dict, read_hf_config
from interp.runs.spec import TrainSpec

pytest.importorskip("transformers")


def test_logits_match_hugging_face(tiny_llama):
    path, hf = tiny_llama
    model, tok = load(path)
    assert model.tokenizer is tok
    assert model.cfg.n_key_value_heads == 2  # grouped-query attention survived the mapping
    x = torch.randint(0, hf.config.vocab_size, (4, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(x).logits
        got = model(x)
    assert want.std() > 0.1  # not a near-uniform model, so agreement means something
    assert (got - want).abs().max().item() < 1e-4


def test_factory_builds_pretrained_from_model_config(tiny_llama):
    path, hf = tiny_llama
    cfg = ModelConfig.from_dict(model_config_dict(path))
    assert (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_mlp) == (2, 4, 32, 64)
    assert cfg.d_vocab == hf.config.vocab_size and cfg.n_ctx == 128
    model = build_model(cfg)
    x = torch.arange(10)[None]
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() < 1e-4
    # The recorded architecture is checked against the directory at every load.
    with pytest.raises(InterpError, match="no longer matches"):
        build_model(ModelConfig.from_dict({**cfg.to_dict(), "d_mlp": 128}))


def test_scratch_config_dict_has_no_pretrained_key():
    # Run directories written before the field existed must still resume (exact dict match).
    assert "pretrained" not in ModelConfig().to_dict()


def _spec(model: dict) -> dict:
    return {
        "name": "ft",
        "main": "reverse_add",
        "tasks": [{"name": "reverse_add", "lengths": [1, 3]}],
        "model": model,
        "train": {"steps": 2, "batch_size": 4},
    }


def test_spec_with_pretrained_reads_the_architecture(tiny_llama):
    path, _ = tiny_llama
    spec = TrainSpec.from_dict(_spec({"pretrained": str(path), "n_ctx": 64}))
    assert spec.model.pretrained == str(path) and spec.model.d_model == 32
    assert spec.model.n_ctx == 64
    # config.json round trip: the resolved dict is taken as it is.
    assert TrainSpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()
    with pytest.raises(InterpError, match="takes only n_ctx"):
        TrainSpec.from_dict(_spec({"pretrained": str(path), "d_model": 64}))
    with pytest.raises(InterpError, match="takes only n_ctx"):
        TrainSpec.from_dict(_spec({"pretrained": str(path), "preset": "tiny"}))


def _copy(src, dst, drop=()):
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    return dst


def test_bad_directories(tiny_llama, tmp_path):
    path, _ = tiny_llama
    with pytest.raises(InterpError, match="not found"):
        read_hf_config(tmp_path / "nope")
    with pytest.raises(InterpError, match="no config.json"):
        read_hf_config(tmp_path)
    no_tok = _copy(path, tmp_path / "no_tok", drop=["tokenizer.json"])
    with pytest.raises(InterpError, match="no tokenizer"):
        load(no_tok)
    gpt2 = _copy(path, tmp_path / "gpt2")
    cfg = json.loads((gpt2 / "config.json").read_text())
    cfg.update(architectures=["GPT2LMHeadModel"], model_type="gpt2")
    (gpt2 / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InterpError, match="unsupported architecture GPT2LMHeadModel"):
        load(gpt2)
    pickled = _copy(path, tmp_path / "pickled", drop=["model.safetensors"])
    (pickled / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(InterpError, match="never unpickles"):
        load(pickled)
    broken = _copy(path, tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(InterpError, match="malformed"):
        load(broken)


@pytest.mark.parametrize("case", ["missing", "not_llama", "no_tokenizer"])
def test_cli_bad_checkpoint_one_line_exit_2(case, tiny_llama, tmp_path, capsys):
    from interp.cli.commands import main

    path, _ = tiny_llama
    if case == "missing":
        ckpt = tmp_path / "missing"
    elif case == "not_llama":
        ckpt = _copy(path, tmp_path / "mistral")
        cfg = json.loads((ckpt / "config.json").read_text())
        cfg.update(architectures=["MistralForCausalLM"], model_type="mistral")
        (ckpt / "config.json").write_text(json.dumps(cfg))
    else:
        ckpt = _copy(path, tmp_path / "no_tok", drop=["tokenizer.json"])
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_spec({"pretrained": str(ckpt)})))
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["finetune", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("interp: error: ") and err.count("\n") == 1, err
    assert not out.exists()  # validated before anything was written
