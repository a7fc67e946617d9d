"""interp.tasks.encoding: the tasks rendered in a pretrained model's own tokens."""

from __future__ import annotations

import numpy as np
import pytest

from interp.core.errors import InterpError
from interp.tasks import get_task
from interp.tasks.batches import encode, eval_examples
from interp.tasks.encoding import TextVocab, symbol_text, vocab_for
from interp.tasks.vocab import VOCAB

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    from interp.models.pretrained import load_tokenizer

    return load_tokenizer(tiny_llama[0])


def test_symbols_render_as_text(tokenizer):
    v = TextVocab(tokenizer)
    assert symbol_text("<add>") == "add:" and symbol_text("7") == "7"
    assert v.encode(["<add>"]) == tokenizer.encode("add:", add_special_tokens=False)
    assert len(v.encode(["n34"])) == 3  # character-level: n, 3, 4
    assert v.encode(["<eos>"]) == [tokenizer.eos_token_id]
    assert v.bos_id == tokenizer.bos_token_id and v.pad_id == tokenizer.pad_token_id


@pytest.mark.parametrize(
    "task,length", [("reverse_add", 3), ("capitalize_reverse", 4), ("shortest_path", 6)]
)
def test_batches_keep_prompt_answer_boundary(tokenizer, task, length):
    v = TextVocab(tokenizer)
    examples = eval_examples(task, length, 8)
    b = encode(examples, v)
    for i, ex in enumerate(examples):
        p, s = int(b.prompt_len[i]), int(b.seq_len[i])
        assert b.tokens[i, 0] == tokenizer.bos_token_id
        assert b.tokens[i, 1:p].tolist() == v.encode(ex.prompt)
        assert b.tokens[i, p:s].tolist() == v.encode(ex.target)
        assert b.answer_mask[i].nonzero()[:, 0].tolist() == list(range(p, s))
        answer = tokenizer.decode(b.tokens[i, p : s - 1].tolist())
        assert answer == "".join(symbol_text(t) for t in ex.target[:-1])


def test_fixed_layout_per_length(tokenizer):
    # Mean ablation averages position by position within a (task, length) group; symbol-by-
    # symbol rendering keeps every arithmetic example of a length at the same layout.
    v = TextVocab(tokenizer)
    b = encode(get_task("reverse_add").sample_many(5, 16, np.random.default_rng(0)), v)
    assert len(set(b.prompt_len.tolist())) == 1 and len(set(b.seq_len.tolist())) == 1


def test_unrenderable_symbol_is_a_clear_error(tmp_path):
    from conftest import make_tiny_llama

    _, tok = make_tiny_llama(tmp_path / "digits", chars="0123456789+=:")
    v = TextVocab(tok, "digits-only")
    assert v.encode(["1", "+", "2"])
    with pytest.raises(InterpError, match="cannot write the task symbol 'Q'"):
        v.encode(["Q"])


def test_vocab_for_scratch_model_is_the_shared_vocab():
    from interp.models.architecture import ModelConfig
    from interp.models.factory import build_model

    assert vocab_for(build_model(ModelConfig(n_layers=1, d_model=16, n_heads=2))) is VOCAB
