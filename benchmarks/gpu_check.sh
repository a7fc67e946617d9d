#!/usr/bin/env bash
# The prepared device check (issue 23): every stage of the package on a GPU, in minutes.
#
#   benchmarks/gpu_check.sh [--device cuda] [--out DIR]     (or: make gpu-check)
#   benchmarks/gpu_check.sh --device cpu                    (tiny scale; CI runs this)
#
# On a fresh GPU machine with this repository it installs what is missing, then checks, one
# PASS/FAIL line each (SKIP where a check cannot apply), with each check's output in
# DIR/NAME.log (default DIR: gpu-check-output) and its tail printed on a failure:
#
#   install      python, torch, this package; the device is there
#   train        a 300-step bf16 paper-preset training (arith_a at the paper's lengths, TF32 on,
#                prefetch on); on the CPU a tiny 8-step one
#   resume       the same run trained in two processes (stopped at the half, resumed by the
#                command): every weight and optimizer tensor of its last checkpoint equal, bit
#                for bit, to the uninterrupted run's
#   eval, score, analyze (accuracy, scores, overlap, attention, causal test), head_sets, dose,
#   interchange, demo (demo --quick)     on the device
#   cuda_index   eval and score with an explicit cuda:0 (cuda:1 too when there are two GPUs)
#   throughput   benchmarks/bench_device_throughput.py (paper preset: end-to-end tokens/s with
#                and without prefetch)
#
# Installing: PYTHON=/path/to/python uses that interpreter as it is. Otherwise .venv is used when
# it already imports torch and this package; else, when a `python3` with torch is there (a CUDA
# image), a venv that sees its packages (--system-site-packages) gets this package installed on
# top, so the CUDA torch already present is used and never downloaded again (INTERP_WHEELS=DIR
# installs the other requirements from wheels in DIR, for a machine without internet); else
# `make venv TORCH=torch` installs torch from the package index (on Linux, a CUDA build).
# Exit status: 0 when nothing failed.

# The whole script is one block, read before it runs: editing the file meanwhile cannot change
# what a running check does.
{
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEVICE=cuda
OUTDIR=gpu-check-output
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --out) OUTDIR="$2"; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
case "$DEVICE" in
    cpu) SCALE=tiny ;;
    cuda|cuda:*) SCALE=paper ;;
    *) echo "gpu_check: --device must be cpu, cuda or cuda:N, got $DEVICE" >&2; exit 2 ;;
esac
export PYTHONUNBUFFERED=1
FAILED=0
T_START=$(date +%s)

# check NAME COMMAND...: run it, its output to OUTDIR/NAME.log, one PASS/FAIL line.
check() {
    local name="$1"; shift
    local t0 rc
    t0=$(date +%s)
    "$@" >"$OUTDIR/$name.log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        printf 'PASS %-12s %4ss\n' "$name" "$(( $(date +%s) - t0 ))"
    else
        printf 'FAIL %-12s %4ss (exit %s; %s)\n' "$name" "$(( $(date +%s) - t0 ))" "$rc" \
            "$OUTDIR/$name.log"
        tail -n 15 "$OUTDIR/$name.log" | sed 's/^/    /'
        FAILED=1
    fi
    return $rc
}

skip() { printf 'SKIP %-12s (%s)\n' "$1" "$2"; }

# --------------------------------------------------------------------------------------------
# install

