"""The HTML report: self-contained, every section present, and it renders in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from interp.errors import InterpError
from interp.report import load_tables, write_report

pytestmark = pytest.mark.slow


def test_report_is_self_contained(quick_demo):
    _, report = quick_demo
    text = report.read_text()
    # plotly.js embedded exactly once (opens offline), many figures.
    assert text.count("plotly.js v") >= 1
    assert len(re.findall(r'class="plotly-graph-div"', text)) >= 5
    assert not re.search(r"<script[^>]+src=", text)  # no external scripts
    for heading in ("Length generalization", "Generalization gap", "Head importance",
                    "Overlap and gap over training", "Causal test"):  # fmt: skip
        assert heading in text


def test_report_from_run_dir_and_bad_dirs(quick_demo, tmp_path):
    out, _ = quick_demo
    run = next(p for p in (out / "runs").iterdir() if not p.name.startswith("baseline"))
    dest = write_report(run, tmp_path / "run.html")
    assert "Head importance" in dest.read_text()
    with pytest.raises(InterpError, match="neither a run directory nor a sweep"):
        load_tables(tmp_path)
    with pytest.raises(InterpError, match="not found"):
        load_tables(tmp_path / "missing")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(quick_demo, tmp_path):
    """Plotly builds its SVGs only when the page's JavaScript runs: count them in the live DOM."""
    _, report = quick_demo
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
    ]  # fmt: skip
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    n_figs = len(re.findall(r'class="plotly-graph-div"', report.read_text()))
    assert dom.stdout.count('class="main-svg"') >= n_figs
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=1200,2000", f"--screenshot={shot}", report.as_uri()],
        capture_output=True, timeout=180,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 20_000


def test_report_stage_only_reads_tables(tmp_path):
    """Without tables the report refuses (it never analyses on its own); only write_report's
    ``analyze`` flag, which ``interp report`` leaves on, runs the analysis first."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(InterpError, match=r"run `interp analyze .*run` first"):
        load_tables(run)
    with pytest.raises(InterpError, match="interp analyze"):
        write_report(run, analyze=False)
