"""The HTML report: self-contained, every section present, and it renders in a real browser."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from interp.core.errors import InterpError
from interp.report.html_report import load_tables, write_report

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
# CI installs chromium (.ci/run); there a missing browser is a broken CI image, not a reason to
# skip the only check that the report's JavaScript actually runs.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Injected at the top of a copy of the report: records uncaught errors, rejected promises and
# console.error calls, then, once the page has loaded and plotly has drawn, appends a <pre> with
# them and the page position and SVG count of every figure, which --dump-dom then prints.
PROBE = """<script>
window.__errors = [];
addEventListener('error', e => __errors.push('error: ' + e.message));
addEventListener('unhandledrejection', e => __errors.push('rejection: ' + e.reason));
const __consoleError = console.error;
console.error = (...a) => { __errors.push('console.error: ' + a.join(' ')); __consoleError(...a); };
addEventListener('load', () => setTimeout(() => {
  const figs = [...document.querySelectorAll('.plotly-graph-div')].map(d => {
    const r = d.getBoundingClientRect();
    const svgs = d.querySelectorAll('.main-svg').length;
    return [r.left + scrollX, r.top + scrollY, r.width, r.height, svgs];
  });
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({errors: __errors, figs: figs,
                                    height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
}, 1000));
</script>"""


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def read_png(path) -> np.ndarray:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG (what chromium writes) to ``(h, w, c)``."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int64)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) % 256
        elif f == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1) % 256
        else:  # Average / Paeth depend on the pixel just decoded: one pixel at a time
            cur, vals, up = line.copy(), line.tolist(), prev.tolist()
            for i in range(stride):
                left = vals[i - bpp] if i >= bpp else 0
                ul = up[i - bpp] if i >= bpp else 0
                pred = (left + up[i]) // 2 if f == 3 else _paeth(left, up[i], ul)
                vals[i] = (vals[i] + pred) % 256
            cur = np.array(vals, dtype=np.int64)
        out[y] = cur
        prev = cur
    return out.reshape(h, w, bpp)


def _chromium(*args: str, profile) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", "--force-device-scale-factor=1",
        f"--user-data-dir={profile}", "--virtual-time-budget=20000",
    ]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=240)


@pytest.mark.skipif(
    CHROMIUM is None and not IN_CI,
    reason="needs Debian's chromium (apt-get install chromium); CI installs it and never skips",
)
def test_report_renders_in_headless_chromium(quick_demo, tmp_path):
    """The report's JavaScript runs without error and every plotly figure is drawn: counted in
    the live DOM, and checked for ink in a screenshot of where each figure sits."""
    assert CHROMIUM is not None, "CI=true but chromium is not installed (.ci/run installs it)"
    _, report = quick_demo
    text = report.read_text()
    page = tmp_path / "report.html"
    page.write_text(text.replace("<head>", "<head>" + PROBE, 1))
    n_figs = len(re.findall(r'class="plotly-graph-div"', text))
    assert n_figs >= 5

    # Both runs use the same window width, so the figures sit where the probe measured them.
    dom = _chromium("--window-size=1200,2000", "--dump-dom", page.as_uri(), profile=tmp_path / "p1")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, flags=re.S)
    assert found, f"the page never finished loading:\n{dom.stderr[-2000:]}"
    probe = json.loads(html.unescape(found.group(1)))
    assert probe["errors"] == []
    assert len(probe["figs"]) == n_figs
    assert all(svgs >= 1 for *_, svgs in probe["figs"]), probe["figs"]

    shot = tmp_path / "report.png"
    height = min(int(probe["height"]) + 10, 30000)
    _chromium(f"--window-size=1200,{height}", f"--screenshot={shot}", page.as_uri(),
              profile=tmp_path / "p2")  # fmt: skip
    img = read_png(shot)[..., :3].astype(np.int64)
    for x, y, w, h, _ in probe["figs"]:
        assert w > 50 and h > 50, (x, y, w, h)
        x0, y0 = int(x), int(y)
        area = img[y0 : y0 + int(h), x0 : x0 + int(w)]
        assert area.size, f"figure at {(x, y)} lies outside the {img.shape} screenshot"
        # A drawn figure has axes, text and data: many pixels far from its background colour.
        background = np.median(area.reshape(-1, 3), axis=0)
        ink = (np.abs(area - background).sum(axis=-1) > 60).mean()
        assert ink > 0.002, f"figure at {(x, y)} looks blank ({ink:.4%} ink)"


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


def test_untestable_rows_are_one_line_per_question_not_a_table_of_nan():
    """The live demo's case: every primary-test row is NaN with the same reason. The report says
    it once, in words, and draws no table; testable rows still get their table."""
    import pandas as pd

    from interp.report.doc import Doc
    from interp.report.html_report import _primary_section, _within_section

    reason = "not testable (n=1, too few runs)"
    between = pd.DataFrame(
        {
            "primary": [True] + [False] * 13,
            "method": ["mean_ablation"] * 14,
            "metric": ["exact_match"] * 14,
            "statistic": [f"s{i}" for i in range(14)],
            "estimate": np.nan,
            "p_value": np.nan,
            "n_runs": 1,
            "n_conditions": 1,
            "reason": reason,
        }
    )
    doc = Doc("t")
    _primary_section(doc, {"between": between})
    page = doc.render()
    assert "NaN" not in page and "<table" not in page
    assert page.count(reason) == 2  # the primary row in words, then one line for all 14 rows
    assert "all 14 rows" in page

    # Mixed: the testable row is tabled, the rest is one line per distinct reason.
    within = pd.DataFrame(
        {"kind": ["related", "control"], "mean": [0.3, np.nan], "p_value": [0.04, np.nan],
         "n_runs": [8, 2], "reason": ["", "not testable (n=2, the sign-flip test needs 6 runs)"]}
    )  # fmt: skip
    per = pd.DataFrame({"run": ["a", "b"], "value": [0.2, np.nan], "reason": ["", "excluded"]})
    doc = Doc("t")
    _within_section(doc, {"within": within, "within_runs": per})
    page = doc.render()
    assert page.count("<table") == 2 and "NaN" not in page
    assert "1 of 2 rows" in page and "needs 6 runs" in page and "excluded" in page
