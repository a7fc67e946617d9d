"""The package's import graph: every subpackage sits on a floor along the data flow and imports
only from its floor or below, and no two modules (nor two subpackages) import each other,
directly or around a circle.

Imports are read from the source with ``ast``: top-level imports, function-level imports and
imports under ``if TYPE_CHECKING:`` all count, so neither a lazy import inside a function nor an
annotation-only import can hide an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "interp"

# The data flow, bottom to top: tasks -> batches -> model -> checkpoints -> evaluation and head
# scores -> statistics -> causal tests -> runs and analyses -> zoo -> figures and reports -> CLI.
LAYERS: list[tuple[str, str]] = [
    ("core", "foundation: errors, files, configs, devices, resources, progress"),
    ("tasks", "tasks, vocabulary, encodings, batches"),
    ("models", "model architecture and factory, pretrained loading, checkpoints, head masks"),
    ("scoring", "evaluation, hooks, ablation, patching, head scores, attention, overlap"),
    ("stats", "intervals, permutation tests, transfer, between- and within-run statistics"),
    ("causal", "causal top-k test, head sets, dose, interchange"),
    ("runs", "run specs and directories, training, sweeps, pipeline, analyses"),
    ("zoo", "the model zoo, its cards and families"),
    ("report", "figures and reports"),
    ("cli", "command line and drivers"),
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__")


def _resolve(module: str | None, level: int, here: str, is_pkg: bool) -> str | None:
    if level == 0:
        return module
    base = here.split(".") if is_pkg else here.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _imports(tree: ast.AST, here: str, is_pkg: bool, modules: set[str]) -> set[str]:
    """Modules of the package (dotted names below ``interp``) that ``tree`` imports."""
    out: set[str] = set()

    def add(name: str) -> None:
        # the longest prefix that is a module of the package
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            cand = ".".join(parts[:i])
            if cand in modules:
                out.add(cand)
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = _resolve(node.module, node.level, "interp." + here if here else "interp", is_pkg)
            if not mod or not (mod == "interp" or mod.startswith("interp.")):
                continue
            rel = mod.removeprefix("interp").removeprefix(".")
            for a in node.names:
                sub = f"{rel}.{a.name}" if rel else a.name
                add(sub if sub in modules else rel)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("interp."):
                    add(a.name.removeprefix("interp."))
    out.discard("")
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``interp/__init__.py`` left out)."""
    paths = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    paths.pop("", None)
    modules = set(paths)
    return {
        name: _imports(ast.parse(p.read_text(encoding="utf-8")), name, p.name == "__init__.py",
                       modules) - {name}
        for name, p in paths.items()
    }  # fmt: skip


def _subpackage(module: str) -> str:
    return module.split(".")[0]


def _floor() -> dict[str, int]:
    return {name: i for i, (name, _) in enumerate(LAYERS)}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (c := visit(dep, [*path, dep])):
                return c
        state[node] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n, [n])):
            return c
    return None


def test_every_module_lives_in_a_subpackage_with_a_floor():
    floor = _floor()
    subs = {_subpackage(m) for m in import_graph()}
    assert sorted(subs - set(floor)) == [], "add new subpackages to LAYERS (no loose modules)"
    assert sorted(set(floor) - subs) == [], "LAYERS names a subpackage that does not exist"


def test_no_import_from_a_higher_floor():
    floor = _floor()
    upward = sorted(
        (a, b)
        for a, deps in import_graph().items()
        for b in deps
        if floor[_subpackage(b)] > floor[_subpackage(a)]
    )
    assert upward == []


def test_no_import_cycle_between_modules():
    graph = import_graph()
    cycle = _find_cycle(graph)
    if cycle:
        pytest.fail("import cycle: " + " -> ".join(cycle))


def test_no_import_cycle_between_subpackages():
    sub: dict[str, set[str]] = {}
    for a, deps in import_graph().items():
        sub.setdefault(_subpackage(a), set()).update(
            _subpackage(b) for b in deps if _subpackage(b) != _subpackage(a)
        )
    cycle = _find_cycle(sub)
    if cycle:
        pytest.fail("subpackage cycle: " + " -> ".join(cycle))


def test_no_private_name_is_imported_across_modules():
    private = sorted(
        f"{path.relative_to(PACKAGE)}: {a.name}"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("interp")
        for a in node.names
        if a.name.startswith("_")
    )
    assert private == []


def test_no_module_is_over_500_lines():
    long = sorted(
        (str(p.relative_to(PACKAGE)), n)
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    )
    assert long == []


def test_runs_get_file_names_from_the_run_directory_not_train():
    # evaluate -> runs -> train -> evaluate was a circle; the loader now asks the run directory.
    assert "runs.train" not in import_graph()["runs.loader"]


def test_no_package_source_is_ignored_by_git():
    """A ``.gitignore`` pattern once hid a whole subpackage (``runs/`` matched ``interp/runs/``):
    its new modules were never committed and a fresh clone could not import them."""
    import shutil
    import subprocess

    root = PACKAGE.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    files = [
        str(p.relative_to(root)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
    ]
    r = subprocess.run(["git", "check-ignore", *files], cwd=root, capture_output=True, text=True)
    assert r.stdout.strip() == "", f"ignored by git: {r.stdout.split()}"
