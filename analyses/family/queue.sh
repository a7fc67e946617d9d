#!/bin/bash
# Train the arithmetic family (issue 21) one run at a time, in the order of $QUEUE, and ship
# each run as it finishes: per-checkpoint tables (analyses/family/checkpoint_tables.py) for
# every checkpoint, then the final float16 weights as a zoo entry (`interp zoo export`), the
# tables beside them (models/zoo/NAME/tables/) with the final checkpoint's head sets
# (analyses/family/head_sets.py, entries with an auxiliary), committed in $TARGET.
#
# Several copies may run at once (one per core, one torch thread each): a run is claimed with
# flock, so no two copies train the same entry, and an entry already in $TARGET/models/zoo/ is
# skipped. A killed copy resumes its run from the last checkpoint when started again
# (interp train resumes an existing run directory); tables and export are redone if missing.
#
# Run it from a checkout that stays still while it runs (a git worktree of main), with the
# shared venv and that checkout first on the path, committing into the main checkout:
#
#   cd /work/queue-wt && QUEUE=analyses/family/queue.txt TARGET=/work/main RUNS=/work/runs/family \
#     INTERP=/work/main/.venv/bin/interp PYTHON=/work/main/.venv/bin/python PYTHONPATH=$PWD \
#     nohup analyses/family/queue.sh > /work/runs/family-a.log 2>&1 &
#
# Queue lines: NAME [dense]; "dense" ships every checkpoint's weights too (two runs, for the
# notebooks); every other entry ships its final weights only (the tables hold the rest).
set -uo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/work/runs/family}
INTERP=${INTERP:-.venv/bin/interp}
PYTHON=${PYTHON:-.venv/bin/python}
QUEUE=${QUEUE:-analyses/family/queue.txt}
TARGET=${TARGET:-$PWD}
mkdir -p "$RUNS/locks"
while read -r name dense_flag; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  [[ -f "$TARGET/models/zoo/$name/zoo.json" ]] && continue
  exec 9>"$RUNS/locks/$name.lock"
  flock -n 9 || { exec 9>&-; continue; }
  echo "$(date -Is) start $name"
  t0=$(date +%s)
  if ! "$INTERP" train "models/zoo/specs/$name.toml" --out "$RUNS/$name" --quiet; then
    echo "$(date -Is) FAILED train $name"; exec 9>&-
    # No run directory: the spec was refused before training began (say, bf16 on a CPU without
    # bfloat16 matrix instructions), which every other entry would meet too.
    [[ -d "$RUNS/$name" ]] || { echo "$(date -Is) queue stopped: $name never started"; exit 1; }
    continue
  fi
  t1=$(date +%s)
  if [[ ! -f "$RUNS/$name/tables/heads_by_step.parquet" ]]; then
    if ! "$PYTHON" analyses/family/checkpoint_tables.py "$RUNS/$name" "$RUNS/$name/tables" \
        2> "$RUNS/$name.tables.log"; then
      echo "$(date -Is) FAILED tables $name"; exec 9>&-; continue
    fi
  fi
  steps=4000
  [[ "$dense_flag" == "dense" ]] && steps=""
  rm -rf "models/zoo/$name"  # what a killed export or head-set step left (no zoo.json in $TARGET)
  "$INTERP" zoo export "$RUNS/$name" "$name" ${steps:+--steps "$steps"} \
      > "$RUNS/$name.export.txt" 2>&1 \
    || { echo "$(date -Is) FAILED export $name"; exec 9>&-; continue; }
  cp -r "$RUNS/$name/tables" "models/zoo/$name/tables"
  # The final checkpoint's head sets, for entries with an auxiliary, so the entry lands complete;
  # a failure leaves them to a later `analyses/family/head_sets.py` call.
  if [[ "$name" != *_main_* ]] \
      && ! "$PYTHON" analyses/family/head_sets.py "$name" 2> "$RUNS/$name.head_sets.log"; then
    echo "$(date -Is) FAILED head sets $name (the entry ships without them)"
  fi
  if [[ "$(realpath "$TARGET")" != "$(realpath "$PWD")" ]]; then
    rm -rf "$TARGET/models/zoo/$name.tmp" && cp -r "models/zoo/$name" "$TARGET/models/zoo/$name.tmp" \
      && rm -rf "models/zoo/$name"
  else
    mv "models/zoo/$name" "models/zoo/$name.tmp"
  fi
  mv "$TARGET/models/zoo/$name.tmp" "$TARGET/models/zoo/$name"
  for try in 1 2 3 4 5 6 7 8 9 10; do
    if git -C "$TARGET" add "models/zoo/$name" && git -C "$TARGET" commit -q -m \
        "family: $name (interp train $(( (t1 - t0) / 60 )) min, tables, export and head sets $(( ($(date +%s) - t1) / 60 )) min)" \
        -- "models/zoo/$name"; then
      break
    fi
    sleep $((RANDOM % 10 + 3))
  done
  echo "$(date -Is) done $name in $(( $(date +%s) - t0 )) s"
  exec 9>&-
done < "$QUEUE"
echo "$(date -Is) queue finished"
