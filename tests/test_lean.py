from __future__ import annotations

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer

import interp.models.fast_forward as lean_module
import interp.scoring.heads as H
from interp.models.architecture import ModelConfig
from interp.models.factory import build_model
from interp.models.fast_forward import LeanStack, lean_ok

ARCHS = [
    {"positional": "rope", "norm": "ln", "mlp": "gelu"},  # the cpu preset's blocks
    {"positional": "rope", "norm": "rms", "mlp": "gated_silu"},
    {"positional": "nope"},
    {"positional": "learned", "norm": "ln", "mlp": "gelu"},
]


def random_model(**arch) -> HookedTransformer:
    cfg = ModelConfig(n_layers=3, n_heads=4, d_model=32, n_ctx=64, **arch)
    model = build_model(cfg).to(torch.float64).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # NoPE's frozen W_pos stays zero
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    return model


@pytest.mark.parametrize("arch", ARCHS)
def test_lean_blocks_equal_the_model_forward(arch):
    model = random_model(**arch)
    assert lean_ok(model)
    lean = LeanStack(model)
    x = torch.randn(5, 19, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x, start_at_layer=1, stop_at_layer=3)
        last = model.blocks[2]
        mid = model(x, start_at_layer=0, stop_at_layer=2)
        xn = last.ln1(mid)
        tail = (mid + last.attn(xn, xn, xn))[:, 7:]
        tail = tail + last.mlp(last.ln2(tail))
        logits = model.unembed(model.ln_final(tail))
        got = lean.run(x, 1, 3)
        got_tail = lean.block(2, lean.run(x, 0, 2), q_start=7)
        got_logits = lean.logits(got_tail)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(got_tail, tail, atol=1e-10, rtol=0)
    torch.testing.assert_close(got_logits, logits, atol=1e-10, rtol=0)
    assert got_tail.shape == (5, 12, 32)


@pytest.mark.parametrize(
    ("field", "value"),
    [("positional_embedding_type", "alibi"), ("positional_embedding_type", "shortformer"),
     ("use_attn_result", True), ("attention_dir", "bidirectional"), ("n_key_value_heads", 2)],
)  # fmt: skip
def test_models_lean_does_not_cover_are_refused(field, value):
    model = random_model()
    assert lean_ok(model)
    setattr(model.cfg, field, value)
    assert not lean_ok(model)


@pytest.mark.parametrize("method", ["mean_ablation", "activation_patching"])
@pytest.mark.parametrize("arch", ARCHS[:2])
def test_score_heads_is_the_same_with_and_without_the_lean_forward(arch, method, monkeypatch):
    model = random_model(**arch)
    batch = H.task_batch(model, "reverse_add", [3], 16)
    lean = H.score_heads(model, batch, method, "logprob", seed=1)
    monkeypatch.setattr(lean_module, "lean_ok", lambda m: False)
    plain = H.score_heads(model, batch, method, "logprob", seed=1)
    np.testing.assert_allclose(lean["score"], plain["score"], atol=1e-9, rtol=0)
    assert lean["score"].abs().max() > 0
