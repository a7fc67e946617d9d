"""The package's tasks as text for a pretrained model's own tokenizer.

A model trained from scratch reads the package's character-level vocabulary
(:mod:`interp.tasks.vocab`): one id per task symbol. A pretrained language model has its own
vocabulary, so its fine-tuning data must be written in *its* tokens. :class:`TextVocab` does this
symbol by symbol:

* digits, letters and the separators ``+ - * = | ; ,`` are rendered as themselves;
* a task-identity token ``<add>`` is rendered as the word ``add:`` (the model must still be told
  which task to do, and a word is what a language model reads);
* a maze node ``n34`` is rendered as the text ``n34``;
* ``<bos>``, ``<eos>`` and ``<pad>`` become the tokenizer's own BOS, EOS and padding tokens
  (EOS stands in where one is missing).

Each symbol is tokenized **on its own** and the ids are concatenated, rather than tokenizing the
joined string. A BPE tokenizer would otherwise merge across symbol boundaries (``=5`` or ``12``
as one token) differently from example to example, and the boundary between prompt and answer,
the answer-only loss mask and the position-by-position layout that mean ablation relies on would
all move. A symbol that is a single entry of the tokenizer's vocabulary maps to that entry
directly (so ``5`` is the token ``5``, without the word-initial marker a SentencePiece tokenizer
would add); any other symbol is encoded without special tokens. Tokenizers that split digits
(SmolLM's, Llama's) then give exactly the tokens they would give the whole string.

:class:`TextVocab` has the same encoding interface as :class:`interp.tasks.vocab.Vocab`
(``bos_id``, ``pad_id``, ``eos_id``, ``encode``, ``to_text``), so
:func:`interp.tasks.batches.encode`
builds the same :class:`~interp.tasks.batches.Batch` from it, with the answer mask over the rendered
answer tokens, and training, exact match, head scoring and overlap run on the result unchanged.
:func:`vocab_for` picks the right vocabulary for a model: the package's own, or a
:class:`TextVocab` over ``model.tokenizer`` when the model came from
:mod:`interp.models.pretrained`.

Nothing here imports ``transformers``: a tokenizer is only called through its methods.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from jaxtyping import Int
from torch import Tensor

from interp.core.errors import InterpError
from interp.tasks.vocab import BOS, EOS, PAD, TASK_TOKENS, VOCAB


class TokenEncoder(Protocol):
    """What :func:`interp.tasks.batches.encode` needs from a vocabulary."""

    bos_id: int
    pad_id: int
    eos_id: int

    def encode(self, tokens: Sequence[str]) -> list[int]: ...

    def to_text(self, ids: Sequence[int] | Int[Tensor, " pos"]) -> str: ...


def symbol_text(symbol: str) -> str:
    """The text a task symbol is rendered as (``<add>`` -> ``add:``; others unchanged)."""
    if symbol in TASK_TOKENS:
        return symbol[1:-1] + ":"
    return symbol


class TextVocab:
    """Renders task symbols as the token ids of a Hugging Face tokenizer.

    Args:
        tokenizer: a ``transformers`` tokenizer (``PreTrainedTokenizerBase``).
        name: where the tokenizer came from, for error messages.

    Raises:
        InterpError: if the tokenizer has neither an EOS nor a BOS token.
    """

    def __init__(self, tokenizer: Any, name: str = "the model's tokenizer") -> None:
        self.tokenizer = tokenizer
        self.name = name
        eos, bos, pad = tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id
        if eos is None and bos is None:
            raise InterpError(
                f"{name} has neither an end-of-sequence nor a beginning-of-sequence token; "
                "the task rendering needs one to end answers"
            )
        self.eos_id: int = int(eos if eos is not None else bos)
        self.bos_id: int = int(bos if bos is not None else self.eos_id)
        # Padding sits after every real token and attention is causal, so its id never
        # influences a real position; EOS is a safe stand-in.
        self.pad_id: int = int(pad if pad is not None else self.eos_id)
        self._vocab: dict[str, int] = tokenizer.get_vocab()
        self._unk = tokenizer.unk_token_id
        self._cache: dict[str, list[int]] = {
            BOS: [self.bos_id],
            EOS: [self.eos_id],
            PAD: [self.pad_id],
        }

    def symbol_ids(self, symbol: str) -> list[int]:
        """The token ids of one task symbol (cached)."""
        ids = self._cache.get(symbol)
        if ids is None:
            text = symbol_text(symbol)
            if text in self._vocab:
                ids = [int(self._vocab[text])]
            else:
                ids = [int(i) for i in self.tokenizer.encode(text, add_special_tokens=False)]
            if not ids or (self._unk is not None and self._unk in ids):
                raise InterpError(
                    f"{self.name} cannot write the task symbol {symbol!r} (text {text!r}): "
                    "it becomes the unknown token"
                )
            self._cache[symbol] = ids
        return ids

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Concatenated token ids of a sequence of task symbols."""
        return [i for s in tokens for i in self.symbol_ids(s)]

    def decode(self, ids: Sequence[int] | Int[Tensor, " pos"]) -> list[str]:
        """The tokenizer's token strings for ``ids``."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return list(self.tokenizer.convert_ids_to_tokens([int(i) for i in ids]))

    def to_text(self, ids: Sequence[int] | Int[Tensor, " pos"]) -> str:
        """Readable text of ``ids`` (the tokenizer's decoding, special tokens kept)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return str(self.tokenizer.decode([int(i) for i in ids]))


_TEXT_VOCABS: weakref.WeakKeyDictionary[Any, TextVocab] = weakref.WeakKeyDictionary()


def text_vocab(tokenizer: Any) -> TextVocab:
    """The (cached) :class:`TextVocab` of a tokenizer object."""
    try:
        return _TEXT_VOCABS[tokenizer]
    except KeyError:
        tv = TextVocab(tokenizer, getattr(tokenizer, "name_or_path", "") or "the tokenizer")
        _TEXT_VOCABS[tokenizer] = tv
        return tv
    except TypeError:  # not weak-referenceable: build one each time (cheap)
        return TextVocab(tokenizer)


def vocab_for(model: Any) -> TokenEncoder:
    """The vocabulary a model reads: the package's own, or its pretrained tokenizer's.

    A model from :func:`interp.models.factory.build_model` has no tokenizer (``model.tokenizer`` is
    None) and reads :data:`interp.tasks.vocab.VOCAB`; a model from :mod:`interp.models.pretrained`
    carries its Hugging Face tokenizer there and reads the text rendering.
    """
    tok = getattr(model, "tokenizer", None)
    return VOCAB if tok is None else text_vocab(tok)
