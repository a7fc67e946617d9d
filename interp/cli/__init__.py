"""The ``interp`` command line (its entry point is :func:`interp.cli.commands.main`) and the
drivers it runs: the end-to-end demo and the fine-tuning experiment. Top of the data flow.
"""

from __future__ import annotations

from interp.cli.commands import main

__all__ = ["main"]
