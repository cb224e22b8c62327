"""`srgan export`: the generator as an ONNX graph or OpenVINO IR (fp32, bf16 or int8) with a card,
for any serving stack; the folder is also a checkpoint folder, so `--model OUT` runs it here.

`srgan export --shipped` exports every shipped model's engine into the cache instead, where
`srgan upscale` and `srgan serve` find it without PyTorch (the serving image's build runs it).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pipelines.commands import MODEL_HELP

FORMATS = ("onnx", "openvino", "openvino-bf16", "openvino-int8")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the generator for ONNX Runtime or OpenVINO (fp32, bf16, int8)",
                       description="Write the generator as an ONNX graph or OpenVINO IR plus engine.json (source, "
                                   "precision, runtime version, Set5 PSNR, calibration) and a copy of the "
                                   "checkpoint, so that `--model OUT` runs the exported graph.")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--format", choices=FORMATS,
                   help="onnx (ONNX Runtime, fp32), openvino (fp32 IR), openvino-bf16 (the same IR, run in bf16), "
                        "openvino-int8 (NNCF int8 IR); with --shipped, default: what --engine auto runs on a CPU")
    p.add_argument("--out", type=Path, help="output folder (created; refused if not empty)")
    p.add_argument("--shipped", action="store_true",
                   help="instead of --model and --out: every shipped model's engine into the cache ($SRGAN_CACHE, "
                        "else ~/.cache/srgan), where upscale and serve run it without PyTorch")
    p.add_argument("--calibration", nargs="+", metavar="DIR",
                   help="int8: folders of training images to cut the calibration tiles from "
                        "(default: the six shipped with the package, srgan/assets/train)")
    p.add_argument("--calibration-tiles", type=int, default=300,
                   help="int8: how many LR tiles to calibrate on (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pipelines import UsageError
    from pipelines.model_uri import checkpoint_folder, portable
    from srgan.calibration import Calibration
    from srgan.checkpoint import CONFIG, G_WEIGHTS, load_generator, read_meta
    from srgan.graphs import export_engine

    if args.shipped:
        return export_shipped(args.format or "auto")
    if args.format is None or args.out is None:
        raise UsageError("--format and --out are required (or --shipped)")
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        raise UsageError(f"--out {args.out} is not empty (--overwrite writes into it)")
    folder = checkpoint_folder(args.model)
    g = load_generator(folder)
    calibration = Calibration(scale=g.scale, count=args.calibration_tiles,
                              **({"folders": tuple(map(str, args.calibration))} if args.calibration else {}))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (G_WEIGHTS, CONFIG):  # the folder is a checkpoint too: `--model OUT` loads it
        shutil.copyfile(folder / name, args.out / name)
    source = {"model": portable(args.model), "model_config": read_meta(folder)["model"]}
    card = export_engine(g, args.out, args.format, calibration=calibration, source=source)
    psnr = card["set5_psnr"]
    print(f"exported {args.model} as {args.format} to {args.out} in {card['export_seconds']} s: "
          f"Set5 PSNR {psnr['engine']:.3f} dB (eager fp32 {psnr['eager_fp32']:.3f}); "
          f"run it with --model {args.out} --engine {args.format}")
    return 0


def export_shipped(engine: str) -> int:
    """Export `engine` of every shipped model into the cache (once: an engine already there is kept)."""
    from pipelines import UsageError
    from pipelines.model_uri import load_engine
    from srgan import SHIPPED_MODELS

    for model in SHIPPED_MODELS:
        exported = load_engine(model, engine)
        if exported.card is None:
            raise UsageError(f"{model}: {engine} ran {exported.name}, nothing to export (the log says why)")
        print(f"{model}: {exported.name} in {exported.folder}")
    return 0
