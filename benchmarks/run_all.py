"""Run every ``benchmarks/bench_*.py`` script and collect their markdown output (``make bench``).

Each script runs in its own process with this interpreter (so one benchmark's thread settings or
allocator state cannot bias the next), in name order. The collected report, one section per
script with its wall time, is printed and optionally written to a file; the exit status is
non-zero if any script failed.

Run: ``.venv/bin/python benchmarks/run_all.py [--out report.md] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts(only: list[str] | None) -> list[Path]:
    """The benchmark scripts, optionally filtered by substrings of their names."""
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        found = [p for p in found if any(s in p.name for s in only)]
    return found


def run(script: Path) -> tuple[int, str, float]:
    """Run one script from the repository root; returns (exit code, report text, seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    text = proc.stdout.strip()
    if proc.returncode:
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        text += f"\n\n**FAILED** (exit code {proc.returncode}):\n\n```\n{tail}\n```"
    return proc.returncode, text, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    ap.add_argument("--only", nargs="*", default=None, help="substrings of script names to run")
    args = ap.parse_args()
    todo = scripts(args.only)
    if not todo:
        print("no benchmark scripts matched", file=sys.stderr)
        return 2
    import torch  # imported here only to report the version

    parts = [
        f"# Benchmarks\n\n{platform.platform()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    ]
    print(parts[0] + "\n", flush=True)
    failed = []
    for script in todo:
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        code, text, secs = run(script)
        if code:
            failed.append(script.name)
        section = f"## {script.name} ({secs:.0f} s)\n\n{text}"
        parts.append(section)
        print(section + "\n", flush=True)
    report = "\n\n".join(parts) + "\n"
    if args.out:
        args.out.write_text(report)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
