#!/usr/bin/env bash
# One-shot GPU run of vmibench, sized for a ~15-minute window on a borrowed GPU; runs from the checkout.
#
#   scripts/gpu_run.sh OUT_DIR [--device cuda] [--preset gpu-default] [--budget-min 7] [--ops-budget-min 3]
#                      [--smoke-models all] [--smoke-dtypes fp32,bf16] [--smoke-res 224] [--quick]
#
# 1. smoke test (python -m vmibench.smoke): every model builds and runs one forward on the device in fp32 and
#    bf16, and every scan backend there agrees with the reference; a failure stops the run before the sweep.
# 2. vmibench sweep --preset P --budget-min N  (latency; --no-flops: GMACs are counted later on a CPU)
# 3. vmibench ops --preset P --budget-min M    (token mixers; the selective scan once per backend available)
# 4. vmibench publish                          (OUT_DIR as a result set: store.sqlite, manifest.json, REPORT.md)
# Everything goes to OUT_DIR: vmibench.sqlite (the scratch store), smoke.json, sweep.csv, ops.csv and the result
# set (store.sqlite, manifest.json, REPORT.md, tables/, figures/).  A rerun resumes (cells already stored are not
# measured again).  Afterwards, on a CPU machine with fvcore (and git, for the manifest's code version):
#   vmibench flops --db OUT_DIR/vmibench.sqlite && vmibench publish --db OUT_DIR/vmibench.sqlite --out OUT_DIR
#
# Needs python with torch, timm, pandas, matplotlib and typer (rich and numpy come with them); no install, no
# network: vmibench is imported from this checkout (PYTHONPATH), so a bare GPU image works.  A shell script
# rather than a nox session for that reason: nox builds a fresh venv with pip, which a machine without
# network access to the package index cannot do.  PYTHON selects the interpreter (default: python3).
#
# --quick is the CPU dry run the tests use (tests/test_gpu_run.py): one small scan shape in the smoke test, and no
# device peak or bandwidth measurement (20 s on a 2-core CPU; the sweep's tests cover that step).
set -euo pipefail

usage() { echo "usage: scripts/gpu_run.sh OUT_DIR [--device D] [--preset P] [--budget-min N] ... (options: see its header)" >&2; exit 2; }
[[ $# -ge 1 && $1 != -* ]] || usage
out=$1
shift
device=cuda preset=gpu-default budget=7 ops_budget=3 smoke_models=all smoke_dtypes=fp32,bf16 smoke_res=224 quick=()
no_peak=()
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 || $1 == --quick ]] || usage
  case $1 in
    --device) device=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --budget-min) budget=$2; shift 2 ;;
    --ops-budget-min) ops_budget=$2; shift 2 ;;
    --smoke-models) smoke_models=$2; shift 2 ;;
    --smoke-dtypes) smoke_dtypes=$2; shift 2 ;;
    --smoke-res) smoke_res=$2; shift 2 ;;
    --quick) quick=(--quick); no_peak=(--no-peak); shift ;;
    *) usage ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
mkdir -p "$out"
db="$out/vmibench.sqlite"

step() { printf '\n== %s (%s) ==\n' "$1" "$(date +%T)" >&2; }
run() { printf '+ %s\n' "$*" >&2; "$@"; }

step "smoke test on $device"
run "$python" -m vmibench.smoke --device "$device" --models "$smoke_models" --dtypes "$smoke_dtypes" \
  --res "$smoke_res" --out "$out/smoke.json" "${quick[@]}"
step "latency sweep ($preset, at most $budget min)"
run "$python" -m vmibench sweep --preset "$preset" --device "$device" --budget-min "$budget" --no-flops \
  --db "$db" --format csv --out "$out/sweep.csv" "${no_peak[@]}"
step "token-mixer sweep ($preset, at most $ops_budget min)"
run "$python" -m vmibench ops --preset "$preset" --device "$device" --budget-min "$ops_budget" \
  --db "$db" --format csv --out "$out/ops.csv" "${no_peak[@]}"
step "result set"
run "$python" -m vmibench publish --db "$db" --out "$out" --device "$device"
printf '\nvmibench gpu run: done at %s; results in %s\n' "$(date +%T)" "$out" >&2
