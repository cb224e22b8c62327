#!/usr/bin/env bash
# The GAN-phase ablation (issue 11): each switch added in turn to the paper's SRGAN-MSE recipe, all
# from the shipped SRResNet, the same steps, seed and data; then PSNR / SSIM / NIQE / grid artifacts
# on Set5 and Set14. ICNR only changes a fresh upsampler, so it is measured on SRResNet
# training from scratch instead.
#
#   bash scripts/gan_ablation.sh [STEPS] [OUT]   (2 cores: 0.9 s a GAN step with the VGG-style D, 1.8 s with the U-Net)
set -euo pipefail
STEPS=${1:-400}
OUT=${2:-runs/ablation}
DATA=${SRGAN_DATA:-../shared/data}
SRGAN=${SRGAN:-.venv/bin/srgan}
COMMON=(--local --data "$DATA/train" --storage "$OUT" --val "$DATA/benchmarks/Set5"
        --set "model.norm=none" --set train.batch_size=16 --set train.log_every=50 --set train.val_every=100
        --set "train.checkpoint_every=$STEPS")
GAN=(--phase srgan --init default --set "srgan.steps=$STEPS" --set srgan.learning_rate=1e-4 --set "srgan.milestones=[]")
declare -A RECIPES=(
  [0-paper-mse]="loss.content=mse"
  [1-ema]="loss.content=mse train.ema_decay=0.99"
  [2-ema-ldl]="loss.content=mse train.ema_decay=0.99 loss.ldl_weight=1"
  [3-ema-ldl-ragan]="loss.content=mse train.ema_decay=0.99 loss.ldl_weight=1 loss.gan=ragan"
  [4-ema-ldl-ragan-unet]="loss.content=mse train.ema_decay=0.99 loss.ldl_weight=1 loss.gan=ragan model.discriminator=unet"
  [5-unet-adversarial-5e-3]="loss.content=mse train.ema_decay=0.99 loss.ldl_weight=1 loss.gan=ragan model.discriminator=unet loss.adversarial_weight=5e-3"
  [6-ema-ldl-grid]="loss.content=mse train.ema_decay=0.99 loss.ldl_weight=1 loss.grid_weight=30"
)
for name in $(printf '%s\n' "${!RECIPES[@]}" | sort); do
  sets=(); for kv in ${RECIPES[$name]}; do sets+=(--set "$kv"); done
  [ -d "$OUT/$name/checkpoint_$(printf %08d "$STEPS")" ] || "$SRGAN" train "${COMMON[@]}" "${GAN[@]}" "${sets[@]}" --name "$name"
done
for icnr in false true; do  # SRResNet from scratch: the sub-pixel convs start fresh
  name="icnr-$icnr"
  [ -d "$OUT/$name/checkpoint_$(printf %08d "$STEPS")" ] || "$SRGAN" train "${COMMON[@]}" --phase srresnet \
    --set "srresnet.steps=$STEPS" --set srresnet.learning_rate=2e-4 --set loss.pixel=l1 --set "model.icnr=$icnr" --name "$name"
done
for run in "$OUT"/*/; do
  name=$(basename "$run")
  [ -f "$OUT/$name.json" ] || "$SRGAN" evaluate --model "$run/checkpoint_$(printf %08d "$STEPS")" \
    --data "$DATA/benchmarks" --sets Set5,Set14 --json "$OUT/$name.json"
done
"${PYTHON:-.venv/bin/python}" scripts/results_table.py "$OUT"/*.json
