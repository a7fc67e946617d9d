"""The model factory: architectures, NoPE's frozen positions, configs, context checks, warnings."""

from __future__ import annotations

import itertools
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.core.errors import InterpError
from interp.models.architecture import ModelConfig, hooked_config, list_presets, load_preset
from interp.models.factory import build_model
from interp.runs.spec import TrainSpec
from interp.runs.train import train
from interp.tasks.batches import check_context
from interp.tasks.vocab import VOCAB

TINY = load_preset("tiny")


def _cfg(**kw: object) -> ModelConfig:
    return ModelConfig.from_dict({**TINY, "n_ctx": 24, **kw})


@pytest.mark.parametrize(
    "positional, norm, mlp",
    list(itertools.product(("rope", "nope", "learned"), ("rms", "ln"), ("gated_silu", "gelu"))),
)
def test_build_every_architecture(positional: str, norm: str, mlp: str) -> None:
    cfg = _cfg(positional=positional, norm=norm, mlp=mlp)
    model = build_model(cfg)
    hc = model.cfg
    assert (hc.n_layers, hc.n_heads, hc.d_model, hc.d_head) == (2, 2, 32, 16)
    assert hc.n_ctx == 24 and hc.d_vocab == len(VOCAB) and hc.d_mlp == 128
    assert hc.positional_embedding_type == ("rotary" if positional == "rope" else "standard")
    assert hc.normalization_type == ("RMS" if norm == "rms" else "LN")
    assert hc.gated_mlp == (mlp == "gated_silu")
    assert hc.act_fn == ("silu" if mlp == "gated_silu" else "gelu")
    names = dict(model.named_parameters())
    assert ("blocks.0.mlp.W_gate" in names) == (mlp == "gated_silu")
    assert ("blocks.0.ln1.b" in names) == (norm == "ln")  # RMSNorm has a scale only
    assert ("pos_embed.W_pos" in names) == (positional != "rope")
    tokens = torch.randint(0, len(VOCAB), (3, 24))
    logits = model(tokens)
    assert logits.shape == (3, 24, len(VOCAB))
    assert torch.isfinite(logits).all()


def test_rope_table_covers_n_ctx() -> None:
    model = build_model(_cfg(n_ctx=40))
    assert model.blocks[0].attn.rotary_sin.shape[0] >= 40
    assert model.cfg.rotary_dim == model.cfg.d_head


def test_nope_w_pos_zero_and_frozen() -> None:
    model = build_model(_cfg(positional="nope"))
    assert not model.W_pos.requires_grad
    assert torch.count_nonzero(model.W_pos) == 0
    # Without positions a causal model still sees order through the mask, but the embedding of
    # a token is the same at every position.
    tokens = torch.tensor([[5, 6, 5]])
    _, cache = model.run_with_cache(tokens, names_filter="hook_pos_embed")
    assert torch.count_nonzero(cache["hook_pos_embed"]) == 0


def test_learned_w_pos_trainable() -> None:
    model = build_model(_cfg(positional="learned"))
    assert model.W_pos.requires_grad and torch.count_nonzero(model.W_pos) > 0


def _tiny_spec(positional: str) -> TrainSpec:
    return TrainSpec.from_dict(
        {
            "name": f"tiny_{positional}",
            "main": "copy",
            "tasks": [{"name": "copy", "lengths": [1, 4]}],
            "model": {"preset": "tiny", "positional": positional},
            "optim": {"warmup_steps": 2, "lr": 1e-2},
            "train": {"steps": 6, "batch_size": 8, "log_every": 3, "threads": 1},
            "eval": {"examples": 4, "max_length": 2},
        }
    )


def test_nope_w_pos_stays_zero_through_training(tmp_path: Path) -> None:
    nope = train(_tiny_spec("nope"), tmp_path / "nope", progress=False)
    assert not nope.W_pos.requires_grad
    assert torch.count_nonzero(nope.W_pos) == 0
    # The control: the same loop does move learned positions (and NoPE's other weights).
    fresh = build_model(_tiny_spec("learned").model)
    learned = train(_tiny_spec("learned"), tmp_path / "learned", progress=False)
    assert not torch.equal(learned.W_pos, fresh.W_pos)
    fresh_nope = build_model(_tiny_spec("nope").model)
    assert not torch.equal(nope.W_E, fresh_nope.W_E)


