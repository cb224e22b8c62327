#!/usr/bin/env bash
# The perception-distortion dial of a shipped pair on degraded LR (issue 29): PSNR / NIQE / grid /
# JPEG blocks at alpha 0, 0.25, 0.5, 0.75 and 1 (srgan evaluate --alpha, eager fp32, the condition
# read from each file), then scripts/dial_curve.py draws PSNR against NIQE beside Real-ESRGAN's
# points where REFERENCE (scripts/realesrgan_reference.sh --json) is given.
#
#   bash scripts/dial_curve.sh [OUT] [REFERENCE]      (9 minutes on 2 AVX-512 cores)
#   PAIR=realworld SETS=Set5 SPECS=jpeg:75 bash scripts/dial_curve.sh runs/dial-realworld
set -euo pipefail
OUT=${1:-runs/dial-curve}
REFERENCE=${2:-}
DATA=${SRGAN_DATA:-../shared/data}
SRGAN=${SRGAN:-.venv/bin/srgan}
PYTHON=${PYTHON:-.venv/bin/python}
PAIR=${PAIR:-auto}
SETS=${SETS:-Set14,BSD100}
SPECS=${SPECS:-jpeg:75 jpeg:40}
for spec in $SPECS; do
  dir="$OUT/${spec//[:+]/_}"
  mkdir -p "$dir"
  for alpha in 0 0.25 0.5 0.75 1; do
    json="$dir/alpha-$alpha.json"
    [ -f "$json" ] || "$SRGAN" evaluate --data "$DATA/benchmarks" --sets "$SETS" --model "$PAIR" --alpha "$alpha" \
      --degrade "$spec" --condition read --engine eager --metrics psnr,niqe,artifacts,blocks --json "$json" >/dev/null
  done
done
"$PYTHON" scripts/dial_curve.py "$OUT" ${REFERENCE:+--reference "$REFERENCE"} --pair "$PAIR" --out "$OUT/dial_$PAIR.png"
