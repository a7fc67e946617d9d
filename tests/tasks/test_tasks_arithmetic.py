"""Arithmetic tasks checked against Python integers.

Each example's prompt is parsed back into two ints and its answer is recomputed from those ints
with ordinary integer arithmetic (never with the module's digit loops), at the minimum length, the
maximum length and lengths in between.
"""

from __future__ import annotations

import pytest

from interp.tasks import get_task
from interp.tasks.base import Example

# (length, samples) per task: many short examples, where the format has the most edge cases,
# fewer long ones, which are slower to generate and check.
PLAN_256 = [(1, 1500), (2, 1000), (3, 500), (7, 300), (16, 300), (64, 100), (255, 50), (256, 100)]
PLAN_64 = [(1, 1500), (2, 1000), (3, 500), (8, 300), (16, 300), (63, 100), (64, 200)]


def _examples(task_name: str, plan: list[tuple[int, int]], seed: int = 1234) -> list[Example]:
    task = get_task(task_name)
    return [ex for length, n in plan for ex in task.sample_many(length, n, seed + length)]


def _lsb_int(digits: list[str]) -> int:
    assert digits and all(d in "0123456789" for d in digits), digits
    return int("".join(reversed(digits)))


def _digit(x: int, i: int) -> int:
    return x // 10**i % 10


def _parse(ex: Example, token: str, op: str, b_len: int | None = None) -> tuple[int, int]:
    """Operands of ``ex``'s prompt, after checking its layout."""
    length = ex.length
    b_len = length if b_len is None else b_len
    assert ex.prompt[0] == token
    assert ex.prompt[-1] == "="
    body = ex.prompt[1:-1]
    assert len(body) == length + 1 + b_len
    assert body[length] == op
    a_digits, b_digits = body[:length], body[length + 1 :]
    a, b = _lsb_int(a_digits), _lsb_int(b_digits)
    # Operands really have their nominal length: no leading zero unless the operand is one digit.
    if length > 1:
        assert a_digits[-1] != "0"
    if b_len > 1:
        assert b_digits[-1] != "0"
    assert (ex.meta["a"], ex.meta["b"]) == (a, b)
    assert ex.target[-1] == "<eos>"
    return a, b


def test_reverse_add_matches_python_ints() -> None:
    for ex in _examples("reverse_add", PLAN_256):
        a, b = _parse(ex, "<add>", "+")
        assert len(ex.answer) == ex.length + 1
        assert _lsb_int(ex.answer) == a + b == ex.meta["result"]


def test_no_carry_matches_digitwise_sum() -> None:
    for ex in _examples("no_carry", PLAN_256):
        a, b = _parse(ex, "<nocarry>", "+")
        expected = [str((_digit(a, i) + _digit(b, i)) % 10) for i in range(ex.length)] + ["0"]
        assert ex.answer == expected


def test_carry_only_matches_prefix_overflow() -> None:
    # The carry into position i is 1 exactly when the low i digits of a and b overflow 10**i.
    for ex in _examples("carry_only", PLAN_256):
        a, b = _parse(ex, "<carry>", "+")
        expected = [str(int(a % 10**i + b % 10**i >= 10**i)) for i in range(ex.length + 1)]
        assert ex.answer == expected


def test_copy_first_op_returns_first_operand() -> None:
    for ex in _examples("copy_first_op", PLAN_256):
        a, _ = _parse(ex, "<copyop>", "+")
        assert len(ex.answer) == ex.length
        assert _lsb_int(ex.answer) == a


def test_reverse_sub_matches_python_ints() -> None:
    for ex in _examples("reverse_sub", PLAN_256):
        a, b = _parse(ex, "<sub>", "-")
        assert a >= b
        assert len(ex.answer) == ex.length
        assert _lsb_int(ex.answer) == a - b == ex.meta["result"]


def test_reverse_sub_keeps_equal_operands_at_their_natural_rate() -> None:
    # Swapping (rather than resampling) keeps the operand distribution: at length 1 equal operands
    # (answer 0) occur about 1 time in 10.
    answers = [ex.answer for ex in get_task("reverse_sub").sample_many(1, 1000, 5)]
    assert 50 < answers.count(["0"]) < 160


def test_mul3_cot_matches_python_ints() -> None:
    for ex in _examples("mul3_cot", PLAN_64):
        a, b = _parse(ex, "<mul>", "*", b_len=3)
        assert 100 <= b <= 999
        width = ex.length + 3
        ans = ex.answer
        assert len(ans) == 4 * width + 3
        assert ans[width] == "+" and ans[2 * width + 1] == "+" and ans[3 * width + 2] == ";"
        partials = [_lsb_int(ans[j * (width + 1) : j * (width + 1) + width]) for j in range(3)]
        assert partials == [a * _digit(b, j) * 10**j for j in range(3)]
        assert _lsb_int(ans[3 * width + 3 :]) == a * b == sum(partials)


def test_paper_reference_example() -> None:
    # 58 + 67 is written 85+76= and the answers are 521, 510, 011 (REFERENCE.md).
    a_digits, b_digits = [8, 5], [7, 6]
    for name, expected in [
        ("reverse_add", "521"),
        ("no_carry", "510"),
        ("carry_only", "011"),
        ("copy_first_op", "85"),
    ]:
        answer, meta = get_task(name)._answer(a_digits, b_digits, 2)
        assert "".join(answer) == expected
        assert (meta["a"], meta["b"]) == (58, 67)


@pytest.mark.parametrize("length", [1, 2, 5, 32, 256])
def test_no_carry_plus_carry_only_is_reverse_add(length: int) -> None:
    # The three tasks draw operands identically, so one seed gives one pair of operands.
    for seed in range(200):
        add, nc, co = (
            get_task(n).sample(length, seed) for n in ("reverse_add", "no_carry", "carry_only")
        )
        assert add.prompt[1:] == nc.prompt[1:] == co.prompt[1:]
        combined = [str((int(x) + int(y)) % 10) for x, y in zip(nc.answer, co.answer, strict=True)]
        assert combined == add.answer


def test_leading_digit_is_uniform_and_single_digits_include_zero() -> None:
    task = get_task("reverse_add")
    leading = {ex.prompt[2] for ex in task.sample_many(2, 500, 3)}
    assert leading == set("123456789")
    singles = {ex.prompt[1] for ex in task.sample_many(1, 500, 3)}
    assert singles == set("0123456789")
