"""The ``interp`` command line.

Every subcommand is a thin wrapper over a public function of the package. A user error
(:class:`~interp.errors.InterpError`), an argument argparse rejects, or a file-system error
(``OSError``: a full disk, a read-only directory) prints one line ``interp: error: ...`` and
exits with code 2, never a traceback. ``interp sweep`` exits with 1 when cells failed (the count
is printed; ``failures.json`` has the errors). Commands that draw progress bars take ``--quiet``.

    interp tasks list | interp tasks show TASK --length N -n K
    interp groups list
    interp train SPEC --out RUN_DIR [--device auto|cpu|cuda[:N]|mps]
    interp eval RUN_DIR [--checkpoint STEP] [--lengths A:B] [--examples N]
    interp score RUN_DIR --tasks T1,T2 --method M --metric K [--checkpoint STEP] [--lengths A:B]
    interp overlap RUN_DIR [--k K]
    interp sweep SPEC --out SWEEP_DIR [--executor local|ray] [--workers N] [--scale cpu|paper]
        [--analyze]
    interp analyze SWEEP_OR_RUN_DIR [--examples N] [--k K] [--no-causal]
    interp report SWEEP_OR_RUN_DIR
    interp zoo list | interp zoo train NAME [--out RUN_DIR] [--export]
    interp zoo export RUN_DIR NAME | interp zoo results [--prefix a4_] [--out DIR]
    interp demo --out DIR
    interp finetune SPEC --out DIR [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from interp.errors import InterpError

_COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {}


def command(name: str) -> Callable:
    def deco(fn: Callable[[argparse.Namespace], int | None]) -> Callable:
        _COMMANDS[name] = fn
        return fn

    return deco


# Bounds that catch typos before they exhaust memory or never finish; far above any use here.
MAX_LENGTH = 10_000
MAX_COUNT = 100_000
SEED_MAX = 2**32 - 1


def parse_lengths(text: str | None) -> list[int] | None:
    """Parse ``A:B`` (inclusive) or ``A,B,C`` into a list of lengths in ``1..MAX_LENGTH``."""
    if text is None:
        return None
    try:
        if ":" in text:
            a, b = text.split(":")
            lo, hi = int(a), int(b)
            if lo > hi:
                raise ValueError
            values = [lo, hi]
        else:
            values = [int(x) for x in text.split(",")]
    except ValueError:
        raise InterpError(
            f"--lengths must look like A:B or A,B,C with A<=B, got {text!r}"
        ) from None
    if not all(1 <= v <= MAX_LENGTH for v in values):
        raise InterpError(f"--lengths must lie in 1..{MAX_LENGTH}, got {text!r}")
    return list(range(values[0], values[1] + 1)) if ":" in text else values


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
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    return text


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


@command("tasks")
def _tasks(args: argparse.Namespace) -> None:
    from interp.tasks import get_task, list_tasks

    if args.tasks_cmd == "list":
        for name in list_tasks():
            t = get_task(name)
            rng = f"{t.min_length}..{t.max_length}"
            print(f"{name:20s} {t.family:11s} lengths {rng:7s} {t.description}")
    else:
        task = get_task(args.task)
        for ex in task.sample_many(args.length, args.n, args.seed):
            print(ex.text)


@command("groups")
def _groups(args: argparse.Namespace) -> None:
    from interp.tasks import get_group, list_groups

    for name in list_groups():
        g = get_group(name)
        print(
            f"{name:10s} {g.kind:8s} main {g.main} (<= {g.main_max})  "
            f"aux {' + '.join(g.aux)} (<= {g.aux_max})"
        )


@command("train")
def _train(args: argparse.Namespace) -> None:
    from interp.spec import load_spec
    from interp.train import train

    spec = load_spec(args.spec)
    train(spec, args.out, resume=True, progress=not args.quiet, device=args.device)
    print(f"trained {spec.name}: {args.out}")


@command("eval")
def _eval(args: argparse.Namespace) -> None:
    from interp.evaluate import eval_run

    acc = eval_run(
        args.run_dir,
        checkpoint=args.checkpoint,
        lengths=parse_lengths(args.lengths),
        n_examples=args.examples,
        progress=not args.quiet,
        device=args.device,
        batch_size=args.batch_size,
    )
    pivot = acc.pivot_table(index="length", columns="task", values="accuracy")
    print(pivot.round(3).to_string())
    from interp import plots
    from interp.runs import read_run_spec

    spec = read_run_spec(args.run_dir)
    step = int(acc["step"].iloc[0])
    ranges = {t: spec.train_range(t) for t in spec.task_names}
    fig = plots.accuracy_figure(acc, ranges, title=f"{spec.name} at step {step}")
    path = plots.write_html(fig, Path(args.run_dir) / "eval" / f"accuracy_step_{step:06d}.html")
    print(f"table and figure: {path.parent}")


@command("score")
def _score(args: argparse.Namespace) -> None:
    from interp.pipeline import score_run

    df = score_run(
        args.run_dir,
        tasks=args.tasks.split(",") if args.tasks else None,
        methods=args.method.split(","),
        metrics=args.metric.split(","),
        checkpoint=args.checkpoint,
        lengths=parse_lengths(args.lengths),
        n_examples=args.examples,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    print(df.pivot_table(index=["layer", "head"], columns="task", values="score").round(3))


@command("overlap")
def _overlap(args: argparse.Namespace) -> None:
    from interp.pipeline import overlap_run

    df = overlap_run(
        args.run_dir,
        checkpoint=args.checkpoint,
        k=args.k,
        device=args.device,
        batch_size=args.batch_size,
    )
    print(df.to_string(index=False))


@command("sweep")
def _sweep(args: argparse.Namespace) -> int:
    from interp.analysis import analyze_sweep, load_analysis_spec, save_config
    from interp.report import write_report
    from interp.sweep import run_sweep

    # One format: a sweep spec, optionally with [analysis] (what --analyze measures) and
    # [paper] (what --scale paper changes). Both are validated before anything trains.
    sweep_spec, cfg = load_analysis_spec(args.spec, scale=args.scale)
    df = run_sweep(
        sweep_spec,
        args.out,
        executor=args.executor,
        workers=args.workers,
        address=args.address,
        device=args.device,
        gpus_per_cell=args.gpus_per_cell,
        progress=not args.quiet,
    )
    save_config(args.out, cfg)
    failures, attempted = df.attrs["failures"], df.attrs["attempted"]
    print(f"sweep trained: {df['run'].nunique() if len(df) else 0} runs -> {args.out}")
    if args.analyze and not (failures and len(failures) == attempted):
        analyze_sweep(args.out, cfg, progress=not args.quiet)
        print(f"report: {write_report(args.out)}")
    if failures:
        if args.quiet:  # otherwise run_sweep has said so already
            print(
                f"interp: sweep: {len(failures)} of {attempted} cells failed; see "
                f"{Path(args.out) / 'failures.json'}",
                file=sys.stderr,
            )
        return 1
    return 0


@command("analyze")
def _analyze(args: argparse.Namespace) -> None:
    from interp.analysis import analyze_path

    overrides = {k: v for k, v in (("n_examples", args.examples), ("k", args.k)) if v is not None}
    if args.no_causal:
        overrides["causal"] = False
    from interp.rundir import open_dir

    tables = analyze_path(
        args.path,
        overrides,
        progress=not args.quiet,
        device=args.device,
        batch_size=args.batch_size,
    )
    out = open_dir(args.path).analysis_dir
    print(f"analysis tables ({', '.join(sorted(tables))}): {out}")


@command("report")
def _report(args: argparse.Namespace) -> None:
    from interp.report import write_report

    path = write_report(args.path, out=args.out, progress=not args.quiet)
    print(f"report: {path}")


@command("zoo")
def _zoo(args: argparse.Namespace) -> None:
    from interp import zoo

    if args.zoo_cmd == "export":
        if not args.run_dir or not args.name:
            raise InterpError("usage: interp zoo export RUN_DIR NAME [--steps A,B,C]")
        try:
            steps = [int(x) for x in args.steps.split(",")] if args.steps else None
        except ValueError:
            raise InterpError(f"--steps must look like A,B,C, got {args.steps!r}") from None
        path = zoo.export_run(
            args.run_dir,
            args.name,
            steps,
            n_examples=args.examples,
            description=args.description,
            notes=args.notes,
        )
        print(f"exported {args.run_dir} -> {path}")
        print(zoo.card(args.name, path.parent))
        return
    if args.zoo_cmd == "results":
        from interp import family
        from interp.io import write_parquet, write_text

        wanted = [n for n in zoo.names() if n.startswith(args.prefix)]
        if not wanted:
            raise InterpError(f"no zoo entry starts with {args.prefix!r}")
        df = family.family_accuracy(
            wanted, n_examples=args.examples, main_only=False, progress=not args.quiet
        )
        out = Path(args.out)
        write_parquet(out / "results.parquet", df)
        main_task = zoo.spec(wanted[0]).main
        gate = family.aux_gate(df)
        md = family.condition_table(df, main_task) + "\n\n" + family.markdown(gate)
        write_text(out / "results.md", md + "\n")
        print(family.condition_table(df, main_task, ci=False))
        print(f"\nauxiliary gate (>= {family.AUX_GATE} at every own training length):")
        print(gate.to_string(index=False))
        print(f"tables: {out / 'results.parquet'}, {out / 'results.md'}")
        return
    if args.zoo_cmd == "train":
        out = args.out or str(Path("runs") / "zoo" / args.name)
        path = zoo.train_entry(args.name, out, export=args.export, progress=not args.quiet)
        print(f"trained zoo entry {args.name}: {path}")
        return
    df = zoo.list_models()
    if df.empty:
        print("the model zoo is empty")
        return
    df["steps"] = [len(s) for s in df["steps"]]
    df = df.rename(columns={"steps": "ckpts"})
    df["transfer_acc"] = df["transfer_acc"].round(3)
    cols = ["name", "condition", "seed", "ckpts", "final_step", "transfer_range", "transfer_acc"]
    print(df[cols].to_string(index=False))


@command("demo")
def _demo(args: argparse.Namespace) -> None:
    from interp.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, device=args.device, progress=not args.quiet)


# --------------------------------------------------------------------------------------------
# interp finetune (issue 13): pretrained Llama-family checkpoints, self-contained block


@command("finetune")
def _finetune(args: argparse.Namespace) -> None:
    from interp.finetune import finetune

    for line in finetune(args.spec, args.out, device=args.device, progress=not args.quiet):
        print(line)


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


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="interp", description=__doc__.split("\n\n")[0])
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

    ov = sub.add_parser("overlap", help="head-overlap statistics between the run's tasks")
    ov.add_argument("run_dir")
    ov.add_argument("--checkpoint", type=_int_in(0, 10**9))
    ov.add_argument("--k", type=_positive, default=4)
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
        help="ray executor on CUDA: GPUs per cell, a fraction packs cells onto a GPU (default 1)",
    )

    an = sub.add_parser("analyze", help="accuracy, head scores, overlap, transfer tables")
    an.add_argument("path", help="a run or sweep directory")
    an.add_argument("--examples", type=_positive, help="examples per length (default 128)")
    an.add_argument("--k", type=_positive, help="top-k for the Jaccard overlap (default 4)")
    an.add_argument("--no-causal", action="store_true", help="skip the causal shared-head test")
    an.add_argument("--quiet", action="store_true", help="no progress bars")
    _device_args(an)

    rp = sub.add_parser("report", help="write a self-contained HTML report")
    rp.add_argument("path", help="a run or sweep directory")
    rp.add_argument("--out", help="output HTML path (default: PATH/report.html)")
    rp.add_argument("--quiet", action="store_true", help="no progress bars")

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
    zr.add_argument("--prefix", default="a4_", help="entries whose name starts with this")
    zr.add_argument("--examples", type=_positive, default=1024, help="examples per length")
    zr.add_argument("--out", default="analyses/zoo", help="folder for results.parquet/.md")
    zr.add_argument("--quiet", action="store_true")
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


def _close_bars() -> None:
    # A bar interrupted by an exception is still open; without this the error message would be
    # printed on the bar's line instead of its own.
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``interp`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = _COMMANDS[args.command](args)
    except InterpError as e:
        _close_bars()
        print(f"interp: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # The file system refused (a full disk, a read-only or vanished directory): the
        # user's environment, not a bug, so one line rather than a traceback.
        _close_bars()
        where = f": {e.filename}" if e.filename else ""
        print(f"interp: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_bars()
        print("interp: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
