"""One character-level vocabulary shared by every task.

The paper trains character-level models, and jointly trained tasks must share one embedding
table, so the vocabulary is fixed and global rather than built per task. Its layout:

* special tokens ``<pad>`` (id 0), ``<bos>``, ``<eos>``;
* the digits ``0``-``9``;
* the letters ``a``-``z`` and ``A``-``Z``;
* separators and operators ``+ - * = | ; ,``;
* one task-identity token per task (``<add>``, ``<rev>``, ...), needed because several tasks share
  an input format (reverse add, no carry and carry only all read ``a+b=``);
* 64 maze-node tokens ``n00`` .. ``n77`` (row, column on the 8x8 grid), one token per node as in
  the paper.

Token ids are stable: new tokens may only be appended, so saved checkpoints stay valid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from interp.core.errors import InterpError

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS)
DIGITS: tuple[str, ...] = tuple("0123456789")
LOWER: tuple[str, ...] = tuple("abcdefghijklmnopqrstuvwxyz")
UPPER: tuple[str, ...] = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
SYMBOLS: tuple[str, ...] = ("+", "-", "*", "=", "|", ";", ",")
TASK_TOKENS: tuple[str, ...] = (
    "<add>",
    "<nocarry>",
    "<carry>",
    "<sub>",
    "<mul>",
    "<copyop>",
    "<copy>",
    "<rev>",
    "<cap>",
    "<caprev>",
    "<mqar>",
    "<sp>",
    "<dfs>",
)
GRID_SIZE = 8
NODE_TOKENS: tuple[str, ...] = tuple(f"n{r}{c}" for r in range(GRID_SIZE) for c in range(GRID_SIZE))


def node_token(node: int) -> str:
    """Token for maze node ``node`` (``row * 8 + col``)."""
    return NODE_TOKENS[node]


class Vocab:
    """Bidirectional token <-> id map.

    Args:
        tokens: the ordered token list; defaults to the package's shared vocabulary.
    """

    def __init__(self, tokens: Sequence[str] | None = None) -> None:
        if tokens is None:
            tokens = SPECIAL_TOKENS + DIGITS + LOWER + UPPER + SYMBOLS + TASK_TOKENS + NODE_TOKENS
        self.tokens: list[str] = list(tokens)
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id = self.index[PAD]
        self.bos_id = self.index[BOS]
        self.eos_id = self.index[EOS]

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Map tokens to ids, raising :class:`InterpError` on a token outside the vocabulary."""
        try:
            return [self.index[t] for t in tokens]
        except KeyError as e:
            raise InterpError(f"token {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Sequence[int] | Int[Tensor, " pos"]) -> list[str]:
        """Map ids back to tokens."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return [self.tokens[i] for i in ids]

    def to_text(self, ids: Sequence[int] | Int[Tensor, " pos"]) -> str:
        """Readable string: single characters are joined, longer tokens are spaced out."""
        return join_tokens(self.decode(ids))


def join_tokens(tokens: Sequence[str]) -> str:
    """Join tokens readably: multi-character tokens (``<eos>``, ``n34``) get spaces around them."""
    out: list[str] = []
    for t in tokens:
        if len(t) > 1 and out and out[-1] != " ":
            out.append(" ")
        out.append(t)
        if len(t) > 1:
            out.append(" ")
    return "".join(out).strip().replace("  ", " ")


VOCAB = Vocab()
"""The shared vocabulary instance used throughout the package."""
