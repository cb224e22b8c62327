#!/usr/bin/env bash
# Fresh-machine install: Debian's Chromium (for the web-page test), then a venv with the project.
# torch/torchvision are pinned to the CPU-tested builds; on a GPU machine install your CUDA build first.
# The openvino and onnx extras bring the CPU inference engines (srgan/engines.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
python3 -m venv .venv
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1 -e '.[test,openvino,onnx]'
