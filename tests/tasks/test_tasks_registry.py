"""Properties every task shares: registry, groups, vocabulary, determinism, fixed shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from interp.core.errors import InterpError
from interp.tasks import get_group, get_task, list_groups, list_tasks
from interp.tasks.vocab import TASK_TOKENS, VOCAB

EXPECTED = {
    "reverse_add": ("<add>", "arithmetic", 1, 256),
    "no_carry": ("<nocarry>", "arithmetic", 1, 256),
    "carry_only": ("<carry>", "arithmetic", 1, 256),
    "reverse_sub": ("<sub>", "arithmetic", 1, 256),
    "mul3_cot": ("<mul>", "arithmetic", 1, 64),
    "copy_first_op": ("<copyop>", "arithmetic", 1, 256),
    "copy": ("<copy>", "strings", 1, 64),
    "reverse": ("<rev>", "strings", 1, 64),
    "capitalize": ("<cap>", "strings", 1, 64),
    "capitalize_reverse": ("<caprev>", "strings", 1, 64),
    "mqar": ("<mqar>", "strings", 1, 52),
    "shortest_path": ("<sp>", "mazes", 2, 64),
    "dfs_trace": ("<dfs>", "mazes", 2, 64),
}

# (prompt tokens, target tokens) as a function of the length, task token and <eos> included.
SHAPES = {
    "reverse_add": lambda n: (2 * n + 3, n + 2),
    "no_carry": lambda n: (2 * n + 3, n + 2),
    "carry_only": lambda n: (2 * n + 3, n + 2),
    "reverse_sub": lambda n: (2 * n + 3, n + 1),
    "mul3_cot": lambda n: (n + 6, 4 * (n + 3) + 4),
    "copy_first_op": lambda n: (2 * n + 3, n + 1),
    "copy": lambda n: (n + 2, n + 1),
    "reverse": lambda n: (n + 2, n + 1),
    "capitalize": lambda n: (n + 2, n + 1),
    "capitalize_reverse": lambda n: (n + 2, n + 1),
    "mqar": lambda n: (3 * n + 3, n + 1),
}

ALL = list(EXPECTED)


def _some_lengths(name: str) -> list[int]:
    task = get_task(name)
    lo, hi = task.min_length, task.max_length
    return sorted({lo, lo + 1, (lo + hi) // 2, hi})


def test_registry_lists_all_tasks_with_their_attributes() -> None:
    assert list_tasks() == ALL
    for name, (token, family, lo, hi) in EXPECTED.items():
        task = get_task(name)
        assert (task.name, task.token, task.family) == (name, token, family)
        assert task.lengths == range(lo, hi + 1)
        assert task.description
    assert sorted(get_task(n).token for n in ALL) == sorted(TASK_TOKENS)


def test_groups_name_existing_tasks_within_range() -> None:
    assert len(list_groups()) == 13
    kinds = [get_group(g).kind for g in list_groups()]
    assert kinds.count("transfer") == 7 and kinds.count("control") == 2
    for gname in list_groups():
        group = get_group(gname)
        assert group.main == group.tasks[0]
        for name in group.tasks:
            assert name in list_tasks()
        assert group.main_max in get_task(group.main).lengths
        for name in group.aux:
            assert group.aux_max in get_task(name).lengths


@pytest.mark.parametrize("name", ALL)
def test_tokens_are_in_vocab_and_round_trip(name: str) -> None:
    task = get_task(name)
    for length in _some_lengths(name):
        for ex in task.sample_many(length, 30, length):
            tokens = ex.prompt + ex.target
            assert all(t in VOCAB for t in tokens)
            assert VOCAB.decode(VOCAB.encode(tokens)) == tokens
            assert ex.task == name and ex.length == length
            assert ex.prompt[0] == task.token and ex.prompt[-1] == "="
            assert ex.target[-1] == "<eos>" and "<eos>" not in ex.answer
            assert ex.answer == ex.target[:-1]
            assert isinstance(ex.text, str)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_samples_different_seed_different(name: str) -> None:
    task = get_task(name)
    for length in _some_lengths(name):
        first = task.sample_many(length, 20, 42)
        again = task.sample_many(length, 20, np.random.default_rng(42))
        assert [(e.prompt, e.target, e.meta) for e in first] == [
            (e.prompt, e.target, e.meta) for e in again
        ]
        other = task.sample_many(length, 20, 43)
        assert [e.prompt for e in first] != [e.prompt for e in other]
    # Successive draws from one generator differ too.
    batch = task.sample_many(task.max_length, 5, 0)
    assert len({tuple(e.prompt) for e in batch}) == 5


@pytest.mark.parametrize("name", list(SHAPES))
def test_fixed_formats_have_fixed_token_counts(name: str) -> None:
    task = get_task(name)
    for length in _some_lengths(name):
        shapes = {(len(e.prompt), len(e.target)) for e in task.sample_many(length, 50, length)}
        assert shapes == {SHAPES[name](length)}
        assert task.max_tokens(length) == sum(SHAPES[name](length))


@pytest.mark.parametrize("name", ["shortest_path", "dfs_trace"])
def test_maze_max_tokens_bounds_samples(name: str) -> None:
    task = get_task(name)
    for length in _some_lengths(name):
        for ex in task.sample_many(length, 50, length):
            assert len(ex.prompt) == 4 * length + 3
            assert len(ex.prompt) + len(ex.target) <= task.max_tokens(length)


def test_task_token_can_be_dropped() -> None:
    for name in ALL:
        ex = get_task(name, task_token=False).sample(get_task(name).min_length + 1, 5)
        assert ex.prompt == get_task(name).sample(ex.length, 5).prompt[1:]


def test_unknown_task_and_group_list_the_valid_choices() -> None:
    with pytest.raises(InterpError) as err:
        get_task("reverse_addition")
    assert all(name in str(err.value) for name in ALL)
    with pytest.raises(InterpError) as err:
        get_group("arith_z")
    assert all(name in str(err.value) for name in list_groups())


@pytest.mark.parametrize("name", ALL)
def test_out_of_range_length_names_the_range(name: str) -> None:
    task = get_task(name)
    for bad in (task.min_length - 1, task.max_length + 1, -3):
        with pytest.raises(InterpError, match=f"{task.min_length}\\.\\.{task.max_length}"):
            task.sample(bad, 0)
    for bad in (2.0, "3", True, None):
        with pytest.raises(InterpError):
            task.sample(bad, 0)  # type: ignore[arg-type]
    with pytest.raises(InterpError):
        task.max_tokens(task.max_length + 1)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_sample_count(bad: object) -> None:
    with pytest.raises(InterpError, match="count"):
        get_task("copy").sample_many(3, bad, 0)  # type: ignore[arg-type]
