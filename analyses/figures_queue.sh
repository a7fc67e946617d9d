#!/bin/bash
# Issue 25's CPU-scale figures, one sweep after another on one core (one worker, one torch thread):
#   RUNS=/work/runs nohup analyses/figures_queue.sh > /work/runs/figures.log 2>&1 &
# Each sweep resumes where it stopped (finished cells are skipped, a killed cell resumes from its
# last checkpoint), so after any interruption the same command continues the queue.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
INTERP=${INTERP:-.venv/bin/interp}
export OMP_NUM_THREADS=1
for spec in ${SPECS:-fig12_rope_vs_nope fig4_strings fig12_strings_nope}; do
  echo "$(date -Is) start $spec"
  if "$INTERP" sweep "analyses/$spec.toml" --out "$RUNS/$spec" --workers 1 --analyze --quiet; then
    echo "$(date -Is) done $spec"
  else
    echo "$(date -Is) FAILED $spec (rc $?)"
  fi
done
echo "$(date -Is) queue finished"
