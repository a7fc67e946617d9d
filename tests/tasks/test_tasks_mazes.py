"""Maze tasks checked against an independent parse of the prompt, BFS and a recursive DFS."""

from __future__ import annotations

from collections import deque

import pytest

from interp.tasks import get_task
from interp.tasks.base import Example
from interp.tasks.vocab import NODE_TOKENS

PLAN = [(2, 1000), (3, 500), (5, 300), (16, 200), (32, 150), (63, 100), (64, 150)]
TOKEN_ID = {t: i for i, t in enumerate(NODE_TOKENS)}


def _examples(task_name: str, plan: list[tuple[int, int]], seed: int = 7) -> list[Example]:
    task = get_task(task_name)
    return [ex for length, n in plan for ex in task.sample_many(length, n, seed + length)]


def _parse_tree(ex: Example, token: str) -> tuple[dict[int, list[int]], int, int]:
    """The tree and query encoded by ``ex``'s prompt, after checking it is a valid maze."""
    n = ex.length
    prompt = ex.prompt
    assert prompt[0] == token
    assert prompt[-4] == "|" and prompt[-1] == "="
    start, end = TOKEN_ID[prompt[-3]], TOKEN_ID[prompt[-2]]
    body = prompt[1:-4]
    assert len(body) == 4 * n - 2 and body[-1] == ";"
    adj: dict[int, list[int]] = {}
    group: list[str] = []
    for tok in body:
        if tok == ";":
            ids = [TOKEN_ID[t] for t in group]
            assert ids[0] not in adj
            assert ids[1:] == sorted(ids[1:]), "neighbours in ascending id order"
            adj[ids[0]] = ids[1:]
            group = []
        else:
            group.append(tok)
    assert list(adj) == sorted(adj), "nodes in ascending id order"
    assert len(adj) == n
    edges = {(u, v) for u, vs in adj.items() for v in vs}
    assert all((v, u) in edges for u, v in edges), "adjacency is symmetric"
    assert len(edges) == 2 * (n - 1), "a tree on n nodes has n - 1 edges"
    for u, v in edges:
        (ru, cu), (rv, cv) = divmod(u, 8), divmod(v, 8)
        assert abs(ru - rv) + abs(cu - cv) == 1, "edges join grid neighbours"
    assert _bfs_parents(adj, start).keys() == adj.keys(), "connected"
    assert start != end and start in adj and end in adj
    assert ex.meta["nodes"] == sorted(adj)
    assert sorted(ex.meta["edges"]) == sorted((u, v) for u, v in edges if u < v)
    assert (ex.meta["start"], ex.meta["end"]) == (start, end)
    assert ex.target[-1] == "<eos>"
    return adj, start, end


def _bfs_parents(adj: dict[int, list[int]], source: int) -> dict[int, int | None]:
    parents: dict[int, int | None] = {source: None}
    queue = deque([source])
    while queue:
        u = queue.popleft()
        for v in adj[u]:
            if v not in parents:
                parents[v] = u
                queue.append(v)
    return parents


def _recursive_dfs(adj: dict[int, list[int]], start: int, end: int) -> list[int]:
    trace: list[int] = []

    def visit(u: int, parent: int | None) -> bool:
        trace.append(u)
        if u == end:
            return True
        for v in sorted(adj[u]):
            if v != parent:
                if visit(v, u):
                    return True
                trace.append(u)
        return False

    assert visit(start, None)
    return trace


def test_shortest_path_is_the_bfs_path() -> None:
    for ex in _examples("shortest_path", PLAN):
        adj, start, end = _parse_tree(ex, "<sp>")
        path = [TOKEN_ID[t] for t in ex.answer]
        assert path[0] == start and path[-1] == end
        assert all(b in adj[a] for a, b in zip(path, path[1:], strict=False))
        assert len(set(path)) == len(path)
        parents = _bfs_parents(adj, end)
        expected = [start]
        while expected[-1] != end:
            expected.append(parents[expected[-1]])
        assert path == expected
        assert len(ex.prompt) + len(ex.target) <= get_task("shortest_path").max_tokens(ex.length)


def test_dfs_trace_is_a_legal_traversal_matching_recursive_dfs() -> None:
    bound_hit = 0
    for ex in _examples("dfs_trace", PLAN):
        adj, start, end = _parse_tree(ex, "<dfs>")
        trace = [TOKEN_ID[t] for t in ex.answer]
        assert trace[0] == start and trace[-1] == end
        assert end not in trace[:-1]
        assert all(b in adj[a] for a, b in zip(trace, trace[1:], strict=False))
        assert trace == _recursive_dfs(adj, start, end)
        total = len(ex.prompt) + len(ex.target)
        bound = get_task("dfs_trace").max_tokens(ex.length)
        assert total <= bound
        bound_hit += total == bound
    # The bound is tight: a leaf next to start that is searched last reaches it.
    assert bound_hit > 0


def test_full_size_maze_spans_the_grid() -> None:
    for ex in get_task("shortest_path").sample_many(64, 20, 3):
        assert ex.meta["nodes"] == list(range(64))


def test_mazes_vary_in_position_and_shape() -> None:
    task = get_task("dfs_trace")
    cells = set()
    shapes = set()
    for ex in task.sample_many(5, 400, 11):
        cells.update(ex.meta["nodes"])
        shapes.add(tuple(ex.meta["edges"]))
    assert cells == set(range(64))
    assert len(shapes) > 300


@pytest.mark.parametrize("name", ["shortest_path", "dfs_trace"])
def test_max_tokens_respects_task_token_flag(name: str) -> None:
    with_token, without = get_task(name), get_task(name, task_token=False)
    for n in (2, 10, 64):
        assert with_token.max_tokens(n) == without.max_tokens(n) + 1
        ex = without.sample(n, 0)
        assert ex.prompt[0] != with_token.token
        assert len(ex.prompt) + len(ex.target) <= without.max_tokens(n)
