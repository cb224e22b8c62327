#!/usr/bin/env bash
# Photos of buildings and walls outside the benchmarks and the training set (issue 20): rows of
# windows, brick, a flat facade, aerial views of a city and a painted wall, from OpenCV's sample
# data (Debian's opencv-doc package, fetched with apt). Grid artifacts and NIQE of each model's x4
# of their bicubic LR, beside the photos' own (srgan evaluate on a plain folder of HR images).
#
#   bash scripts/buildings.sh [OUT]        (a minute on 2 cores, after a 96 MB download)
set -euo pipefail
OUT=${1:-runs/buildings}
SRGAN=${SRGAN:-.venv/bin/srgan}
MODELS=${MODELS:-bicubic default srgan realworld realworld-gan auto-gan}
PHOTOS=(building.jpg leuvenA.jpg leuvenB.jpg home.jpg aero1.jpg aero3.jpg graf1.png)
mkdir -p "$OUT/buildings"
if [ ! -f "$OUT/buildings/graf1.png" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q opencv-doc >/dev/null 2>&1) && dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/x"
  for f in "${PHOTOS[@]}"; do cp "$tmp/x/usr/share/doc/opencv-doc/examples/data/$f" "$OUT/buildings/"; done
  rm -rf "$tmp"
fi
for model in $MODELS; do
  "$SRGAN" evaluate --data "$OUT" --sets buildings --model "$model" --metrics niqe,artifacts --per-image
done
