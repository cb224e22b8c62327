#!/usr/bin/env bash
# The real-input table (issues 20, 28, 29): bicubic, the shipped default / srgan / realworld /
# realworld-gan / auto / auto-gan, PSNR / SSIM / NIQE / grid artifacts / JPEG blocks on Set5, Set14
# and BSD100, for clean LR and the benchmarks' LR degraded by each spec (srgan evaluate --degrade),
# by the CPU's fastest eager engine (srgan.engines.fastest_eager: bf16, within 0.01 dB of fp32
# (docs/engines.md) and 3x faster, where the CPU has it natively; else fp32). A conditioned model
# (auto, auto-gan) is told each LR's condition as read from its file; MODEL:true tells it the spec's
# own values instead (evaluate --condition true).
#
#   bash scripts/real_inputs.sh [OUT]        (about 40 minutes on 2 cores with AMX)
set -euo pipefail
OUT=${1:-runs/real-inputs}
DATA=${SRGAN_DATA:-../shared/data}
SRGAN=${SRGAN:-.venv/bin/srgan}
PYTHON=${PYTHON:-.venv/bin/python}
SPECS=${SPECS:-clean jpeg:75 jpeg:40 noise:10 blur:1.5+jpeg:60 realworld:0}
MODELS=${MODELS:-bicubic default srgan realworld realworld-gan auto auto:true auto-gan}
ENGINE=${ENGINE:-$("$PYTHON" -c 'import torch; from srgan.eager import fastest_eager; print(fastest_eager(torch.device("cpu")))')}
for spec in $SPECS; do
  dir="$OUT/${spec//[:+]/_}"
  mkdir -p "$dir"
  degrade=(); [ "$spec" = clean ] || degrade=(--degrade "$spec")
  i=0
  for entry in $MODELS; do
    model=${entry%%:*} condition=read
    [ "$entry" = "$model" ] || condition=${entry#*:}
    json="$dir/$i-${entry//:/-}.json"
    [ -f "$json" ] || "$SRGAN" evaluate --data "$DATA/benchmarks" --sets Set5,Set14,BSD100 --model "$model" \
      --engine "$ENGINE" --condition "$condition" "${degrade[@]}" --json "$json" >/dev/null
    i=$((i + 1))
  done
  echo "### $spec"
  "$PYTHON" scripts/results_table.py "$dir"/*.json
done
