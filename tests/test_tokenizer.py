"""The shared character-level vocabulary: layout, round trips, readable rendering, errors."""

from __future__ import annotations

import pytest
import torch

from interp.core.errors import InterpError
from interp.tasks import get_task, list_tasks
from interp.tasks.vocab import (
    BOS,
    DIGITS,
    EOS,
    NODE_TOKENS,
    PAD,
    TASK_TOKENS,
    VOCAB,
    Vocab,
    join_tokens,
    node_token,
)


def test_special_ids_are_fixed() -> None:
    # Checkpoints depend on stable ids: <pad> must stay 0 and the specials first.
    assert VOCAB.pad_id == 0
    assert VOCAB.tokens[:3] == [PAD, BOS, EOS]
    assert VOCAB.bos_id == 1 and VOCAB.eos_id == 2


def test_layout_is_complete_and_unique() -> None:
    assert len(set(VOCAB.tokens)) == len(VOCAB)
    for group in (DIGITS, TASK_TOKENS, NODE_TOKENS):
        assert all(t in VOCAB for t in group)
    assert len(NODE_TOKENS) == 64
    assert node_token(0) == "n00" and node_token(63) == "n77" and node_token(8 + 3) == "n13"


@pytest.mark.parametrize("name", list_tasks())
def test_round_trip_every_task(name: str) -> None:
    task = get_task(name)
    ex = task.sample(task.min_length + 1, rng=3)
    tokens = [BOS, *ex.prompt, *ex.target]
    ids = VOCAB.encode(tokens)
    assert all(isinstance(i, int) for i in ids)
    assert VOCAB.decode(ids) == tokens
    # Tensors decode like lists.
    assert VOCAB.decode(torch.tensor(ids)) == tokens


def test_round_trip_whole_vocabulary() -> None:
    ids = list(range(len(VOCAB)))
    assert VOCAB.encode(VOCAB.decode(ids)) == ids


def test_unknown_token_raises_interp_error() -> None:
    with pytest.raises(InterpError, match="'#' is not in the vocabulary"):
        VOCAB.encode(["1", "#", "2"])
    with pytest.raises(InterpError, match="not in the vocabulary"):
        VOCAB.encode(["<nope>"])


def test_duplicate_tokens_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        Vocab([PAD, BOS, EOS, "a", "a"])


def test_to_text_spaces_multichar_tokens() -> None:
    ids = VOCAB.encode(["<add>", "8", "5", "+", "7", "6", "=", "5", "2", "1", "<eos>"])
    assert VOCAB.to_text(ids) == "<add> 85+76=521 <eos>"
    assert join_tokens(["n00", "n01", ";"]) == "n00 n01 ;"
    assert join_tokens([]) == ""
