"""Shared pytest setup: every test starts from the same global random state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    # Code under test should take explicit generators; this only makes any stray use of the
    # global generators reproducible, so a failure replays identically.
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory: pytest.TempPathFactory):
    """The seconds-scale demo (``interp demo --quick``), run once per session: a sweep directory
    with a transfer run, its baseline, analysis tables and ``report.html``."""
    from interp.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "out"
    report = run_demo(out, quick=True, workers=2)
    return out, report
