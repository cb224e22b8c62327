"""Comparison crops for the README: bicubic | SRResNet | SRGAN | HR, from the shipped models.

    python scripts/compare_crops.py --data ../shared/data/benchmarks --out docs/images

Each crop is taken at a fixed place in a benchmark image (CROPS below) and shown at 2x with
nearest-neighbour enlargement, so single pixels stay visible. The LR input is the benchmark's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from srgan import SHIPPED_MODELS
from srgan.benchmarks import load_pair, set_layout
from srgan.bicubic import imresize
from srgan.checkpoint import load_generator
from srgan.images import save_image
from srgan.inference import upscale

# (set, image, HR top, HR left, side): skin, a wing, fur and a tiger.
CROPS = [("Set5", "baby", 96, 176, 128), ("Set5", "butterfly", 64, 64, 128),
         ("Set14", "baboon", 300, 40, 128), ("BSD100", "108005", 100, 180, 128)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="benchmark folder (<Set>/HR, <Set>/LR_bicubic/X4)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    models = {name: load_generator(SHIPPED_MODELS[name]) for name in ("default", "srgan")}
    args.out.mkdir(parents=True, exist_ok=True)
    for set_name, image, top, left, side in CROPS:
        files, lr_dir = set_layout(args.data / set_name, 4)
        lr, hr, _ = load_pair(next(f for f in files if f.stem == image), lr_dir, 4)
        panels = [imresize(lr, 4), upscale(models["default"], lr), upscale(models["srgan"], lr), hr]
        gap = np.full((side, 4, 3), 255, np.uint8)
        crops = [panel[top:top + side, left:left + side] for panel in panels]
        row = np.concatenate([x for crop in crops for x in (crop, gap)][:-1], axis=1)
        save_image(args.out / f"{set_name}_{image}.png", row.repeat(2, axis=0).repeat(2, axis=1))
        print(args.out / f"{set_name}_{image}.png")


if __name__ == "__main__":
    main()
