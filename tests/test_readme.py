"""Every shell command in the ```bash blocks of README.md and of the docs runs and succeeds.

The commands are read from the README and then from the pages of ``docs/`` in the order of the
site's navigation (``mkdocs.yml``) at collection time, so a command someone adds later is tested
without touching this file. The convention, for whoever edits the README or a docs page:

* Every line of a ```bash block is one command; blank lines and ``#`` comments are ignored and
  a trailing backslash continues the command on the next line. Blocks of other languages
  (```text, ```python, a bare ```) are not run: put output and examples there.
* Commands run **in order (the README, then the docs pages in navigation order), in one scratch
  directory**, so a command may use what an earlier one wrote (``interp train ... --out runs/a``,
  then ``interp eval runs/a``). Keep each docs page self-contained all the same: a reader starts
  anywhere. A command that appeared earlier, word for word, is run once. Selecting one command
  (``-k``) first runs the ones before it. Indented blocks (inside a list item) are not run.
* The scratch directory stands in for a fresh clone at tiny scale: it holds a copy of
  ``analyses/`` and ``models/zoo/specs/`` whose every TOML spec is shrunk to the ``tiny``
  preset, one seed, one length pair and a few steps (``tests/tinyscale.py``), so commands that
  train finish in seconds; ``.venv/bin/python`` and ``.venv/bin/interp`` run this checkout;
  ``HOME`` is inside the scratch directory. Nothing is written to the repository or the real
  home directory.
* A command that cannot run as written in a test goes into :data:`OVERRIDES`: map it (the
  command as written, comment removed, spaces collapsed) to the command to run instead, or to
  ``None`` with the reason to skip it. Keep the replacement as close as possible: ``make demo``
  becomes ``interp demo --quick``, the same pipeline at seconds scale. An override whose command
  is no longer in the README or the docs fails the suite, so the table cannot go stale.
* Commands using ``--executor ray`` start a local Ray instance and carry the ``ray`` mark.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tinyscale import shrink_file

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS = ROOT / "mkdocs.yml"

pytestmark = pytest.mark.slow

#: command as written -> command run instead (a string), or ``(None, why it is skipped)``.
OVERRIDES: dict[str, str | tuple[None, str]] = {
    # builds .venv (minutes, network) and trains the CPU-scale demo (10 min): same pipeline, quick
    "make demo": "interp demo --quick --out demo-output",
    "make test": (None, "runs this very test suite"),
    "make jupyter": (None, "installs JupyterLab and starts a server that never exits"),
    # the full demo trains 2 x 1200 steps on the mini preset and analyses the whole zoo family;
    # --quick runs every stage in seconds
    # what `make demo` runs (test_make_demo_is_interp_demo), and `make demo` runs just above
    "interp demo --out demo-output": (None, "the Makefile's demo recipe, run as `make demo`"),
    # GPU commands: the same pipeline on the CPU (CI has no GPU; the paper specs are shrunk)
    "interp train analyses/paper/arith_a.toml --out runs/paper_arith_a --device cuda": (
        "interp train analyses/paper/arith_a.toml --out runs/paper_arith_a --device cpu"
    ),
    "interp train analyses/paper/arith_a_baseline.toml --out runs/paper_arith_a_baseline "
    "--device cuda": (
        "interp train analyses/paper/arith_a_baseline.toml --out runs/paper_arith_a_baseline "
        "--device cpu"
    ),
    "interp eval runs/paper_arith_a --device cuda": "interp eval runs/paper_arith_a --device cpu",
    "interp score runs/paper_arith_a --device cuda --batch-size 8192": (
        "interp score runs/paper_arith_a --device cpu --batch-size 8192"
    ),
    'pip install -e ".[pretrained]"': (
        None,
        "installs into the environment; transformers and tokenizers already come with "
        "transformer-lens, and tests/test_finetune.py runs the pretrained path",
    ),
    "interp finetune analyses/pretrained/smollm_reverse_add.toml --out runs/smollm_reverse_add "
    "--device cuda": (
        None,
        "needs the downloaded SmolLM2 checkpoints and a GPU; tests/test_finetune.py runs the "
        "same experiment command on a tiny Llama checkpoint",
    ),
    # docs/intervention.md: a 4000-step zoo entry exported into the shipped models/zoo; the
    # next command trains the same (shrunk) spec by hand, and tests/test_zoo.py exports a run
    "interp zoo train b4_disjoint_s0 --export": (
        None,
        "trains a full-size zoo entry and writes it into the repository's models/zoo; the "
        "intervention page's next command trains the same spec, shrunk, into the scratch",
    ),
    "interp finetune analyses/pretrained/smollm_shortest_path.toml --out runs/smollm_shortest_path "
    "--device cuda": (
        None,
        "needs the downloaded SmolLM2 checkpoints and a GPU; tests/test_finetune.py runs the "
        "same experiment command on a tiny Llama checkpoint",
    ),
}


def _strip_comment(line: str) -> str:
    return re.sub(r"(^|\s)#.*$", "", line).strip()


def readme_commands(text: str) -> list[str]:
    """The commands of every ```bash block, continuations joined, comments removed."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        pending = ""
        for raw in block.splitlines():
            line = raw.rstrip()
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            cmd = " ".join(_strip_comment(pending + line).split())
            pending = ""
            if cmd:
                commands.append(cmd)
    return commands


def docs_pages() -> list[Path]:
    """The Markdown pages of the site in navigation order (read from ``mkdocs.yml``'s ``nav``)."""
    if not MKDOCS.is_file():
        return []
    names = re.findall(r"^\s+- (?:[^:\n]+: )?([\w./-]+\.md)\s*$", MKDOCS.read_text(), flags=re.M)
    return [DOCS / n for n in names if (DOCS / n).is_file()]


def _sources() -> list[tuple[str, str]]:
    """``(where, command)`` for every command, first occurrence only, in the order they run."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for path in [README, *docs_pages()]:
        where = str(path.relative_to(ROOT))
        for cmd in readme_commands(path.read_text(encoding="utf-8")):
            if cmd not in seen:
                seen.add(cmd)
                out.append((where, cmd))
    return out


SOURCES = _sources()
COMMANDS = [cmd for _, cmd in SOURCES]


def test_readme_has_commands_and_overrides_are_current():
    readme = readme_commands(README.read_text(encoding="utf-8"))
    assert any(c.startswith("interp ") for c in readme)
    assert "make demo" in readme and "make test" in readme
    assert docs_pages(), "mkdocs.yml names no docs page"
    stale = sorted(set(OVERRIDES) - set(COMMANDS))
    assert not stale, f"OVERRIDES name commands neither the README nor the docs have: {stale}"


def test_extraction_convention():
    text = "```bash\na --x \\\n    --y   # note\n# only a comment\n\nb\n```\n```text\nc\n```\n"
    assert readme_commands(text) == ["a --x --y", "b"]


