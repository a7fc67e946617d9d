"""The command line answers ``--help`` and argument errors without loading torch.

Importing torch and TransformerLens takes about 5 s on the project's CPU; before
``interp.core`` imported its names on first use, every ``interp --help`` and every mistyped
argument paid it (6 s measured, 0.07 s after).
"""

from __future__ import annotations

import subprocess
import sys

import interp.core

PROBE = """
import sys
from interp.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "transformer_lens", "pandas") if m in sys.modules)
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
    for name in interp.core.__all__:
        assert getattr(interp.core, name) is not None
    assert interp.core.InterpError.__module__ == "interp.core.errors"
