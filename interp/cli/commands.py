"""The ``interp`` command line.

Every subcommand is a thin wrapper over a public function of the package. A user error
(:class:`~interp.core.errors.InterpError`), an argument argparse rejects, or a file-system error
(``OSError``: a full disk, a read-only directory) prints one line ``interp: error: ...`` and
exits with code 2, never a traceback. ``interp sweep`` exits with 1 when cells failed (the count
is printed; ``failures.json`` has the errors). Commands that draw progress bars take ``--quiet``.

    interp tasks list | interp tasks show TASK --length N -n K
    interp groups list
    interp train SPEC --out RUN_DIR [--device auto|cpu|cuda[:N]|mps]
    interp eval RUN_DIR [--checkpoint STEP] [--lengths A:B] [--examples N] [--out DIR]
    interp score RUN_DIR --tasks T1,T2 --method M --metric K [--checkpoint STEP] [--lengths A:B]
        [--out DIR]
    interp overlap RUN_DIR [--k K] [--out DIR]
    interp sweep SPEC --out SWEEP_DIR [--executor local|ray] [--workers N] [--scale cpu|paper]
        [--analyze]
    interp analyze SWEEP_OR_RUN_DIR [--examples N] [--k K] [--no-causal] [--out DIR]
    interp report SWEEP_OR_RUN_DIR [--out HTML]
    interp zoo list | interp zoo train NAME [--out RUN_DIR] [--export]
    interp zoo export RUN_DIR NAME | interp zoo results [--prefix PREFIX] [--out DIR]
    interp demo --out DIR
    interp finetune SPEC --out DIR [--device cuda]

**Where outputs go.** ``eval``, ``score``, ``overlap`` and ``analyze`` write their tables into
RUN_DIR, or into ``--out DIR`` (an output folder made from the run, see
:func:`interp.runs.dir_kinds.outputs_dir`). RUN_DIR may be a shipped zoo entry
(``models/zoo/NAME``):
it is never written into, so its outputs go to ``--out`` or, by default,
``runs/zoo_outputs/NAME`` (under the current directory), where ``interp report
models/zoo/NAME`` finds them. Each writer refuses a directory of another
kind (a run, a sweep, a zoo entry, an experiment: :func:`interp.runs.dir_kinds.claim_dir`).

**Reproducibility.** ``interp train`` prints one ``interp: note: ...`` line when it starts with
a setting whose weights are not bit-reproducible (``[train] threads`` other than 1 on the CPU).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from interp.cli.parser import MAX_LENGTH, build_parser
from interp.core.errors import InterpError

_COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {}


def command(name: str) -> Callable:
    def deco(fn: Callable[[argparse.Namespace], int | None]) -> Callable:
        _COMMANDS[name] = fn
        return fn

    return deco


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
    from interp.core.device import resolve_device
    from interp.runs.spec import load_spec, reproducibility_note
    from interp.runs.train import train

    spec = load_spec(args.spec)
    note = reproducibility_note(spec, resolve_device(args.device or spec.train.device))
    if note:
        print(f"interp: {note}", file=sys.stderr)
    train(spec, args.out, resume=True, progress=not args.quiet, device=args.device)
    print(f"trained {spec.name}: {args.out}")


def _target(path: str, out: str | None) -> str:
    """Where a reading command writes: the run itself, ``--out``, or for a zoo entry its output
    folder (:func:`interp.runs.dir_kinds.outputs_dir`): a zoo entry is never written into."""
    from interp.runs.dir_kinds import outputs_dir

    return str(outputs_dir(path, out).path)


@command("eval")
def _eval(args: argparse.Namespace) -> None:
    from interp.runs.loader import eval_run

    args.run_dir = _target(args.run_dir, args.out)
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
    from interp.report import plots
    from interp.runs.dirs import RunDir

    rd = RunDir(args.run_dir)
    spec = rd.spec()
    step = int(acc["step"].iloc[0])
    ranges = {t: spec.train_range(t) for t in spec.task_names}
    fig = plots.accuracy_figure(acc, ranges, title=f"{spec.name} at step {step}")
    path = plots.write_html(fig, rd.eval_figure_path(step))
    print(f"table and figure: {path.parent}")


@command("score")
def _score(args: argparse.Namespace) -> None:
    from interp.runs.pipeline import score_run

    args.run_dir = _target(args.run_dir, args.out)
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
    from interp.report.plots import write_overlap_figures
    from interp.runs.pipeline import overlap_run

    args.run_dir = _target(args.run_dir, args.out)
    df = overlap_run(
        args.run_dir,
        checkpoint=args.checkpoint,
        k=args.k,
        device=args.device,
        batch_size=args.batch_size,
    )
    print(df.to_string(index=False))
    # The stage wrote the tables; the heatmaps are drawn from them (presentation).
    if len(df):
        write_overlap_figures(args.run_dir, int(df["step"].iloc[0]))


@command("sweep")
def _sweep(args: argparse.Namespace) -> int:
    from interp.report.html_report import write_report
    from interp.runs.analysis import analyze_sweep, save_config
    from interp.runs.analysis_spec import load_analysis_spec
    from interp.runs.dirs import SweepDir
    from interp.runs.sweep import run_sweep

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
        analyze_sweep(
            args.out, cfg, progress=not args.quiet, device=args.device, batch_size=args.batch_size
        )
        print(f"report: {write_report(args.out)}")
    if failures:
        if args.quiet:  # otherwise run_sweep has said so already
            print(
                f"interp: sweep: {len(failures)} of {attempted} cells failed; see "
                f"{SweepDir(args.out).failures_path}",
                file=sys.stderr,
            )
        return 1
    return 0


@command("analyze")
def _analyze(args: argparse.Namespace) -> None:
    from interp.runs.analysis import analyze_path

    overrides = {k: v for k, v in (("n_examples", args.examples), ("k", args.k)) if v is not None}
    if args.no_causal:
        overrides["causal"] = False
    from interp.runs.dirs import SweepDir, open_dir

    if isinstance(open_dir(args.path), SweepDir):  # (open_dir: neither a run nor a sweep)
        if args.out:
            raise InterpError(
                "--out is for a run directory or zoo entry; a sweep's tables go into it"
            )
    else:
        args.path = _target(args.path, args.out)

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
    from interp.report.html_report import write_report
    from interp.runs.dir_kinds import outputs_dir
    from interp.runs.dirs import is_shipped_entry

    if is_shipped_entry(args.path):
        # The tables `interp analyze` wrote to the entry's output folder; the report beside them.
        args.path = str(outputs_dir(args.path).path)
    path = write_report(args.path, out=args.out, progress=not args.quiet)
    print(f"report: {path}")


@command("results")
def _results(args: argparse.Namespace) -> None:
    import shutil

    from interp.core.io import write_parquet, write_text
    from interp.report import seed_tables as st

    acc, meta = st.read_tables(args.path)
    rows, gate = st.seed_rows(acc, meta), st.aux_gate(acc, meta)
    src = Path(args.path) / "analysis"
    out = Path(args.out) if args.out else Path(args.path)
    if out.resolve() != Path(args.path).resolve():
        # The shipped copy is sweep-shaped, so `interp results OUT` regenerates it from itself.
        (out / "analysis").mkdir(parents=True, exist_ok=True)
        for f in sorted(src.glob("*.parquet")):
            shutil.copyfile(f, out / "analysis" / f.name)
    md = st.seed_markdown(rows) + "\nAuxiliary gate (>= 0.9 at every own training length):\n\n"
    write_text(out / "results.md", md + st.gate_markdown(gate))
    write_parquet(out / "results.parquet", rows)
    write_parquet(out / "gate.parquet", gate)
    print(st.seed_markdown(rows))
    print(f"tables: {out / 'results.md'}, {out / 'results.parquet'}, {out / 'gate.parquet'}")


@command("zoo")
def _zoo(args: argparse.Namespace) -> None:
    from interp.zoo import registry as zoo

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
    if args.zoo_cmd == "prune":
        from interp.zoo.pruning import prune

        try:
            keep = [int(x) for x in args.keep.split(",")] if args.keep else None
        except ValueError:
            raise InterpError(f"--keep must look like A,B,C, got {args.keep!r}") from None
        dropped = prune(args.name, keep)
        left = ", ".join(map(str, zoo.checkpoints(args.name)))
        print(f"{args.name}: removed the weights of {len(dropped)} step(s); stored: {left}")
        return
    if args.zoo_cmd == "results":
        from interp.core.io import write_parquet, write_text
        from interp.zoo import family

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
    if args.zoo_cmd == "family":
        from interp.core.io import write_parquet, write_text
        from interp.report import family_results
        from interp.zoo import family_tables

        zoo.check_name(args.prefix.rstrip("_") or "x")
        tables = family_tables.analyze(args.prefix)
        out = Path(args.out)
        for key in ("results", "seeds", "runs", "arms", "conditions"):
            if key in tables:
                write_parquet(out / f"{key}.parquet", tables[key].reset_index(drop=True))
        write_text(out / "results.md", family_results.markdown(tables))
        print("\n".join(family_results.verdict_lines(tables)))
        print(f"tables: {out / 'results.md'}, {out}/{{results,seeds,runs,arms,conditions}}.parquet")
        return
    if args.zoo_cmd == "train":
        zoo.check_name(args.name)  # before it becomes part of the default --out path
        out = args.out or str(Path("runs") / "zoo" / args.name)
        path = zoo.train_entry(args.name, out, export=args.export, progress=not args.quiet)
        print(f"trained zoo entry {args.name}: {path}")
        return
    df = zoo.list_models()
    if df.empty:
        print("the model zoo is empty")
        return
    bad = df[df["problem"] != ""]
    df = df[df["problem"] == ""].copy()
    df["steps"] = [len(s) for s in df["steps"]]
    df = df.rename(columns={"steps": "ckpts"})
    df["transfer_acc"] = df["transfer_acc"].astype(float).round(3)
    cols = ["name", "condition", "seed", "ckpts", "final_step", "transfer_range", "transfer_acc"]
    if len(df):
        print(df[cols].to_string(index=False))
    for name, problem in zip(bad["name"], bad["problem"], strict=True):
        print(f"{name}: corrupt: {problem}")


@command("demo")
def _demo(args: argparse.Namespace) -> None:
    from interp.cli.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, device=args.device, progress=not args.quiet)


# --------------------------------------------------------------------------------------------
# interp finetune (issue 13): pretrained Llama-family checkpoints, self-contained block


@command("finetune")
def _finetune(args: argparse.Namespace) -> None:
    from interp.cli.finetune import finetune

    for line in finetune(args.spec, args.out, device=args.device, progress=not args.quiet):
        print(line)


def _close_bars() -> None:
    # A bar interrupted by an exception is still open; without this the error message would be
    # printed on the bar's line instead of its own.
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``interp`` console script."""
    parser = build_parser(__doc__.split("\n\n")[0])
    try:
        # Inside the try: an option's type check can meet the file system's refusal too.
        args = parser.parse_args(argv)
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
