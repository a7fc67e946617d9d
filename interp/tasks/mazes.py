"""Maze tasks on partial spanning trees of the 8x8 grid.

**The maze.** Node ``row * 8 + col`` of the 8x8 grid is the token ``n{row}{col}`` (``n00`` ..
``n77``, see :func:`interp.tasks.vocab.node_token`). The *length* ``N`` (2..64) is the number of
nodes in the maze, a tree grown with Wilson's algorithm stopped early, as in the paper:

1. a uniformly random grid node is the root, the tree's only node;
2. pick a uniformly random grid node outside the tree and walk from it to a uniformly random grid
   neighbour, again and again, until the walk hits the tree; erase the walk's loops (keep, for each
   visited node, the last step taken out of it);
3. add the loop-erased path to the tree one node at a time, starting at the end that touches the
   tree, and stop as soon as the tree has ``N`` nodes, so the tree stays connected;
4. repeat from 2 until the tree has ``N`` nodes.

With ``N = 64`` this is Wilson's uniform spanning tree of the grid; smaller ``N`` gives a random
connected subtree, i.e. a maze whose corridors cover part of the board.

**The prompt** is the adjacency list, then the query (the task token is prepended by
:class:`~interp.tasks.base.Task`)::

    u v1 v2 ; u' v1' ; ... | start end =

For every tree node ``u`` in ascending id order: ``u``, its tree neighbours in ascending id order,
then ``;``. That is ``N`` node tokens, ``2 (N - 1)`` neighbour tokens and ``N`` separators,
``4N - 2`` tokens in all. ``start != end`` are drawn uniformly from the tree's nodes.

**The answers** (node tokens, then ``<eos>``):

* ``shortest_path``: the unique tree path from ``start`` to ``end``, both included.
* ``dfs_trace``: depth-first search from ``start`` that tries neighbours in ascending id order. It
  emits each node when it enters it, emits a node again each time the search backtracks to it from
  a finished child, and stops as soon as it enters ``end``. Consecutive nodes of the trace are
  therefore always adjacent in the tree; the trace starts with ``start`` and ends with ``end``.

Example with ``N = 4`` (tree ``n00 - n01 - n02`` and ``n01 - n11``), start ``n01``, end ``n11``::

    <sp>  n00 n01 ; n01 n00 n02 n11 ; n02 n01 ; n11 n01 ; | n01 n11 =  ->  n01 n11
    <dfs> (same prompt)                                             ->  n01 n00 n01 n02 n01 n11

Unlike the other tasks the token counts vary with the sampled maze, so :meth:`Task.max_tokens` is
a worst-case bound: the answer has at most ``N`` nodes for the path, and at most ``2N - 2`` for the
trace (every move crosses a tree edge; edges on the start-end path are crossed once, edges beyond
``end`` never, the rest at most twice, and the path has at least one edge).

``meta`` holds ``nodes`` (sorted ids), ``edges`` (sorted ``(u, v)`` pairs with ``u < v``),
``start`` and ``end``.
"""

from __future__ import annotations

import numpy as np

from interp.tasks.base import Task
from interp.tasks.vocab import GRID_SIZE, node_token

N_CELLS = GRID_SIZE * GRID_SIZE


def _grid_neighbours(node: int) -> tuple[int, ...]:
    r, c = divmod(node, GRID_SIZE)
    out = []
    for dr, dc in ((-1, 0), (0, -1), (0, 1), (1, 0)):
        rr, cc = r + dr, c + dc
        if 0 <= rr < GRID_SIZE and 0 <= cc < GRID_SIZE:
            out.append(rr * GRID_SIZE + cc)
    return tuple(out)


GRID_NEIGHBOURS: tuple[tuple[int, ...], ...] = tuple(_grid_neighbours(v) for v in range(N_CELLS))


class _Uniforms:
    """Uniform floats drawn from ``rng`` in blocks: one numpy call per random-walk step would
    dominate the cost of a sample (walks to a small tree take hundreds of steps)."""

    def __init__(self, rng: np.random.Generator, block: int = 512) -> None:
        self.rng = rng
        self.block = block
        self.buf: list[float] = []
        self.i = 0

    def below(self, n: int) -> int:
        """A uniform integer in ``0..n-1``."""
        if self.i == len(self.buf):
            self.buf = self.rng.random(self.block).tolist()
            self.i = 0
        u = self.buf[self.i]
        self.i += 1
        return min(int(u * n), n - 1)


