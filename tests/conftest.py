"""Shared pytest setup: every test starts from the same global random state."""

from __future__ import annotations

import os

# Before torch loads, and inherited by every `interp` subprocess a test starts: `make test` runs
# two pytest workers on two cores, where a second intra-op thread per process only contends.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    # Tests use tiny models, which gain nothing from intra-op threads; on a shared 2-core
    # machine thread contention made them up to ~10x slower. Restored after the session.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    # Code under test should take explicit generators; this only makes any stray use of the
    # global generators reproducible, so a failure replays identically.
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def arith_a_model():
    """The zoo's ``arith_a`` model (2 layers x 4 heads), loaded once for every test module."""
    from interp.zoo import registry as zoo

    m, _ = zoo.load("arith_a")
    return m


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory: pytest.TempPathFactory):
    """The seconds-scale demo (``interp demo --quick``), run once per session: a sweep directory
    with a transfer run, its baseline, analysis tables and ``report.html``."""
    from interp.cli.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "out"
    report = run_demo(out, quick=True, workers=2)
    return out, report


def make_tiny_llama(path, seed: int = 0, chars: str | None = None):
    """Save a tiny random ``LlamaForCausalLM`` (2 layers, 4 query heads sharing 2 key/value
    heads) and a character-level tokenizer to ``path``; return ``(hf_model, tokenizer)``.

    The tokenizer is a ``tokenizers`` BPE model with no merges over single characters, so every
    character is one token; ``chars`` restricts the alphabet (for "cannot render" tests).
    """
    import string

    from tokenizers import Tokenizer, decoders
    from tokenizers.models import BPE
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    alphabet = chars if chars is not None else string.digits + string.ascii_letters + "+-*=|;,:"
    vocab = {t: i for i, t in enumerate(specials + list(alphabet))}
    tok = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(specials)
    tok.decoder = decoders.Fuse()  # decode to "9380", not "9 3 8 0"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>",
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            rms_norm_eps=1e-5,
            initializer_range=0.2,  # large enough that the logits are far from uniform
            tie_word_embeddings=True,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=3,
        )
        model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return model, fast


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory):
    """A tiny Llama checkpoint directory (under a path containing "llama", which
    TransformerLens's config conversion would mistake for a model name): ``(path, hf_model)``."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny_llama"
    model, _ = make_tiny_llama(path)
    return path, model
