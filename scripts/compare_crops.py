"""Comparison crops for the README: bicubic | [a reference system] | the shipped models | HR.

    python scripts/compare_crops.py --data ../shared/data/benchmarks --out docs/images
    python scripts/compare_crops.py --data ../shared/data/benchmarks --out docs/images \\
        --models default,srgan,realworld --degrade jpeg:75 --images baby
    python scripts/compare_crops.py --data ../shared/data/benchmarks --out docs/images \\
        --models srgan,auto-gan --degrade jpeg:75 --reference runs/realesrgan/jpeg75 --suffix realesrgan

Each crop is taken at a fixed place in a benchmark image (CROPS below) and shown at 2x with
nearest-neighbour enlargement, so single pixels stay visible. The LR input is the benchmark's own,
or that degraded by a --degrade spec (srgan evaluate's); the file is then named after the spec. A
conditioned model (auto) is told the condition read from the LR file, as upscale and the endpoint do.
--reference is another system's SR of the same LR, read from REFERENCE/<set>/<image>.png (what
scripts/realesrgan_reference.sh --save writes: Real-ESRGAN x4plus, which this script never runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from srgan import SHIPPED_MODELS
from srgan.benchmarks import load_input, set_layout
from srgan.bicubic import imresize
from srgan.checkpoint import load_generator
from srgan.condition import read_condition
from srgan.degradations import parse_spec
from srgan.images import decode_image, load_image, save_image
from srgan.inference import upscale

# (set, image, HR top, HR left, side): skin, a wing, fur and a tiger.
CROPS = [("Set5", "baby", 96, 176, 128), ("Set5", "butterfly", 64, 64, 128),
         ("Set14", "baboon", 300, 40, 128), ("BSD100", "108005", 100, 180, 128)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="benchmark folder (<Set>/HR, <Set>/LR_bicubic/X4)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--models", default="default,srgan", help="shipped models, in panel order (default: %(default)s)")
    p.add_argument("--degrade", help="degrade the LR first (srgan evaluate --degrade's specs)")
    p.add_argument("--images", help="comma-separated image names of CROPS (default: all)")
    p.add_argument("--reference", type=Path,
                   help="a folder of <set>/<image>.png SR images, shown after bicubic (default: none)")
    p.add_argument("--suffix", default="", help="added to each file's name: <spec>_<set>_<image>_<suffix>.png")
    args = p.parse_args()
    models = [load_generator(SHIPPED_MODELS[name]) for name in args.models.split(",")]
    spec = parse_spec(args.degrade) if args.degrade else None
    prefix = f"{args.degrade.replace(':', '').replace('+', '_')}_" if args.degrade else ""
    args.out.mkdir(parents=True, exist_ok=True)
    for set_name, image, top, left, side in CROPS:
        if args.images and image not in args.images.split(","):
            continue
        files, lr_dir = set_layout(args.data / set_name, 4)
        test = load_input(next(f for f in files if f.stem == image), lr_dir, 4, spec)
        lr, condition = test.lr, read_condition(decode_image(test.file))
        reference = [load_image(args.reference / set_name / f"{image}.png")] if args.reference else []
        panels = [imresize(lr, 4), *reference, *(upscale(g, lr, condition) for g in models), test.hr]
        gap = np.full((side, 4, 3), 255, np.uint8)
        crops = [panel[top:top + side, left:left + side] for panel in panels]
        row = np.concatenate([x for crop in crops for x in (crop, gap)][:-1], axis=1)
        path = args.out / f"{prefix}{set_name}_{image}{'_' + args.suffix if args.suffix else ''}.png"
        save_image(path, row.repeat(2, axis=0).repeat(2, axis=1))
        print(path)


if __name__ == "__main__":
    main()