def wilson_tree(n_nodes: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Grow a tree of ``n_nodes`` grid nodes with Wilson's algorithm, stopped early.

    Args:
        n_nodes: number of nodes in the tree, 1..64.
        rng: the random generator.

    Returns:
        The tree's ``n_nodes - 1`` edges as ``(u, v)`` pairs with ``u < v``, sorted (the nodes
        are the edges' endpoints, so the tasks ask for at least 2 nodes).
    """
    uniforms = _Uniforms(rng)
    in_tree = [False] * N_CELLS
    in_tree[uniforms.below(N_CELLS)] = True
    count = 1
    edges: list[tuple[int, int]] = []
    while count < n_nodes:
        outside = [v for v in range(N_CELLS) if not in_tree[v]]
        start = outside[uniforms.below(len(outside))]
        # Overwriting the exit step of a revisited node is exactly loop erasure.
        step: dict[int, int] = {}
        u = start
        while not in_tree[u]:
            nbrs = GRID_NEIGHBOURS[u]
            step[u] = nbrs[uniforms.below(len(nbrs))]
            u = step[u]
        path = [start]
        while not in_tree[path[-1]]:
            path.append(step[path[-1]])
        # Grow from the tree end so that stopping midway leaves a connected tree.
        for i in range(len(path) - 2, -1, -1):
            in_tree[path[i]] = True
            edges.append((min(path[i], path[i + 1]), max(path[i], path[i + 1])))
            count += 1
            if count == n_nodes:
                break
    return sorted(edges)


def _adjacency(edges: list[tuple[int, int]]) -> dict[int, list[int]]:
    adj: dict[int, list[int]] = {}
    for u, v in edges:
        adj.setdefault(u, []).append(v)
        adj.setdefault(v, []).append(u)
    return {u: sorted(vs) for u, vs in sorted(adj.items())}


def tree_path(adj: dict[int, list[int]], start: int, end: int) -> list[int]:
    """The unique path from ``start`` to ``end`` in the tree ``adj``, both ends included."""
    parent = {start: start}
    frontier = [start]
    while end not in parent:
        nxt = []
        for u in frontier:
            for v in adj[u]:
                if v not in parent:
                    parent[v] = u
                    nxt.append(v)
        frontier = nxt
    path = [end]
    while path[-1] != start:
        path.append(parent[path[-1]])
    return path[::-1]


def dfs_trace(adj: dict[int, list[int]], start: int, end: int) -> list[int]:
    """Depth-first trace from ``start`` (neighbours in ascending order) until ``end`` is entered,
    re-emitting a node whenever the search backtracks to it."""
    trace = [start]
    visited = {start}
    stack = [(start, iter(adj[start]))]
    while stack:
        _, children = stack[-1]
        for v in children:
            if v not in visited:
                visited.add(v)
                trace.append(v)
                if v == end:
                    return trace
                stack.append((v, iter(adj[v])))
                break
        else:
            stack.pop()
            if stack:
                trace.append(stack[-1][0])
    raise AssertionError(f"node {end} is not reachable from {start}")


class _MazeTask(Task):
    family = "mazes"
    min_length = 2
    max_length = N_CELLS

    def _sample(self, length: int, rng: np.random.Generator) -> tuple[list[str], list[str], dict]:
        edges = wilson_tree(length, rng)
        adj = _adjacency(edges)
        nodes = list(adj)
        i, j = rng.choice(len(nodes), size=2, replace=False)
        start, end = nodes[int(i)], nodes[int(j)]
        prompt: list[str] = []
        for u, nbrs in adj.items():
            prompt.append(node_token(u))
            prompt.extend(node_token(v) for v in nbrs)
            prompt.append(";")
        prompt += ["|", node_token(start), node_token(end), "="]
        answer = [node_token(v) for v in self._solve(adj, start, end)]
        meta = {"nodes": nodes, "edges": edges, "start": start, "end": end}
        return prompt, answer, meta

    def _solve(self, adj: dict[int, list[int]], start: int, end: int) -> list[int]:
        raise NotImplementedError

    def _max_answer(self, length: int) -> int:
        raise NotImplementedError

    def max_tokens(self, length: int) -> int:
        """Worst case of ``len(prompt) + len(target)`` over all mazes with ``length`` nodes."""
        length = self.check_length(length)
        # adjacency list (4N - 2) + "|" start end "=" + answer + <eos>
        return int(self.task_token) + (4 * length - 2) + 4 + self._max_answer(length) + 1


class ShortestPath(_MazeTask):
    """The unique tree path from start to end (at most ``N`` nodes)."""

    name = "shortest_path"
    token = "<sp>"
    description = "the tree path from start to end in a partial-grid maze"

    def _solve(self, adj: dict[int, list[int]], start: int, end: int) -> list[int]:
        return tree_path(adj, start, end)

    def _max_answer(self, length: int) -> int:
        return length


class DFSTrace(_MazeTask):
    """Depth-first trace with backtracking from start until end (at most ``2N - 2`` nodes)."""

    name = "dfs_trace"
    token = "<dfs>"
    description = "depth-first search trace (with backtracking) from start to end"

    def _solve(self, adj: dict[int, list[int]], start: int, end: int) -> list[int]:
        return dfs_trace(adj, start, end)

    def _max_answer(self, length: int) -> int:
        return 2 * length - 2


MAZE_TASKS: list[type[Task]] = [ShortestPath, DFSTrace]
