"""String tasks checked against Python string operations, MQAR against a dict lookup."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from interp.tasks import get_task
from interp.tasks.base import Example

LETTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
PLAN_64 = [(1, 1500), (2, 1000), (5, 500), (16, 300), (32, 300), (63, 100), (64, 300)]
PLAN_52 = [(1, 1500), (2, 1000), (5, 500), (16, 300), (32, 300), (51, 100), (52, 300)]

ORACLES: dict[str, tuple[str, Callable[[str], str]]] = {
    "copy": ("<copy>", lambda s: s),
    "reverse": ("<rev>", lambda s: s[::-1]),
    "capitalize": ("<cap>", str.swapcase),
    "capitalize_reverse": ("<caprev>", lambda s: s.swapcase()[::-1]),
}


def _examples(task_name: str, plan: list[tuple[int, int]], seed: int = 99) -> list[Example]:
    task = get_task(task_name)
    return [ex for length, n in plan for ex in task.sample_many(length, n, seed + length)]


@pytest.mark.parametrize("name", list(ORACLES))
def test_string_task_matches_python(name: str) -> None:
    token, oracle = ORACLES[name]
    seen: set[str] = set()
    for ex in _examples(name, PLAN_64):
        assert ex.prompt[0] == token and ex.prompt[-1] == "="
        chars = ex.prompt[1:-1]
        assert len(chars) == ex.length
        assert set(chars) <= LETTERS
        seen.update(chars)
        assert "".join(ex.answer) == oracle("".join(chars))
        assert len(ex.answer) == ex.length and ex.target[-1] == "<eos>"
    assert seen == LETTERS


def test_mqar_matches_dict_lookup() -> None:
    repeated = 0
    for ex in _examples("mqar", PLAN_52):
        n = ex.length
        assert ex.prompt[0] == "<mqar>" and ex.prompt[-1] == "="
        body = ex.prompt[1:-1]
        assert len(body) == 3 * n + 1 and body[2 * n] == "|"
        keys, values, queries = body[0 : 2 * n : 2], body[1 : 2 * n : 2], body[2 * n + 1 :]
        assert len(set(keys)) == n, "keys must be distinct"
        assert set(keys) | set(values) <= LETTERS
        assert set(queries) <= set(keys)
        table = {k: v for k, v in zip(keys, values, strict=True)}
        assert ex.answer == [table[q] for q in queries]
        assert ex.meta["pairs"] == table and ex.meta["queries"] == queries
        repeated += len(set(queries)) < n
    # Queries are drawn with replacement: length 1 cannot repeat, length 2 repeats half the
    # time, and from length 5 on nearly every example has a repeated query (about 1990 of 4000).
    assert repeated > 1800


def test_mqar_uses_every_key_position() -> None:
    # Queries should hit first, middle and last pairs alike, not only one position.
    hits = [0] * 8
    for ex in get_task("mqar").sample_many(8, 300, 4):
        keys = ex.prompt[1:17:2]
        for q in ex.prompt[18:-1]:
            hits[keys.index(q)] += 1
    assert min(hits) > 200
