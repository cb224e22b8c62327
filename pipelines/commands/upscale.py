"""`srgan upscale`: files or folders in, upscaled files out, in one process without Ray."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from pipelines.commands import MODEL_HELP
from srgan.images import IMAGE_SUFFIXES, ImageError, decode_image, read_bytes, write_image

log = logging.getLogger(__name__)


def collect(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """(image file, its path relative to the output folder) for files and folders (recursive)."""
    found = []
    for inp in inputs:
        if inp.is_dir():
            found += [(p, p.relative_to(inp)) for p in sorted(inp.rglob("*"))
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        elif inp.exists():
            found.append((inp, Path(inp.name)))
        else:
            raise FileNotFoundError(f"{inp}: no such file or folder")
    return found


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="upscale image files offline (one process, no Ray)",
                       description="Upscale files or folders of images with the generator, tile by tile.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders (recursive)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", default="default",
                   help=MODEL_HELP)
    p.add_argument("--tile", type=int, default=128, help="LR tile side in px (default: %(default)s)")
    p.add_argument("--pad", type=int, default=24, help="LR context around each tile in px (default: %(default)s)")
    p.add_argument("--format", default="png", choices=["png", "jpeg", "webp"], help="output format (default: png)")
    p.add_argument("--quality", type=int, default=95, help="jpeg/webp quality (default: %(default)s)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--max-pixels", type=int, default=50_000_000, help="refuse larger inputs (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.model_uri import load_model
    from srgan.inference import upscale_image

    files = collect(args.inputs)
    g = load_model(args.model)
    done, skipped, failed = 0, 0, []
    for src, rel in tqdm(files, desc="upscale", unit="image", disable=None):
        dst = (args.out / rel).with_suffix("." + ("jpg" if args.format == "jpeg" else args.format))
        if dst.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            image = decode_image(read_bytes(src), str(src), args.max_pixels)
        except ImageError as e:
            failed.append(str(e))
            continue
        out = upscale_image(g, image, args.tile, args.pad, args.bf16, fmt=args.format)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with dst.open("wb") as f:
            write_image(f, out, args.format, args.quality, str(dst))
        done += 1
    print(f"upscaled {done}, kept {skipped} existing (--overwrite replaces them), failed {len(failed)}; "
          f"outputs in {args.out}")
    for message in failed:
        print(f"  skipped: {message}", file=sys.stderr)
    return 1 if failed else 0
