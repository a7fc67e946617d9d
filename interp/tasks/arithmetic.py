"""Arithmetic tasks on numbers written least-significant digit first ("reversed").

The paper writes operands and results LSB first, so that the model emits the answer in the order
a carry propagates. Every task here reads two operands; the *length* ``L`` is the number of digits
of each operand, and both operands have exactly ``L`` digits (the leading digit is nonzero when
``L > 1``, so ``L`` really is the operand's length). The one exception is ``mul3_cot``, whose second
operand always has exactly three digits.

Prompt layout (the task token, e.g. ``<add>``, is prepended by :class:`~interp.tasks.base.Task`)::

    a_0 a_1 ... a_{L-1}  op  b_0 b_1 ... b_{L-1}  =

where ``a_i`` is the digit of ``a`` worth ``10**i`` and ``op`` is ``+`` (reverse add, no carry,
carry only, copy-first-op), ``-`` (reverse subtract) or ``*`` (multiply). The target is the answer
digits LSB first followed by ``<eos>``. Answers are zero-padded to a width fixed by ``L``, so every
example of one task and length has the same number of tokens.

The tasks, on the paper's example ``58 + 67`` (prompt ``<add> 85+76=``):

=================  ==========  =====================================================================
task               answer      definition
=================  ==========  =====================================================================
``reverse_add``    ``521``     ``a + b`` in ``L + 1`` digits
``no_carry``       ``510``     digit ``i < L`` is ``(a_i + b_i) mod 10``; digit ``L`` is ``0``
``carry_only``     ``011``     digit ``i`` is the carry entering position ``i`` (digit 0 is always
                               ``0``, digit ``L`` is the final carry out)
``copy_first_op``  ``85``      the first operand's ``L`` digits
=================  ==========  =====================================================================

so ``no_carry + carry_only`` equals ``reverse_add`` digit by digit, mod 10, which is what makes
them the paper's auxiliary pair for addition.

``reverse_sub``: two ``L``-digit numbers are drawn and swapped if needed so that ``a >= b``; the
answer is ``a - b`` in ``L`` digits, e.g. ``<sub> 76-85=`` -> ``90`` (67 - 58 = 9).

``mul3_cot`` ("n x 3" with chain of thought): ``a`` has ``L`` digits and ``b`` is in 100..999. The
answer shows the three partial products ``a*b_0``, ``a*b_1*10``, ``a*b_2*100``, each LSB first in
``L + 3`` digits and separated by ``+``, then ``;``, then the product ``a*b`` in ``L + 3`` digits.
For ``58 * 123`` (prompt ``<mul> 85*321=``)::

    47100+06110+00850;43170

(174 + 1160 + 5800 = 7134). The answer always has ``4 * (L + 3) + 3`` tokens.

``meta`` holds the operands ``a`` and ``b`` as ints and ``result``, the answer read back as an
int (for ``mul3_cot`` the product, plus the list ``partials``).
"""

from __future__ import annotations

import numpy as np

from interp.tasks.base import Task
from interp.tasks.vocab import DIGITS


def _operand(length: int, rng: np.random.Generator) -> list[int]:
    """Digits (LSB first) of a uniform ``length``-digit number; 0..9 when ``length == 1``."""
    digits = rng.integers(0, 10, size=length)
    if length > 1:
        digits[-1] = rng.integers(1, 10)
    return [int(d) for d in digits]


def _to_int(digits: list[int]) -> int:
    return int("".join(DIGITS[d] for d in reversed(digits)))


def _lsb_tokens(value: int, width: int) -> list[str]:
    """``value`` as ``width`` digit tokens, LSB first, zero-padded."""
    return list(str(value).zfill(width)[::-1])


