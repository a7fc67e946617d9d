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
