"""The ``interp`` command line's argument parser: subcommands, options and their checks.

:mod:`interp.cli.commands` runs the commands; this module only declares them. Option types refuse
bad
values with argparse's one-line error (``interp: error: ...``, exit 2): counts must be positive
and bounded (a typo must not exhaust memory), ``--out`` must not name an existing file.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from interp.core.resources import ZOO_FAMILY

# Bounds that catch typos before they exhaust memory or never finish; far above any use here.
MAX_LENGTH = 10_000
MAX_COUNT = 100_000
SEED_MAX = 2**32 - 1


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``lo..hi`` (the message names the valid range)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {text!r}")
        return v

    return parse


_positive = _int_in(1, MAX_COUNT)
_seed = _int_in(0, SEED_MAX)


def _out_dir(text: str) -> str:
    """An argparse type for ``--out``: not empty, and not an existing file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a directory, got an empty path")
    try:
        if Path(text).exists() and not Path(text).is_dir():
            raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    except OSError as e:  # e.g. a component longer than the file system allows
        raise argparse.ArgumentTypeError(f"{e.strerror or e}: {text}") from None
    return text


_OUT_HELP = (
    "folder for the tables and figures instead of RUN_DIR itself; a shipped zoo entry "
    "(models/zoo/NAME) is never written into (default for one: runs/zoo_outputs/NAME)"
)