class TwoOperandTask(Task):
    """Shared prompt construction: ``a op b =`` with both operands LSB first."""

    family = "arithmetic"
    min_length = 1
    max_length = 256
    op = "+"

    def _operands(self, length: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        return _operand(length, rng), _operand(length, rng)

    def _sample(self, length: int, rng: np.random.Generator) -> tuple[list[str], list[str], dict]:
        a_digits, b_digits = self._operands(length, rng)
        prompt = [
            *(DIGITS[d] for d in a_digits),
            self.op,
            *(DIGITS[d] for d in b_digits),
            "=",
        ]
        answer, meta = self._answer(a_digits, b_digits, length)
        return prompt, answer, meta

    def _answer(
        self, a_digits: list[int], b_digits: list[int], length: int
    ) -> tuple[list[str], dict]:
        raise NotImplementedError


class ReverseAdd(TwoOperandTask):
    """``a + b``, LSB first, in ``L + 1`` digits: ``<add> 85+76=`` -> ``521``."""

    name = "reverse_add"
    token = "<add>"
    description = "sum of two L-digit numbers, LSB first"

    def _answer(
        self, a_digits: list[int], b_digits: list[int], length: int
    ) -> tuple[list[str], dict]:
        a, b = _to_int(a_digits), _to_int(b_digits)
        return _lsb_tokens(a + b, length + 1), {"a": a, "b": b, "result": a + b}


class NoCarry(TwoOperandTask):
    """Digit-wise ``(a_i + b_i) mod 10`` plus a final ``0``: ``<nocarry> 85+76=`` -> ``510``."""

    name = "no_carry"
    token = "<nocarry>"
    description = "digit-wise sum mod 10 (carries dropped), LSB first"

    def _answer(
        self, a_digits: list[int], b_digits: list[int], length: int
    ) -> tuple[list[str], dict]:
        # The trailing 0 keeps the width at L + 1 so the answer aligns digit by digit with
        # reverse_add's (the paper's "no carry + carry only = reverse add").
        digits = [(x + y) % 10 for x, y in zip(a_digits, b_digits, strict=True)] + [0]
        meta = {"a": _to_int(a_digits), "b": _to_int(b_digits), "result": _to_int(digits)}
        return [DIGITS[d] for d in digits], meta


class CarryOnly(TwoOperandTask):
    """The carry entering each position, ``L + 1`` digits: ``<carry> 85+76=`` -> ``011``."""

    name = "carry_only"
    token = "<carry>"
    description = "carry bit entering each position of the sum, LSB first"

    def _answer(
        self, a_digits: list[int], b_digits: list[int], length: int
    ) -> tuple[list[str], dict]:
        carries = [0]
        for x, y in zip(a_digits, b_digits, strict=True):
            carries.append(int(x + y + carries[-1] >= 10))
        meta = {"a": _to_int(a_digits), "b": _to_int(b_digits), "result": _to_int(carries)}
        return [DIGITS[c] for c in carries], meta


class CopyFirstOp(TwoOperandTask):
    """The first operand, unchanged (control task): ``<copyop> 85+76=`` -> ``85``."""

    name = "copy_first_op"
    token = "<copyop>"
    description = "copy the first operand (unrelated control for reverse add)"

    def _answer(
        self, a_digits: list[int], b_digits: list[int], length: int
    ) -> tuple[list[str], dict]:
        a = _to_int(a_digits)
        return [DIGITS[d] for d in a_digits], {"a": a, "b": _to_int(b_digits), "result": a}


class ReverseSub(TwoOperandTask):
    """``a - b`` with ``a >= b``, LSB first, in ``L`` digits: ``<sub> 76-85=`` -> ``90``."""

    name = "reverse_sub"
    token = "<sub>"
    op = "-"
    description = "difference of two L-digit numbers (larger first), LSB first"

    def _operands(self, length: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        a_digits, b_digits = _operand(length, rng), _operand(length, rng)
        # Swapping keeps the answer non-negative without needing a sign token.
        if _to_int(a_digits) < _to_int(b_digits):
            a_digits, b_digits = b_digits, a_digits
        return a_digits, b_digits

    def _answer(
        self, a_digits: list[int], b_digits: list[int], length: int
    ) -> tuple[list[str], dict]:
        a, b = _to_int(a_digits), _to_int(b_digits)
        return _lsb_tokens(a - b, length), {"a": a, "b": b, "result": a - b}


class Mul3CoT(TwoOperandTask):
    """``a * b`` for a 3-digit ``b`` with the partial products as chain of thought.

    ``<mul> 85*321=`` -> ``47100+06110+00850;43170`` (58 * 123 = 7134).
    """

    name = "mul3_cot"
    token = "<mul>"
    op = "*"
    max_length = 64
    description = "L-digit times 3-digit product, partial products first, LSB first"

    def _operands(self, length: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        return _operand(length, rng), _operand(3, rng)

    def _answer(
        self, a_digits: list[int], b_digits: list[int], length: int
    ) -> tuple[list[str], dict]:
        a, b = _to_int(a_digits), _to_int(b_digits)
        # a < 10**L and b < 1000, so every partial product and the product fit in L + 3 digits.
        width = length + 3
        partials = [a * d * 10**i for i, d in enumerate(b_digits)]
        answer: list[str] = []
        for i, p in enumerate(partials):
            if i:
                answer.append("+")
            answer.extend(_lsb_tokens(p, width))
        answer.append(";")
        answer.extend(_lsb_tokens(a * b, width))
        return answer, {"a": a, "b": b, "result": a * b, "partials": partials}


ARITHMETIC_TASKS: list[type[Task]] = [
    ReverseAdd,
    NoCarry,
    CarryOnly,
    ReverseSub,
    Mul3CoT,
    CopyFirstOp,
]
