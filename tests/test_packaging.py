"""A non-editable install finds the presets, the zoo and the analysis specs without a checkout.

The wheel is built from a copy of the sources and installed (without dependencies) into a fresh
virtual environment; the dependencies come from the running interpreter's site-packages through
``PYTHONPATH``, so nothing is downloaded. Everything then runs from a directory outside the
checkout, so only the installed package can answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

CHECK = """
import interp, sys
from pathlib import Path
from interp.core import resources
from interp.zoo import registry as zoo
from interp.models.factory import build_model
from interp.models.architecture import ModelConfig, load_preset
pkg = Path(interp.__file__).resolve().parent
assert str(pkg).startswith(sys.prefix), pkg
assert resources.presets_dir().is_relative_to(pkg), resources.presets_dir()
assert ModelConfig.from_dict(load_preset("tiny")).n_layers >= 1
names = zoo.names()
assert names and zoo.ZOO_DIR.is_relative_to(pkg), (names, zoo.ZOO_DIR)
model, cfg = zoo.load(names[0])
assert model.cfg.n_layers == cfg.n_layers
assert (resources.analyses_dir() / "demo.toml").is_file()
print("installed", pkg)
"""


def _copy_sources(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", ".*", "*.egg-info", "build")
    for name in ("interp", "models", "analyses"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)


def test_wheel_installs_with_its_data(tmp_path: Path):
    pytest.importorskip("setuptools")
    src, wheels, venv, work = (tmp_path / d for d in ("src", "wheels", "venv", "work"))
    _copy_sources(src)
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("interp-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps",
         "--no-index", str(wheel)],
        check=True,
    )  # fmt: skip
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "INTERP_DATA", "VIRTUAL_ENV")
    }
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]  # the dependencies, not interp
    out = subprocess.run([str(py), "-c", CHECK], cwd=work, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "installed" in out.stdout
    cli = subprocess.run(
        [str(venv / "bin" / "interp"), "zoo", "list"], cwd=work, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "transfer_acc" in cli.stdout
