"""The package's import graph: every module sits on a floor and imports only from its floor or
below, and no two modules import each other, directly or around a circle.

Imports are read from the source with ``ast`` (function-level imports included; imports under
``if TYPE_CHECKING:`` are annotations only and are skipped), so a lazy import inside a function
counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "interp"

LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"errors", "io", "resources", "config", "progress"}),
    ("vocabulary, tasks, devices, pure statistics", {"tokenizer", "tasks", "text", "device",
                                                     "stats", "head_mask"}),
    ("data and the model factory", {"data", "construct", "pretrained", "model"}),
    ("artifacts on disk", {"checkpoint", "spec", "rundir", "runs", "sweep_spec"}),
    ("training and measurements on one model", {
        "train", "evaluate", "hooks", "lean", "ablation", "patching", "heads", "attention",
        "causal", "head_sets", "set_trie", "overlap", "metrics", "transfer", "permutation",
        "run_table", "between", "within", "dose", "interchange", "head_table", "power",
    }),
    ("stages over run directories", {"pipeline", "analysis", "sweep", "sweep_monitor",
                                     "executors", "zoo_card", "zoo", "family", "family_sweep"}),
    ("presentation", {"report_doc", "stat_plots", "plots", "report_family", "report"}),
    ("drivers", {"finetune", "demo"}),
    ("command line", {"cli", "cli_parser"}),
]  # fmt: skip

# Upward imports allowed for now (none left: the last one, pipeline -> plots, went in issue 12's
# second pass, when `interp overlap` began drawing its figures itself).
KNOWN_UPWARD: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    # The tasks package is one module as far as layering goes.
    return "tasks" if parts and parts[0] == "tasks" else ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mod = node.module
            if mod == "interp":
                out.update(a.name for a in node.names)
            elif mod.startswith("interp."):
                out.add(mod.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("interp."))
        stack.extend(ast.iter_child_nodes(node))
    return out


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if not name:
            continue  # interp/__init__.py
        deps = _imports(ast.parse(path.read_text(encoding="utf-8")))
        graph.setdefault(name, set()).update(d for d in deps if d != name)
    return graph


def _floor() -> dict[str, int]:
    floor: dict[str, int] = {}
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            assert n not in floor, f"{n} is on two floors"
            floor[n] = i
    return floor


def test_every_module_has_a_floor():
    floor = _floor()
    graph = import_graph()
    assert sorted(set(graph) - set(floor)) == [], "add new modules to LAYERS"
    assert sorted(set(floor) - set(graph)) == [], "LAYERS names a module that does not exist"


def test_no_module_imports_from_a_higher_floor():
    floor = _floor()
    upward = sorted(
        (a, b, LAYERS[floor[a]][0], LAYERS[floor[b]][0])
        for a, deps in import_graph().items()
        for b in deps
        if floor[b] > floor[a] and (a, b) not in KNOWN_UPWARD
    )
    assert upward == []


def test_known_upward_imports_still_exist():
    # An allow-listed exception that is gone must leave the list too.
    graph = import_graph()
    assert all(b in graph[a] for a, b in KNOWN_UPWARD)


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(dep) :], dep]))
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_runs_get_file_names_from_rundir_not_train():
    # evaluate -> runs -> train -> evaluate was a circle; runs now asks rundir.
    assert "train" not in import_graph()["runs"]
