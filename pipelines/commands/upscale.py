"""`srgan upscale`: files or folders in, upscaled files out, in one process without Ray.

Every input is planned before the model loads: two inputs that would write the same output
(`a.jpg` and `a.png` both becoming `a.png`) stop the run there. Then each file is upscaled on
its own: a file that fails is recorded and the run goes on; the summary names every failure
and the exit code is 1 if there was one. Outputs are written to a temporary file beside the
target and renamed into place, so an interrupted run never leaves a truncated image.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from pipelines import UsageError
from pipelines.commands import ALPHA_HELP, ENGINE_HELP, MODEL_HELP, alpha, check_alpha
from pipelines.settings import ENGINE_NAMES
from srgan.condition import CLEAN, condition_from_overrides, read_condition
from srgan.images import ImageError, check_encodable, decode_image, find_images, read_bytes, write_image

log = logging.getLogger(__name__)


def collect(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """(image file, its path relative to the output folder) for files and folders (recursive)."""
    found = []
    for inp in inputs:
        if inp.is_dir():
            found += [(p, p.relative_to(inp)) for p in find_images(inp)]
        elif inp.exists():
            found.append((inp, Path(inp.name)))
        else:
            raise FileNotFoundError(f"{inp}: no such file or folder")
    return found


def plan(files: list[tuple[Path, Path]], out: Path, fmt: str) -> list[tuple[Path, Path]]:
    """(source, destination) for each input; refuses inputs whose destinations collide."""
    suffix = "." + ("jpg" if fmt == "jpeg" else fmt)
    pairs = [(src, (out / rel).with_suffix(suffix)) for src, rel in files]
    by_dst: dict[Path, list[Path]] = {}
    for src, dst in pairs:
        by_dst.setdefault(dst, []).append(src)
    clashes = [f"{', '.join(map(str, srcs))} -> {dst}" for dst, srcs in by_dst.items() if len(srcs) > 1]
    if clashes:
        raise UsageError("inputs that would write the same output (rename one of each, or upscale them "
                         "into different folders): " + "; ".join(clashes))
    return pairs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="upscale image files offline (one process, no Ray)",
                       description="Upscale files or folders of images with the generator, tile by tile.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders (recursive)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    # auto: what an upscaler of people's photos meets is JPEG and noise, and each file says how much
    # (docs/real-photos.md)
    p.add_argument("--model", default="auto", help=MODEL_HELP)
    p.add_argument("--tile", type=int, default=128, help="LR tile side in px (default: %(default)s)")
    p.add_argument("--pad", type=int, default=24, help="LR context around each tile in px (default: %(default)s)")
    p.add_argument("--format", default="png", choices=["png", "jpeg", "webp"], help="output format (default: png)")
    p.add_argument("--quality", type=int, default=95, help="jpeg/webp quality (default: %(default)s)")
    p.add_argument("--alpha", type=alpha, metavar="A", help=ALPHA_HELP)
    p.add_argument("--jpeg-quality", metavar="Q", help="a conditioned model's (auto's) JPEG quality for every input, "
                                                       "1-100 or 'none', in place of what each file says")
    p.add_argument("--noise", metavar="SIGMA", help="a conditioned model's (auto's) noise sigma (grey levels) for "
                                                    "every input, in place of what is read from its pixels")
    p.add_argument("--engine", default="auto", choices=ENGINE_NAMES, metavar="ENGINE", help=ENGINE_HELP)
    p.add_argument("--max-pixels", type=int, default=50_000_000, help="refuse larger inputs (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(run=run)


def write_atomic(dst: Path, img, fmt: str, quality: int) -> None:
    """Encode into a temporary file beside `dst`, then rename it into place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write_image(f, img, fmt, quality, str(dst))
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    from pipelines.model_uri import load_engine
    from srgan.inference import upscale_image

    pairs = plan(collect(args.inputs), args.out, args.format)
    check_alpha(args.model, args.alpha)
    condition_from_overrides(CLEAN, args.jpeg_quality, args.noise)  # a bad value stops the run before the model loads
    engine = load_engine(args.model, args.engine, alpha=args.alpha)
    if not engine.conditions and (args.jpeg_quality is not None or args.noise is not None):
        raise UsageError(f"--jpeg-quality and --noise tell a conditioned model what its inputs went through; "
                         f"--model {args.model} is blind to it")
    done, skipped, failed = 0, 0, []
    for src, dst in tqdm(pairs, desc="upscale", unit="image", disable=None):
        if dst.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            image = decode_image(read_bytes(src), str(src), args.max_pixels)
            h, w = image.rgb.shape[:2]
            check_encodable(w * engine.scale, h * engine.scale, args.format, str(src))  # before the work, not after
            condition = None
            if engine.conditions:
                condition = condition_from_overrides(read_condition(image), args.jpeg_quality, args.noise)
                log.info("%s: %s", src, condition)
            img = upscale_image(engine, image, args.tile, args.pad, fmt=args.format, condition=condition)
            write_atomic(dst, img, args.format, args.quality)
            done += 1
        except ImageError as e:
            failed.append(str(e))
        except Exception as e:  # anything else about this one file: recorded, and the run goes on
            log.debug("upscaling %s failed", src, exc_info=True)
            failed.append(f"{src}: {type(e).__name__}: {e}")
    print(f"upscaled {done}, kept {skipped} existing (--overwrite replaces them), failed {len(failed)}; "
          f"outputs in {args.out}")
    for message in failed:
        print(f"  failed: {message}", file=sys.stderr)
    return 1 if failed else 0
