"""The command line answers ``--help`` and argument errors without loading torch, and reads
the zoo without loading TransformerLens.

Importing torch and TransformerLens takes about 5 s on the project's CPU; before
``interp.core`` imported its names on first use, every ``interp --help`` and every mistyped
argument paid it (6 s measured, 0.07 s after). TransformerLens alone is most of it: before the
package ``__init__`` files and the modules that only annotate with ``HookedTransformer``
imported it on first use, ``interp zoo list`` took 7.6 s.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import interp
import interp.causal
import interp.core
import interp.models
import interp.report
import interp.runs
import interp.scoring
import interp.stats
import interp.zoo

PROBE = """
import sys
from interp.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(
    m for m in ("torch", "transformer_lens", "pandas", "scipy") if m in sys.modules
)
print("HEAVY", ",".join(heavy))
"""


def _heavy_modules(*args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("HEAVY")]
    assert lines, run.stdout + run.stderr
    return lines[-1].removeprefix("HEAVY").strip()


def test_help_and_bad_arguments_do_not_import_torch():
    assert _heavy_modules("--help") == ""
    assert _heavy_modules("train", "--no-such-flag") == ""
    assert _heavy_modules("tasks", "show", "no_such_task_and_no_length") == ""


def test_the_core_api_resolves_every_public_name():
    assert interp.core.InterpError.__module__ == "interp.core.errors"


def test_reading_the_zoo_does_not_import_transformer_lens():
    heavy = _heavy_modules("zoo", "list").split(",")
    assert "transformer_lens" not in heavy and "scipy" not in heavy, heavy


LAZY = [interp, interp.causal, interp.core, interp.models, interp.report, interp.runs,
        interp.scoring, interp.stats, interp.zoo]  # fmt: skip


@pytest.mark.parametrize("package", LAZY, ids=lambda p: p.__name__)
def test_every_lazy_public_name_resolves(package):
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_prune_is_the_function_after_its_module_is_imported():
    import interp.zoo.pruning  # noqa: F401  (binds nothing over the public name)

    assert callable(interp.zoo.prune) and interp.zoo.prune.__module__ == "interp.zoo.pruning"