def test_config_round_trip() -> None:
    cfg = _cfg(positional="learned", norm="ln", mlp="gelu", d_mlp=48, init_seed=7)
    d = cfg.to_dict()
    assert ModelConfig.from_dict(d) == cfg
    assert d["d_mlp"] == 48 and build_model(cfg).cfg.d_mlp == 48
    assert ModelConfig.from_dict(dict(d)).to_dict() == d


@pytest.mark.parametrize(
    "override, message",
    [
        ({"n_heads": 3}, "not divisible"),
        ({"positional": "alibi"}, "positional"),
        ({"norm": "batch"}, "norm"),
        ({"mlp": "relu"}, "mlp"),
        ({"n_layers": 0}, "n_layers"),
        ({"d_model": -32}, "d_model"),
        ({"n_ctx": 12.5}, "n_ctx"),
        ({"n_layers": True}, "n_layers"),
        ({"d_model": 12, "n_heads": 4}, "even d_head"),  # d_head 3: RoPE rotates pairs
        ({"colour": "red"}, "unknown keys"),
    ],
)
def test_bad_config_raises(override: dict, message: str) -> None:
    with pytest.raises(InterpError, match=message):
        ModelConfig.from_dict({**TINY, **override})


def test_bad_config_type_errors() -> None:
    with pytest.raises(InterpError, match="table/dict"):
        ModelConfig.from_dict(["n_layers", 2])  # type: ignore[arg-type]
    with pytest.raises(InterpError, match="unknown model preset 'huge'.*tiny"):
        load_preset("huge")
    assert {"tiny", "mini", "cpu", "paper"} <= set(list_presets())


def test_cpu_preset_is_the_zoo_recipe_model() -> None:
    """The `cpu` preset is the model the zoo's family was trained with (issue 9); the 2-layer
    model that used to be `cpu` lives on as `mini`."""
    from interp.core.resources import ZOO_FAMILY
    from interp.runs.spec import load_spec

    spec_file = f"models/zoo/specs/{ZOO_FAMILY}both_s0.toml"
    zoo_spec = load_spec(Path(__file__).parents[1] / spec_file)
    preset = TrainSpec.from_dict(
        {
            "name": "p",
            "main": "reverse_add",
            "tasks": [{"name": "reverse_add", "lengths": [1, 6]}],
            "model": {"preset": "cpu"},
            "eval": {"max_length": 12},
        }  # fmt: skip
    ).model
    keys = ("n_layers", "n_heads", "d_model", "d_mlp", "positional", "norm", "mlp")
    assert {k: getattr(preset, k) for k in keys} == {k: getattr(zoo_spec.model, k) for k in keys}
    mini = ModelConfig.from_dict(load_preset("mini"))
    assert (mini.n_layers, mini.n_heads, mini.d_model) == (2, 4, 64)


def test_check_context() -> None:
    cfg = _cfg()
    model = build_model(cfg)
    check_context(cfg, 24)
    check_context(model, 24)
    for target in (cfg, model):
        with pytest.raises(InterpError, match="25 tokens.*n_ctx=24"):
            check_context(target, 25, "a batch")


def test_build_is_deterministic_in_init_seed() -> None:
    a = build_model(_cfg(init_seed=3))
    torch.manual_seed(123)
    b = build_model(_cfg(init_seed=3))
    c = build_model(_cfg(init_seed=4))
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.W_E, c.W_E)


def test_build_leaves_global_rng_alone() -> None:
    # TransformerLens seeds torch/random/numpy globally when given a seed; the factory must not
    # leak that into the caller's streams.
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    expect = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    build_model(_cfg())
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expect[0]) and got[1:] == expect[1:]


def test_build_hides_transformer_lens_deprecation_only() -> None:
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_model(_cfg())
        # Other warnings, DeprecationWarnings included, still reach the caller afterwards.
        warnings.warn("still visible", UserWarning, stacklevel=1)
        warnings.warn("also visible", DeprecationWarning, stacklevel=1)
    assert not [w for w in caught if "HookedTransformer" in str(w.message)]
    assert [str(w.message) for w in caught] == ["still visible", "also visible"]
    assert warnings.filters == filters_before


def test_transformer_lens_does_warn_without_the_factory() -> None:
    # Guards the test above: if TransformerLens stops warning, the suppression can go.
    from transformer_lens import HookedTransformer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        HookedTransformer(hooked_config(_cfg()), move_to_device=False)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
