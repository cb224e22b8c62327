"""`srgan evaluate`: PSNR/SSIM with the paper's protocol over benchmark sets."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from pipelines import UsageError
from pipelines.commands import ENGINE_HELP, ENGINE_NAMES, MODEL_HELP
from srgan import ASSETS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="PSNR/SSIM on Set5/Set14/BSD100 or any folder of HR images",
                       description="PSNR and SSIM on the Y channel, `scale` pixels cropped from each border.")
    p.add_argument("--model", default="default",
                   help="'bicubic', " + MODEL_HELP)
    p.add_argument("--data", type=Path, default=ASSETS / "benchmarks",
                   help="folder holding <Set>/HR and optionally <Set>/LR_bicubic/X<scale> "
                        "(default: the Set5 shipped with the project)")
    p.add_argument("--sets", default="Set5", help="comma-separated set names under --data (default: %(default)s)")
    p.add_argument("--scale", type=int, default=4, help="upscaling factor (default: %(default)s)")
    p.add_argument("--json", type=Path, help="write the results as JSON to this file")
    p.add_argument("--save-images", type=Path, help="write SR images to DIR/<Set>/<name>.png")
    p.add_argument("--per-image", action="store_true", help="print and save per-image figures")
    p.add_argument("--engine", default="eager", choices=ENGINE_NAMES, metavar="ENGINE", help=ENGINE_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.model_uri import load_engine
    from srgan.benchmarks import bicubic_upscaler, evaluate_set
    from srgan.inference import upscale

    if args.model == "bicubic":
        upscaler, label = bicubic_upscaler(args.scale), "bicubic"
    else:
        engine = load_engine(args.model, args.engine)
        if engine.scale != args.scale:
            raise UsageError(f"--model {args.model} upscales x{engine.scale}, but --scale is {args.scale}")
        upscaler, label = partial(upscale, engine), f"{args.model} (engine {engine.name})"
    results = {}
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        save_dir = args.save_images / name if args.save_images else None
        results[name] = evaluate_set(upscaler, args.data / name, args.scale, save_dir)
    print(format_table(results, label, args.per_image))
    if args.json:
        if not args.per_image:
            results = {k: {m: v for m, v in r.items() if m != "per_image"} for k, r in results.items()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def format_table(results: dict, model: str, per_image: bool) -> str:
    lines = [f"model: {model}", f"{'set':<14}{'images':>7}{'PSNR (dB)':>11}{'SSIM':>8}"]
    for name, r in results.items():
        lines.append(f"{name:<14}{r['images']:>7}{r['psnr']:>11.2f}{r['ssim']:>8.4f}")
        if per_image:
            lines += [f"  {img:<12}{'':>7}{m['psnr']:>11.2f}{m['ssim']:>8.4f}" for img, m in r["per_image"].items()]
    return "\n".join(lines)
