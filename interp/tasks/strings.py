"""String tasks on letters ``a``-``z`` and ``A``-``Z``.

For the four transformations the *length* ``L`` is the number of input characters, each drawn
uniformly from the 52 letters. The prompt is the characters then ``=`` (the task token is
prepended by :class:`~interp.tasks.base.Task`); the target is the ``L`` output characters then
``<eos>``. On the input ``abC``:

=========================  ===================  ==========
task                       prompt               answer
=========================  ===================  ==========
``copy``                   ``<copy> abC=``      ``abC``
``reverse``                ``<rev> abC=``       ``Cba``
``capitalize``             ``<cap> abC=``       ``ABc``    (flip the case of every letter)
``capitalize_reverse``     ``<caprev> abC=``    ``cBA``    (flip the case, then reverse)
=========================  ===================  ==========

``mqar`` (multi-query associative recall): the *length* ``L`` (1..52) is the number of key-value
pairs. The keys are ``L`` distinct letters, each value a uniform letter. The prompt lists the
pairs, then ``|``, then ``L`` queries drawn with replacement from the keys (so a key may be asked
more than once, the paper's "repeated queries"), then ``=``; the answer is the value of each
queried key, in query order::

    <mqar> aXbyCa|Cab=  ->  aXy

(pairs a->X, b->y, C->a; queries C, a, b). Putting the queries in the prompt and the recalled
values in the target makes the paper's "loss only on the answer characters" the same rule as for
every other task: the loss covers the target and nothing else.

``meta`` of ``mqar`` holds ``pairs`` (key -> value) and ``queries`` (the queried keys in order).
"""

from __future__ import annotations

import numpy as np

from interp.tasks.base import Task
from interp.tasks.vocab import LOWER, UPPER

LETTERS: tuple[str, ...] = LOWER + UPPER


def _letters(length: int, rng: np.random.Generator) -> list[str]:
    return [LETTERS[i] for i in rng.integers(0, len(LETTERS), size=length)]


class _StringTask(Task):
    """A per-character transformation of a random letter string."""

    family = "strings"
    min_length = 1
    max_length = 64

    def _sample(self, length: int, rng: np.random.Generator) -> tuple[list[str], list[str], dict]:
        chars = _letters(length, rng)
        return [*chars, "="], self._transform(chars), {"input": "".join(chars)}

    def _transform(self, chars: list[str]) -> list[str]:
        raise NotImplementedError


class Copy(_StringTask):
    """Output the input: ``<copy> abC=`` -> ``abC``."""

    name = "copy"
    token = "<copy>"
    description = "copy the string"

    def _transform(self, chars: list[str]) -> list[str]:
        return list(chars)


class Reverse(_StringTask):
    """Output the input reversed: ``<rev> abC=`` -> ``Cba``."""

    name = "reverse"
    token = "<rev>"
    description = "reverse the string"

    def _transform(self, chars: list[str]) -> list[str]:
        return chars[::-1]


class Capitalize(_StringTask):
    """Flip the case of every letter: ``<cap> abC=`` -> ``ABc``."""

    name = "capitalize"
    token = "<cap>"
    description = "flip the case of every letter"

    def _transform(self, chars: list[str]) -> list[str]:
        return [c.swapcase() for c in chars]


class CapitalizeReverse(_StringTask):
    """Flip the case of every letter, then reverse: ``<caprev> abC=`` -> ``cBA``."""

    name = "capitalize_reverse"
    token = "<caprev>"
    description = "flip the case of every letter and reverse the string"

    def _transform(self, chars: list[str]) -> list[str]:
        return [c.swapcase() for c in reversed(chars)]


class MQAR(Task):
    """Multi-query associative recall: ``<mqar> aXbyCa|Cab=`` -> ``aXy``.

    The length is the number of key-value pairs, which is also the number of queries.
    """

    name = "mqar"
    token = "<mqar>"
    family = "strings"
    min_length = 1
    max_length = len(LETTERS)  # keys are distinct letters
    description = "recall the value of each queried key from a list of key-value pairs"

    def _sample(self, length: int, rng: np.random.Generator) -> tuple[list[str], list[str], dict]:
        keys = [LETTERS[i] for i in rng.choice(len(LETTERS), size=length, replace=False)]
        values = _letters(length, rng)
        queries = [keys[i] for i in rng.integers(0, length, size=length)]
        pairs = dict(zip(keys, values, strict=True))
        prompt = [tok for kv in zip(keys, values, strict=True) for tok in kv]
        prompt += ["|", *queries, "="]
        return prompt, [pairs[q] for q in queries], {"pairs": pairs, "queries": queries}


STRING_TASKS: list[type[Task]] = [Copy, Reverse, Capitalize, CapitalizeReverse, MQAR]
