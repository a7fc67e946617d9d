"""Head sets for the family's entries (issue 21; ``analyses/family/PLAN.md`` section 7).

For every ``b4_*`` zoo entry with an auxiliary (observational runs and intervention arms alike)
this ablates every head set of size 1..3 at the final checkpoint, from the entry's shipped
float16 weights (:func:`interp.runs.causal_runs.head_sets_for_run`, 128 items per length, the
main task's range 1..6 and the transfer range 7..12), and writes the sets with the run's slope
to ``models/zoo/NAME/tables/head_sets.parquet``, beside the per-checkpoint tables, so
``interp zoo family`` can run the head-set sign-flip test without a model. An entry that has the
file already is skipped, so the script can be rerun as entries land.

    .venv/bin/python analyses/family/head_sets.py [NAME ...]   # default: every entry missing it
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from interp.core.io import write_parquet
from interp.runs.analysis_spec import AnalysisConfig
from interp.runs.causal_runs import head_sets_for_run
from interp.zoo import family_tables as ft
from interp.zoo import registry as zoo

N_EXAMPLES = 128


def pending() -> list[str]:
    """Entries of the family with auxiliaries and tables but no head sets yet."""
    out = []
    for name in zoo.names():
        if not name.startswith(ft.PREFIX) or not ft.has_tables(name):
            continue
        if zoo.spec(name).aux and not (ft.tables_dir(name) / ft.HEAD_SETS_FILE).is_file():
            out.append(name)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="zoo entries (default: every one missing the file)")
    a = p.parse_args()
    torch.set_num_threads(1)
    cfg = AnalysisConfig(n_examples=N_EXAMPLES)
    for name in a.names or pending():
        t0 = time.perf_counter()
        df = head_sets_for_run(zoo.entry_dir(name), cfg)
        write_parquet(ft.tables_dir(name) / ft.HEAD_SETS_FILE, df.assign(run=name))
        print(f"{name}: {len(df)} sets in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
