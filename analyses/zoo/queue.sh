#!/bin/bash
# Train, export and commit the zoo's arithmetic group-A family (analyses/zoo/make_specs.py), one
# run at a time, in the order of analyses/zoo/queue.txt. Several copies may run at once (one per
# core, one torch thread each): a run is claimed with flock, so no two copies train the same entry,
# and an entry already in models/zoo/ is skipped. A killed copy resumes its run from the last
# checkpoint when started again (interp train resumes an existing run directory).
#
#   nohup analyses/zoo/queue.sh > /work/runs/queue-a.log 2>&1 &
#   RUNS=/somewhere nice -n 10 analyses/zoo/queue.sh ...     # a second, lower-priority copy
#   QUEUE=analyses/zoo/queue_r4.txt EXPORT=0 analyses/zoo/queue.sh   # the r4 family, train only
#   QUEUE=analyses/precision/queue.txt SPECS=analyses/precision/specs EXPORT=0 analyses/zoo/queue.sh
#
# EXPORT=0 trains without exporting or committing (a family staged in $RUNS until it is complete,
# so that the zoo never holds two families at once).
set -uo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/work/runs}
INTERP=${INTERP:-.venv/bin/interp}
QUEUE=${QUEUE:-analyses/zoo/queue.txt}
SPECS=${SPECS:-models/zoo/specs}
EXPORT=${EXPORT:-1}
mkdir -p "$RUNS/locks"
dense="1000,2000,2400,2800,3000,3200,3400,3600,3800,4000"
while read -r name dense_flag; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  [[ -f "models/zoo/$name/zoo.json" ]] && continue
  [[ "$EXPORT" == 0 && -f "$RUNS/$name/DONE" ]] && continue
  exec 9>"$RUNS/locks/$name.lock"
  flock -n 9 || { exec 9>&-; continue; }
  echo "$(date -Is) start $name"
  t0=$(date +%s)
  if ! "$INTERP" train "$SPECS/$name.toml" --out "$RUNS/$name" --quiet; then
    echo "$(date -Is) FAILED train $name"; exec 9>&-; continue
  fi
  if [[ "$EXPORT" == 0 ]]; then
    echo "$(date -Is) trained $name in $(( $(date +%s) - t0 )) s (not exported)"; exec 9>&-; continue
  fi
  steps=4000
  [[ "$dense_flag" == "dense" ]] && steps=$dense
  "$INTERP" zoo export "$RUNS/$name" "$name" --steps "$steps" > "$RUNS/$name.export.txt" 2>&1 \
    || { echo "$(date -Is) FAILED export $name"; exec 9>&-; continue; }
  for try in 1 2 3 4 5 6 7 8 9 10; do
    if git add "models/zoo/$name" && git commit -q -m "zoo: $name (trained by interp train, $(( ($(date +%s) - t0) / 60 )) min)" -- "models/zoo/$name"; then
      break
    fi
    sleep $((RANDOM % 10 + 3))
  done
  echo "$(date -Is) done $name in $(( $(date +%s) - t0 )) s"
  exec 9>&-
done < "$QUEUE"
echo "$(date -Is) queue finished"