choose_python() {
    if [ -n "${PYTHON:-}" ]; then
        PY="$PYTHON"
    elif [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, interp" 2>/dev/null; then
        PY=.venv/bin/python
    elif command -v python3 >/dev/null && python3 -c "import torch" 2>/dev/null; then
        # The machine's own torch (a CUDA build on a GPU image): keep it, add the rest.
        if [ ! -x .venv-gpu/bin/python ]; then
            python3 -m venv --system-site-packages .venv-gpu || return 1
        fi
        PY=.venv-gpu/bin/python
        if ! "$PY" -c "import interp, transformer_lens" 2>/dev/null; then
            if [ -n "${INTERP_WHEELS:-}" ]; then
                "$PY" -m pip install -q --no-index --find-links "$INTERP_WHEELS" -e . || return 1
            else
                "$PY" -m pip install -q -e . || return 1
            fi
        fi
    else
        make venv TORCH=torch || return 1
        PY=.venv/bin/python
    fi
    echo "python: $PY"
    "$PY" - "$DEVICE" <<'EOF'
import sys

import torch

import interp
from interp.core.device import resolve_device

dev = resolve_device(sys.argv[1])  # an InterpError (exit 1) when the device is not there
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}); interp from {interp.__file__}")
print(f"device {dev}" + (f": {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else ""))
EOF
}

PY=""
if ! check install choose_python; then
    echo "gpu_check: nothing else can run without the install" >&2
    exit 1
fi
PY=$(sed -n 's/^python: //p' "$OUTDIR/install.log")
interp() { "$PY" -m interp.cli "$@"; }

# --------------------------------------------------------------------------------------------
# the run every later check reads

SPEC="$OUTDIR/spec.json"
RUN="$OUTDIR/run"
"$PY" - "$SCALE" "$SPEC" <<'EOF'
import json
import sys
import tomllib

scale, out = sys.argv[1], sys.argv[2]
with open("analyses/paper/arith_a.toml", "rb") as f:
    d = tomllib.load(f)
d["name"] = "gpu_check"
if scale == "paper":
    # The paper's run, cut to 300 steps: bf16 autocast and TF32 as its spec has them.
    d["train"].update(steps=300, checkpoint_every=150, log_every=50)
    d["eval"].update(examples=32, every=0)
else:
    d["tasks"] = [
        {"name": "reverse_add", "lengths": [1, 3]},
        {"name": "no_carry", "lengths": [1, 6]},
        {"name": "carry_only", "lengths": [1, 6]},
    ]
    d["model"] = {"preset": "tiny"}
    d["optim"].update(warmup_steps=2)
    d["train"].update(steps=8, batch_size=16, checkpoint_every=4, log_every=2, autocast="off")
    d["eval"].update(max_length=6, examples=8, every=0)
d["train"]["prefetch"] = "on"
json.dump(d, open(out, "w"), indent=1)
EOF
HALF=$([ "$SCALE" = paper ] && echo 150 || echo 4)
EX=$([ "$SCALE" = paper ] && echo 64 || echo 8)

rm -rf "$RUN" "$OUTDIR/resumed" "$OUTDIR/demo"
check train interp train "$SPEC" --out "$RUN" --device "$DEVICE" --quiet
TRAINED=$?

resume() {
    # Process 1 trains to the half and stops as if killed; process 2 (the command) resumes.
    "$PY" - "$SPEC" "$OUTDIR/resumed" "$DEVICE" "$HALF" <<'EOF' || return 1
import sys

from interp.runs.spec import load_spec
from interp.runs.train import train

spec, out, device, half = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
train(load_spec(spec), out, progress=False, device=device, stop_after=half)
print(f"stopped after step {half}")
EOF
    interp train "$SPEC" --out "$OUTDIR/resumed" --device "$DEVICE" --quiet || return 1
    "$PY" - "$RUN" "$OUTDIR/resumed" <<'EOF'
import sys

import torch
from safetensors.torch import load_file

from interp.models.checkpoint import CKPT_DIR, ckpt_name, list_checkpoints

a, b = sys.argv[1], sys.argv[2]
step = list_checkpoints(a)[-1]
assert list_checkpoints(b)[-1] == step, (list_checkpoints(a), list_checkpoints(b))
ta = load_file(f"{a}/{CKPT_DIR}/{ckpt_name(step)}")
tb = load_file(f"{b}/{CKPT_DIR}/{ckpt_name(step)}")
assert ta.keys() == tb.keys()
# Weights and optimizer state must be equal bit for bit. The torch CPU generator's state is
# recorded too but is whatever the process started with (training draws no random numbers),
# so it is reported, not compared.
keys = [k for k in ta if not k.startswith("rng.")]
bad = [k for k in keys if not torch.equal(ta[k], tb[k])]
rng = [k for k in ta if k.startswith("rng.") and not torch.equal(ta[k], tb[k])]
print(f"step {step}: {len(keys)} weight and optimizer tensors, {len(bad)} differ {bad[:5]}")
print(f"(generator states differing, not compared: {rng})")
sys.exit(1 if bad else 0)
EOF
}

stage() {
    # stage FN: one of interp.runs.causal_runs' per-run causal stages, on the device.
    "$PY" - "$1" "$RUN" "$DEVICE" "$EX" <<'EOF'
import sys

import interp.runs.causal_runs as an
from interp.runs.analysis_spec import AnalysisConfig

fn, run, device, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = AnalysisConfig.from_dict({"n_examples": n})
kw = {"max_size": 2} if fn == "head_sets_for_run" else {}  # 36 + 630 sets of the 36 heads
out = getattr(an, fn)(run, cfg, device=device, **kw)
print(out if not isinstance(out, tuple) else out[1])
EOF
}

cuda_index() {
    interp eval "$RUN" --device cuda:0 --examples "$EX" --quiet || return 1
    interp score "$RUN" --device cuda:0 --examples 16 --method mean_ablation --quiet || return 1
    local n
    n=$("$PY" -c "import torch; print(torch.cuda.device_count())")
    if [ "$n" -ge 2 ]; then
        interp eval "$RUN" --device cuda:1 --examples "$EX" --quiet || return 1
        interp score "$RUN" --device cuda:1 --examples 16 --quiet || return 1
    fi
    echo "GPUs: $n"
}

if [ $TRAINED -ne 0 ]; then
    for name in resume eval score analyze head_sets dose interchange cuda_index; do
        skip "$name" "needs the trained run"
    done
else
    check resume resume
    check eval interp eval "$RUN" --device "$DEVICE" --examples "$EX" --quiet
    check score interp score "$RUN" --device "$DEVICE" --examples 16 --quiet \
        --method mean_ablation,zero_ablation,activation_patching,attribution_patching
    check analyze interp analyze "$RUN" --device "$DEVICE" --examples "$EX" --quiet
    check head_sets stage head_sets_for_run
    check dose stage dose_for_run
    check interchange stage interchange_for_run
    if [ "$DEVICE" = cpu ]; then
        skip cuda_index "--device cpu"
    else
        check cuda_index cuda_index
    fi
fi
if [ "$DEVICE" = cpu ]; then  # the suite runs demo --quick itself (test_demo, test_cross_device)
    skip demo "--device cpu: the test suite runs demo --quick on the CPU"
else
    check demo interp demo --quick --out "$OUTDIR/demo" --device "$DEVICE" --quiet
fi
if [ "$SCALE" = paper ]; then
    check throughput "$PY" benchmarks/bench_device_throughput.py --device "$DEVICE" \
        --steps 100 --eval-examples 1024 --score-examples 64
else
    check throughput "$PY" benchmarks/bench_device_throughput.py --device cpu --preset tiny \
        --batch-size 16 --steps 3 --warmup 1 --eval-examples 8 --score-examples 4 --threads 1
fi
grep '^|' "$OUTDIR/throughput.log" 2>/dev/null | sed 's/^/    /'
echo "gpu_check: device $DEVICE, $(( $(date +%s) - T_START ))s; logs in $OUTDIR"
exit $FAILED
}
