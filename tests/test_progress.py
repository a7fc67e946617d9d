"""The analysis's progress lines: which stage runs on which run, how far along, and an ETA."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from interp.core.progress import (
    ACCURACY,
    BASELINE,
    CAUSAL_STAGES,
    OVERLAP,
    SCORES,
    StageProgress,
    format_seconds,
    run_plan,
    sweep_plan,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_plans_list_every_stage_in_order():
    assert run_plan("r", 2, scores=False) == [("r", ACCURACY), ("r", ACCURACY)]
    plan = run_plan("r", 2, causal=CAUSAL_STAGES)
    assert [s for _, s in plan] == [ACCURACY, SCORES, OVERLAP] * 2 + list(CAUSAL_STAGES)
    cells = [("a", "transfer", 8), ("b", "baseline", 8), ("c", "transfer", 0)]
    last_only = sweep_plan(cells, every_checkpoint=False, causal=True)
    assert last_only == [*run_plan("a", 1, causal=CAUSAL_STAGES), ("b", BASELINE)]
    assert len(sweep_plan(cells, every_checkpoint=True, causal=False)) == 8 * 3 + 1


def test_lines_say_stage_run_place_and_an_eta_learned_per_kind():
    clock, out = FakeClock(), io.StringIO()
    plan = [("r1", "fast"), ("r1", "slow"), ("r2", "fast"), ("r2", "slow"), ("r2", "new")]
    p = StageProgress(plan, stream=out, clock=clock)
    with p.stage("r1", "fast", "step 10"):
        clock.t += 2
    with p.stage("r1", "slow"):
        clock.t += 10
    with p.stage("r2", "fast"):
        clock.t += 4
    lines = out.getvalue().splitlines()
    assert lines[0] == "analyze [1/5] r1: fast (step 10) · 0:00 elapsed, ETA after the first stage"
    # after one fast stage (2 s): four left, each guessed at the mean so far (2 s)
    assert lines[1].endswith("0:02 elapsed, ~0:08 left")
    # fast 2 s, slow 10 s, mean 6 s: fast + slow + new = 2 + 10 + 6
    assert lines[2] == "analyze [3/5] r2: fast · 0:12 elapsed, ~0:18 left"
    # fast now averages 3 s; slow 10 s + new (mean of 2, 10, 4 = 5.33 s)
    assert p.eta() == pytest.approx(10 + 16 / 3)
    # A stage beyond the plan still gets a line, never a negative or missing count.
    for extra in ("slow", "new", "extra"):
        with p.stage("r2", extra):
            clock.t += 1
    assert out.getvalue().splitlines()[-1].startswith("analyze [6/6] r2: extra")


def test_disabled_progress_prints_nothing_but_still_times():
    out = io.StringIO()
    p = StageProgress([("r", ACCURACY)], enabled=False, stream=out)
    with p.stage("r", ACCURACY):
        pass
    assert out.getvalue() == "" and p.done == 1 and ACCURACY in p.durations


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 41.4, 185, 3723, -3)] == [
        "0:00", "0:41", "3:05", "1:02:03", "0:00"
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from interp.runs.spec import TrainSpec
    from interp.runs.train import train

    spec = TrainSpec.from_dict(
        {
            "name": "prog",
            "group": "arith_a",
            "main": "reverse_add",
            "tasks": [
                {"name": "reverse_add", "lengths": [1, 2]},
                {"name": "no_carry", "lengths": [1, 3]},
            ],
            "model": {"preset": "tiny"},
            "train": {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "log_every": 2},
            "eval": {"examples": 4},
        }
    )
    out = tmp_path_factory.mktemp("prog") / "run"
    train(spec, out, progress=False)
    return out


def test_analyze_run_reports_each_stage_of_each_checkpoint(run_dir: Path, capsys):
    """`interp analyze RUN`'s path: a line per stage and checkpoint, in the planned order."""
    from interp.runs.analysis import analyze_path

    analyze_path(run_dir, {"n_examples": 4, "k": 2, "causal": True}, progress=True)
    err = capsys.readouterr().err.replace("\r", "\n")  # the bar redraws with carriage returns
    lines = re.findall(r"^analyze \[(\d+)/(\d+)\] run: ([^(·]+?) (?:\((step \d+)\) )?·", err, re.M)
    assert [(int(i), s, d) for i, _, s, d in lines] == [
        (1, ACCURACY, "step 2"), (2, SCORES, "step 2"), (3, OVERLAP, "step 2"),
        (4, ACCURACY, "step 4"), (5, SCORES, "step 4"), (6, OVERLAP, "step 4"),
        (7, CAUSAL_STAGES[0], "step 4"),
    ]  # fmt: skip
    assert {int(n) for _, n, _, _ in lines} == {7}
    assert err.count(" left") == 6  # an ETA on every line after the first stage finished
