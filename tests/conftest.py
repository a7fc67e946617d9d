"""Shared pytest setup: every test starts from the same global random state."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    # Tests use tiny models, which gain nothing from intra-op threads; on a shared 2-core
    # machine thread contention made them up to ~10x slower. Restored after the session.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
