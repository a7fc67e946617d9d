"""The documentation: the site builds strictly, names every module, the README stays one screen
whose numbers are the shipped tables', and a notebook's figures are drawn outside JupyterLab.

The commands in the docs' ```bash blocks are run by ``tests/test_readme.py`` (same machinery,
same scratch directory as the README's).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PACKAGE = ROOT / "interp"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _modules() -> list[str]:
    """Every module of the package as ``interp.x`` (``interp.tasks.x`` for the tasks)."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__main__":  # `python -m interp.cli`: no API of its own
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            out.append(".".join(("interp", *parts)))
    return out


def test_every_module_is_on_the_contributor_page_and_in_the_api_reference():
    """A new module must be placed in the architecture and get an API page, or this fails."""
    contributing = (DOCS / "contributing.md").read_text(encoding="utf-8")
    reference = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "reference").glob("*.md"))
    top = [m for m in _modules() if m.count(".") == 1]
    missing_arch = [m for m in top if f"`{m}`" not in contributing]
    assert not missing_arch, f"not in docs/contributing.md's module table: {missing_arch}"
    # ...its folder in the data-flow drawing, and each of its modules in the module table
    drawn = [m for m in top if f"interp/{m.split('.')[1]}/" not in contributing]
    assert not drawn, drawn
    modules = [m for m in _modules() if m.count(".") == 2]
    missing_mod = [m for m in modules if f"`{m}`" not in contributing]
    assert not missing_mod, f"not in docs/contributing.md's module table: {missing_mod}"
    missing_ref = [m for m in _modules() if f"::: {m}\n" not in reference]
    assert not missing_ref, f"no API reference entry (docs/reference/*.md): {missing_ref}"


def test_readme_fits_on_a_screen_and_links_into_the_docs():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 10 * 1024
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), f"README links to a missing page: {link}"
    assert "(docs/contributing.md)" in text and "(docs/getting-started.md)" in text


def _readme_zoo_rows() -> dict[str, tuple[str, list[float]]]:
    """The README's zoo table: condition -> ("k/n", accuracies at the first transfer length)."""
    text = README.read_text(encoding="utf-8")
    rows = {}
    for cond, frac, accs in re.findall(
        r"^\| ([\w+]+)(?: \([^)]*\))? \| (\d+/\d+) \| ([\d. ]+) \|$", text, flags=re.M
    ):
        rows[cond] = (frac, [float(a) for a in accs.split()])
    return rows


def test_readme_zoo_numbers_are_the_shipped_table():
    """Every number in the README's zoo table is recomputed from
    analyses/family/conditions.parquet, the table `interp zoo family` writes from the family's
    shipped per-checkpoint tables, with the rule the demo uses; the demo's live part is the
    first ZOO_DEMO_SEEDS seeds of each condition, as the README says."""
    import pandas as pd

    from interp.core.resources import ZOO_DEMO_SEEDS, ZOO_FAMILY
    from interp.zoo import family

    df = pd.read_parquet(ROOT / "analyses" / "family" / "conditions.parquet")
    assert set(df["name"].str[: len(ZOO_FAMILY)]) == {ZOO_FAMILY}
    rows = _readme_zoo_rows()
    assert set(rows) == set(df["condition"]), (sorted(rows), sorted(set(df["condition"])))
    verdict = family.transfers(df)
    main = df[(df["length"] == df["transfer_lo"])]
    for cond, g in main.groupby("condition", sort=False):
        g = g.sort_values("seed")
        yes = int(verdict[g["name"]].sum())
        frac, accs = rows[cond]
        assert frac == f"{yes}/{len(g)}", cond
        assert accs == [round(float(a), 3) for a in g["accuracy"]], cond
    lo = int(df["transfer_lo"].min())
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert f"> {family.TRANSFER_THRESHOLD} at {lo}" in text
    assert f"accuracy at {lo} digits, one length past the main task's training range" in text
    assert set(df["n"]) == {256} and "(256 items per length" in text
    words = {3: "three", 5: "five"}
    n_cond = df["condition"].nunique()
    assert (
        f"`models/zoo/{ZOO_FAMILY}*`" in text
        and f"the first {words[ZOO_DEMO_SEEDS]} seeds of each of {words[n_cond]} conditions, "
        f"{ZOO_DEMO_SEEDS * n_cond} entries"
        in text
    )


