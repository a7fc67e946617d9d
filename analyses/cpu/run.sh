#!/bin/bash
# Train one spec at one seed and evaluate its final checkpoint on 1024 examples per length.
# usage: analyses/cpu/run.sh SPEC.toml SEED RUN_DIR
# Writes RUN_DIR/wall_time.json (train and eval seconds) beside the usual run files.
set -euo pipefail
spec=$1; seed=$2; out=$3
INTERP=${INTERP:-.venv/bin/interp}
mkdir -p "$(dirname "$out")"
tmp="$(dirname "$out")/.$(basename "$out").toml"
sed -e "s/^seed = .*/seed = $seed/" -e "0,/^name = /s/^name = \"\(.*\)\"/name = \"\1_s$seed\"/" "$spec" > "$tmp"
t0=$(date +%s.%N)
"$INTERP" train "$tmp" --out "$out" --quiet
t1=$(date +%s.%N)
"$INTERP" eval "$out" --examples 1024 --quiet > "$out/eval_final.txt"
t2=$(date +%s.%N)
python3 - "$out" "$t0" "$t1" "$t2" <<'PY'
import json, sys
out, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
json.dump({"train_s": round(t1 - t0, 1), "eval_s": round(t2 - t1, 1)}, open(f"{out}/wall_time.json", "w"))
PY
echo "done $out train $(python3 -c "print(round($t1-$t0))")s"