def _shim(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A fresh-clone stand-in at tiny scale (see the module docstring)."""
    d = tmp_path_factory.mktemp("readme")
    # The analysis specs and the zoo's specs (a docs page trains one by hand), both shrunk.
    sources = [*(ROOT / "analyses").rglob("*"), *(ROOT / "models" / "zoo" / "specs").glob("*.toml")]
    for src in sources:
        dest = d / src.relative_to(ROOT)
        if src.is_dir():
            continue
        if src.suffix == ".toml":
            shrink_file(src, dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest)
    bin_dir = d / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    _shim(bin_dir / "python", f'exec "{sys.executable}" "$@"')
    _shim(bin_dir / "interp", f'exec "{sys.executable}" -m interp.cli "$@"')
    (d / "home").mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "HOME": str(d / "home"),
        "OMP_NUM_THREADS": "1",
    }
    return {"dir": d, "env": env, "done": set()}


def _run(cmd: str, scratch: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", cmd],
        cwd=scratch["dir"],
        env=scratch["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _resolve(cmd: str) -> str | None:
    override = OVERRIDES.get(cmd, cmd)
    return None if isinstance(override, tuple) else override


def _params() -> list:
    out = []
    for i, (where, cmd) in enumerate(SOURCES):
        marks = [pytest.mark.ray] if "--executor ray" in cmd else []
        override = OVERRIDES.get(cmd)
        if isinstance(override, tuple):
            marks.append(pytest.mark.skip(reason=f"README command not run: {override[1]}"))
        out.append(pytest.param(i, cmd, marks=marks, id=f"{where}: {cmd[:80]}"))
    return out


@pytest.mark.parametrize("index, command", _params())
def test_readme_command(index: int, command: str, scratch: dict):
    # Earlier commands first (when this one was selected alone): it may need their output.
    for j in range(index):
        earlier = _resolve(COMMANDS[j])
        if j not in scratch["done"] and earlier and "--executor ray" not in earlier:
            r = _run(earlier, scratch)
            assert r.returncode == 0, f"prerequisite {earlier!r} failed:\n{r.stderr[-3000:]}"
            scratch["done"].add(j)
    cmd = _resolve(command)
    assert cmd is not None
    r = _run(cmd, scratch)
    scratch["done"].add(index)
    assert r.returncode == 0, (
        f"{cmd!r} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    )
    assert "Traceback" not in r.stderr


def test_make_demo_is_interp_demo() -> None:
    """`make demo` is exactly `interp demo --out demo-output`, so running the first covers both."""
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].splitlines()[1].strip()
    assert recipe == "$(BIN)/interp demo --out demo-output"