def test_readme_describes_the_demo_it_runs():
    """The live part's lengths in the README are those of the spec `make demo` trains."""
    import tomllib

    spec = tomllib.loads((ROOT / "analyses" / "demo.toml").read_text())
    ((main_max, aux_max),) = spec["lengths"]
    assert spec["groups"] == ["arith_a"] and spec["baseline"] is True
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert (
        f"arithmetic group A (reverse add on 1..{main_max} digits, jointly with no carry + carry "
        f"only on 1..{aux_max}) and reverse add alone" in text
    )


def _mkdocs() -> str | None:
    exe = Path(sys.executable).with_name("mkdocs")
    return str(exe) if exe.is_file() else shutil.which("mkdocs")


@pytest.mark.skipif(
    _mkdocs() is None and not IN_CI,
    reason="needs the docs extra (pip install -e '.[docs]'); CI installs it and never skips",
)
def test_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``: a broken link, a missing anchor, a page outside the nav or a
    docstring mkdocstrings cannot read fails. Notebooks are rendered without executing them
    here (nbmake and the test below execute them)."""
    exe = _mkdocs()
    assert exe is not None, "CI=true but mkdocs is not installed (make test installs .[docs])"
    site = tmp_path / "site"
    env = {**os.environ, "DOCS_EXECUTE_NOTEBOOKS": "false", "DOCS_NOTEBOOK_CACHE": "false",
           "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}  # fmt: skip
    r = subprocess.run(
        [exe, "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    api = (site / "reference" / "scoring" / "index.html").read_text(encoding="utf-8")
    assert "interp.scoring.heads.score_heads" in api  # generated from the docstrings
    for nb in ("01_explore_heads", "02_ablation_sweep", "03_transfer_vs_overlap"):
        assert (site / "notebooks" / nb / "index.html").is_file(), nb
    # the results pages include the tables the commands wrote, not copies
    zoo = (site / "results" / "zoo" / "index.html").read_text(encoding="utf-8")
    assert "4/5 transfer" in zoo


NOTEBOOK = ROOT / "notebooks" / "01_explore_heads.ipynb"


@pytest.fixture(scope="module")
def notebook_html(tmp_path_factory) -> Path:
    """``NOTEBOOK`` executed and exported as ``jupyter nbconvert --to html`` would."""
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    from nbconvert.preprocessors import ExecutePreprocessor

    nb = nbformat.read(NOTEBOOK, as_version=4)
    ExecutePreprocessor(timeout=600, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    body, _ = nbconvert.HTMLExporter(template_name="lab").from_notebook_node(nb)
    out = tmp_path_factory.mktemp("nb") / "notebook.html"
    out.write_text(body, encoding="utf-8")
    return out


@pytest.mark.slow
def test_notebook_figures_are_html_with_plotly_embedded_once(notebook_html):
    text = notebook_html.read_text(encoding="utf-8")
    n_figs = len(re.findall(r'class="plotly-graph-div"', text))
    assert n_figs >= 5
    assert text.count("* plotly.js v") == 1  # embedded once, in the first figure
    # No figure loads a script from a network (plotly, MathJax): offline it would stay blank.
    # nbconvert's own template asks for require.js and MathJax in <head>; the outputs never do.
    body = text.split("</head>", 1)[1]
    assert not re.search(r"<script[^>]+src=", body), re.findall(r"<script[^>]+src=[^>]+>", body)


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("chromium-browser") is None and not IN_CI,
    reason="needs Debian's chromium (apt-get install chromium); CI installs it and never skips",
)
def test_notebook_html_draws_its_figures_in_headless_chromium(notebook_html, tmp_path):
    """The exported notebook, loaded offline in a real browser: every plotly figure has drawn
    its SVG, with no JavaScript error from the figures (the probe is the report test's)."""
    from test_report import CHROMIUM, PROBE, _chromium

    assert CHROMIUM is not None, "CI=true but chromium is not installed (.ci/run installs it)"
    text = notebook_html.read_text(encoding="utf-8")
    page = tmp_path / "notebook.html"
    page.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    n_figs = len(re.findall(r'class="plotly-graph-div"', text))
    dom = _chromium("--window-size=1200,2000", "--dump-dom", page.as_uri(), profile=tmp_path / "p")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, flags=re.S)
    assert found, f"the page never finished loading:\n{dom.stderr[-2000:]}"
    probe = json.loads(html.unescape(found.group(1)))
    # nbconvert's own template asks CDNs for require.js and MathJax; offline those fail to
    # load, which is not an error of the figures.
    errors = [e for e in probe["errors"] if "require" not in e and "MathJax" not in e]
    assert errors == []
    assert len(probe["figs"]) == n_figs
    assert all(svgs >= 1 for *_, svgs in probe["figs"]), probe["figs"]