def _device_args(p: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """``--device`` (and ``--batch-size``): where models run, and rows per forward pass."""
    p.add_argument(
        "--device",
        help="auto (default: CUDA if available, else CPU), cpu, cuda, cuda:N or mps; "
        "default: the run's [train] device",
    )
    if batch_size:
        p.add_argument(
            "--batch-size",
            type=_positive,
            help="rows per forward pass (default: 512 on CPU, 4096 on GPU)",
        )


def _add_finetune_parser(sub: argparse._SubParsersAction) -> None:
    ft = sub.add_parser(
        "finetune",
        help="fine-tune local pretrained checkpoints (an experiment spec, or a run spec with "
        "[model] pretrained)",
    )
    ft.add_argument("spec")
    ft.add_argument("--out", required=True, help="output directory (resumed if it exists)")
    ft.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ft.add_argument("--quiet", action="store_true")


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The ``interp`` argument parser: every subcommand and its options."""
    p = _Parser(prog="interp", description=description)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tasks", help="list tasks or show examples")
    tsub = t.add_subparsers(dest="tasks_cmd", required=True)
    tsub.add_parser("list", help="list every task")
    show = tsub.add_parser("show", help="print examples of a task")
    show.add_argument("task")
    show.add_argument("--length", type=_int_in(0, MAX_LENGTH), required=True)
    show.add_argument("-n", type=_positive, default=3, help="number of examples")
    show.add_argument("--seed", type=_seed, default=0)

    sub.add_parser("groups", help="list task groups").add_argument(
        "groups_cmd", nargs="?", choices=["list"], default="list"
    )

    tr = sub.add_parser("train", help="train a run from a spec file")
    tr.add_argument("spec")
    tr.add_argument(
        "--out", required=True, type=_out_dir, help="run directory (resumed if it exists)"
    )
    tr.add_argument("--quiet", action="store_true")
    _device_args(tr, batch_size=False)

    ev = sub.add_parser("eval", help="accuracy per task and length")
    ev.add_argument("run_dir")
    ev.add_argument("--checkpoint", type=_int_in(0, 10**9))
    ev.add_argument("--lengths", help="A:B or A,B,C")
    ev.add_argument("--examples", type=_positive, help="examples per length (default 1024)")
    ev.add_argument("--quiet", action="store_true")
    ev.add_argument("--out", type=_out_dir, help=_OUT_HELP)
    _device_args(ev)

    sc = sub.add_parser("score", help="score every head per task")
    sc.add_argument("run_dir")
    sc.add_argument("--tasks", help="comma-separated (default: the run's tasks)")
    sc.add_argument("--method", default="mean_ablation", help="comma-separated methods")
    sc.add_argument("--metric", default="exact_match", help="comma-separated metrics")
    sc.add_argument("--checkpoint", type=_int_in(0, 10**9))
    sc.add_argument("--lengths", help="A:B or A,B,C")
    sc.add_argument("--examples", type=_positive, default=256)
    _device_args(sc)
    sc.add_argument("--quiet", action="store_true", help="no progress bar")
    sc.add_argument("--out", type=_out_dir, help=_OUT_HELP)

    ov = sub.add_parser("overlap", help="head-overlap statistics between the run's tasks")
    ov.add_argument("run_dir")
    ov.add_argument("--checkpoint", type=_int_in(0, 10**9))
    ov.add_argument("--k", type=_positive, default=4)
    ov.add_argument("--out", type=_out_dir, help=_OUT_HELP)
    _device_args(ov)

    sw = sub.add_parser("sweep", help="run a grid of training runs")
    sw.add_argument("spec")
    sw.add_argument("--out", required=True, type=_out_dir)
    sw.add_argument("--executor", default="local")
    sw.add_argument("--workers", type=_positive)
    sw.add_argument("--address", help="Ray cluster address (ray executor)")
    sw.add_argument(
        "--scale", default="cpu", choices=["cpu", "paper"], help="paper: apply the [paper] table"
    )
    sw.add_argument("--analyze", action="store_true", help="then analyse and write the report")
    sw.add_argument("--quiet", action="store_true", help="no progress bars")
    _device_args(sw)
    sw.add_argument(
        "--gpus-per-cell",
        type=float,
        default=1.0,
        help="on CUDA: GPUs per cell, a fraction packs cells onto a GPU (default 1)",
    )

    an = sub.add_parser("analyze", help="accuracy, head scores, overlap, transfer tables")
    an.add_argument("path", help="a run or sweep directory")
    an.add_argument("--examples", type=_positive, help="examples per length (default 128)")
    an.add_argument("--k", type=_positive, help="top-k for the Jaccard overlap (default 4)")
    an.add_argument("--no-causal", action="store_true", help="skip the causal shared-head test")
    an.add_argument("--quiet", action="store_true", help="no progress bars")
    an.add_argument("--out", type=_out_dir, help=_OUT_HELP + "; not for a sweep")
    _device_args(an)

    rp = sub.add_parser("report", help="write a self-contained HTML report")
    rp.add_argument("path", help="a run or sweep directory, or a zoo entry")
    rp.add_argument(
        "--out",
        help="output HTML path (default: PATH/report.html; for a zoo entry, in its output "
        "folder runs/zoo_outputs/NAME, where `interp analyze` put the tables)",
    )
    rp.add_argument("--quiet", action="store_true", help="no progress bars")

    rs = sub.add_parser(
        "results", help="per-seed accuracy tables of an analysed sweep (no model run)"
    )
    rs.add_argument("path", help="an analysed sweep directory (or a shipped copy of one)")
    rs.add_argument(
        "--out", help="folder for results.md/.parquet and a copy of the analysis tables"
    )

    zo = sub.add_parser("zoo", help="list the model zoo, retrain an entry, or export a run")
    zo.set_defaults(zoo_cmd="list")
    zsub = zo.add_subparsers(dest="zoo_cmd")
    zsub.add_parser("list", help="one line per entry: condition, seed, transfer accuracy")
    zt = zsub.add_parser("train", help="retrain an entry from models/zoo/specs/NAME.toml")
    zt.add_argument("name")
    zt.add_argument("--out", help="run directory (default runs/zoo/NAME; resumed if it exists)")
    zt.add_argument("--export", action="store_true", help="then replace the zoo entry")
    zt.add_argument("--quiet", action="store_true")
    zr = zsub.add_parser("results", help="per-condition transfer table of a zoo family")
    zr.add_argument("--prefix", default=ZOO_FAMILY, help="entries whose name starts with this")
    zr.add_argument("--examples", type=_positive, default=1024, help="examples per length")
    zr.add_argument("--out", default="analyses/zoo", help="folder for results.parquet/.md")
    zr.add_argument("--quiet", action="store_true")
    zf = zsub.add_parser(
        "family", help="the family's tests from its shipped per-checkpoint tables (no model run)"
    )
    zf.add_argument("--prefix", default="b4_", help="the family's name prefix")
    zf.add_argument("--out", default="analyses/family", help="folder for results.parquet/.md")
    zp = zsub.add_parser("prune", help="remove an entry's intermediate weights (its tables stay)")
    zp.add_argument("name")
    zp.add_argument("--keep", help="steps whose weights stay, A,B,C (default: the final step)")
    zx = zsub.add_parser("export", help="turn a finished run into a zoo entry")
    zx.add_argument("run_dir", nargs="?", help="the finished run directory")
    zx.add_argument("name", nargs="?", help="the zoo entry name")
    zx.add_argument("--steps", help="checkpoint steps, A,B,C (default: all)")
    zx.add_argument("--examples", type=_positive, default=256, help="examples per length")
    zx.add_argument("--description", help="one line for `interp zoo list`")
    zx.add_argument("--notes", help="caveats for the model card's Notes section")

    de = sub.add_parser("demo", help="the main job end to end on the CPU preset")
    de.add_argument("--out", default="demo-output", type=_out_dir)
    de.add_argument("--quick", action="store_true", help="a seconds-long smoke version")
    _device_args(de, batch_size=False)
    _add_finetune_parser(sub)
    de.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


class _Parser(argparse.ArgumentParser):
    """argparse with the package's error format: one line ``interp: error: ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("interp").strip()
        hint = f" (see: interp {where} --help)" if where else " (see: interp --help)"
        self.exit(2, f"interp: error: {where + ': ' if where else ''}{message}{hint}\n")
