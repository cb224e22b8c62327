#!/usr/bin/env bash
# The perception-distortion table (issue 11): bicubic, the shipped SRResNet (alpha 0), the dial at
# 0.25 / 0.5 / 0.75, the shipped SRGAN (alpha 1) and the HR images, PSNR / SSIM / NIQE / grid
# artifacts on Set5, Set14 and BSD100 (eager fp32, the reference engine).
#
#   bash scripts/perception_distortion.sh [OUT]        (about 4 minutes on 2 cores)
set -euo pipefail
OUT=${1:-runs/perception-distortion}
DATA=${SRGAN_DATA:-../shared/data}
SRGAN=${SRGAN:-.venv/bin/srgan}
PYTHON=${PYTHON:-.venv/bin/python}
EVAL=(evaluate --data "$DATA/benchmarks" --sets Set5,Set14,BSD100)
mkdir -p "$OUT"
run() { local name=$1; shift; [ -f "$OUT/$name.json" ] || "$SRGAN" "${EVAL[@]}" "$@" --json "$OUT/$name.json"; }
run 0-bicubic --model bicubic
run 1-srresnet --model default
for a in 0.25 0.5 0.75; do run "2-alpha-$a" --model default --alpha "$a"; done
run 3-srgan --model srgan
"$PYTHON" scripts/results_table.py "$OUT"/*.json
