"""Accuracy and cost of the condition reader (srgan.condition) on the benchmarks' LR images.

    python tests/benchmarks/bench_condition.py [--data ../shared/data/benchmarks] [--sets Set5,Set14,BSD100]
                                               [--qualities 30,40,50,60,75,85,95] [--sigmas 0,2,5,10,15]

Tables, each over every LR_bicubic/X4 image of --sets:
  jpeg     Pillow JPEG at each quality and subsampling (4:2:0, 4:4:4), read from the JPEG file (its
           tables) and from a PNG of its decoded pixels (block evidence): mean / max |error|, misses.
  tables   non-IJG tables (Pillow's Photoshop presets, flat tables): what the reader says, against the
           IJG quality of the same mean RGB MSE on the images (log-interpolated).
  noise    Gaussian colour noise as srgan.degradations.gaussian_noise adds it, rounded to uint8: signed
           mean, mean and max |error|, images off by more than 1.5; then what noise reads on JPEG files
           without noise, and on noise followed by JPEG (the training pipeline's order).
  clean    clean PNGs: JPEG false positives, the noise reading with and without its floor and dead zone.
  cost     read_condition per image (decoded pixels in, Condition out) on BSD100, and on a 12 MP photo.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.JpegPresets import presets

from srgan.condition import block_quality, jpeg_quality_from_tables, noise_sigma, read_condition
from srgan.degradations import gaussian_noise, to_uint8
from srgan.images import decode_image, load_image

ROOT = Path(__file__).resolve().parents[2]
SUBSAMPLING = {"4:2:0": 2, "4:4:4": 0}


def load_set(data: Path, sets: list[str]) -> list[tuple[str, np.ndarray]]:
    paths = [p for s in sets for p in sorted((data / s / "LR_bicubic" / "X4").glob("*.png"))]
    images = [(f"{p.parents[2].name}/{p.name}", load_image(p)) for p in paths]
    if not images:
        raise SystemExit(f"no LR_bicubic/X4 images of {sets} under {data}")
    return images


def encode(rgb: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kw)
    return buf.getvalue()


def noisy(rgb: np.ndarray, sigma: float, name: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(f"{name}:{sigma}".encode()))
    return to_uint8(gaussian_noise(rgb.astype(np.float32) / 255, sigma, False, rng))


def stats(errors: list[float]) -> str:
    e = np.abs(errors) if errors else np.array([np.nan])
    return f"{e.mean():5.2f} {e.max():5.1f}"


def jpeg_table(images: list[tuple[str, np.ndarray]], qualities: list[int]) -> None:
    print("\njpeg quality   sub    | JPEG file: mean max |err| | PNG once JPEG: mean max |err|  missed")
    for q in qualities:
        for sub, code in SUBSAMPLING.items():
            from_file, from_pixels, missed = [], [], 0
            for _, rgb in images:
                decoded = decode_image(encode(rgb, "JPEG", quality=q, subsampling=code))
                from_file.append(jpeg_quality_from_tables(decoded.jpeg.tables) - q)
                read = block_quality(decoded.rgb)
                missed += read is None
                if read is not None:
                    from_pixels.append(read - q)
            print(f"  q{q:<3}         {sub}  |        {stats(from_file)}        |"
                  f"            {stats(from_pixels)}   {missed:4d}/{len(images)}")


def equal_mse_quality(images: list[tuple[str, np.ndarray]], **save) -> float:
    """The IJG quality (4:2:0) whose mean RGB MSE over `images` equals that of saving with `save`."""
    def mse(**kw) -> float:
        saved = [decode_image(encode(rgb, "JPEG", subsampling=2, **kw)).rgb for _, rgb in images]
        return float(np.mean([np.mean((s.astype(float) - rgb) ** 2) for s, (_, rgb) in zip(saved, images)]))
    ijg = np.log([mse(quality=q) for q in range(100, 0, -1)])  # rises as q falls
    return float(np.interp(np.log(mse(**save)), ijg, np.arange(100, 0, -1)))


def tables_table(images: list[tuple[str, np.ndarray]]) -> None:
    subset = images[::4]
    print(f"\nnon-IJG tables (equal-MSE quality on {len(subset)} images) | read | equal-MSE IJG quality")
    cases = {name: p["quantization"] for name, p in presets.items()}
    cases |= {f"flat {v}": [[v] * 64, [v] * 64] for v in (4, 8, 16, 32)}
    for name, tables in cases.items():
        read = jpeg_quality_from_tables(decode_image(encode(images[0][1], "JPEG", qtables=tables)).jpeg.tables)
        print(f"  {name:<18} {read:4d}   {equal_mse_quality(subset, qtables=tables):5.1f}")


def noise_table(images: list[tuple[str, np.ndarray]], sigmas: list[float], qualities: list[int]) -> None:
    print("\nnoise sigma      | signed mean  mean max |err|  n > 1.5")
    for sigma in sigmas:
        errors = [noise_sigma(noisy(rgb, sigma, name) if sigma else rgb) - sigma for name, rgb in images]
        off = sum(abs(e) > 1.5 for e in errors)
        print(f"  {sigma:<5g}          |   {np.mean(errors):+5.2f}     {stats(errors)}   {off:4d}")
    print("JPEG, no noise   | reads mean max   n > 1")
    for q in qualities:
        reads = [noise_sigma(decode_image(encode(rgb, "JPEG", quality=q)).rgb) for _, rgb in images]
        print(f"  q{q:<3}            |      {np.mean(reads):5.2f} {np.max(reads):5.1f} {sum(r > 1 for r in reads):4d}")
    print("noise, then JPEG | reads mean (truth = sigma)")
    for sigma in (5, 10):
        for q in (50, 75, 95):
            saved = [decode_image(encode(noisy(rgb, sigma, name), "JPEG", quality=q)).rgb for name, rgb in images]
            reads = [noise_sigma(rgb) for rgb in saved]
            print(f"  s{sigma:<3} q{q:<3}       |      {np.mean(reads):5.2f}")


def clean_table(images: list[tuple[str, np.ndarray]]) -> None:
    found = [name for name, rgb in images if block_quality(rgb) is not None]
    raw = [noise_sigma(rgb, calibrated=False) for _, rgb in images]
    read = [noise_sigma(rgb) for _, rgb in images]
    print(f"\nclean PNG: JPEG found in {len(found)}/{len(images)} {found[:5]}")
    print(f"  noise, raw (no floor, no dead zone): mean {np.mean(raw):.2f} max {np.max(raw):.2f} "
          f"(> 1: {sum(r > 1 for r in raw)}); as read: mean {np.mean(read):.2f} max {np.max(read):.1f} "
          f"(> 0: {sum(r > 0 for r in read)}) {[n for (n, _), r in zip(images, read) if r > 0]}")


def ms_per_read(images: list[np.ndarray], fmt: str, **kw) -> float:
    decoded = [decode_image(encode(rgb, fmt, **kw)) for rgb in images]
    times = []
    for d in decoded:
        t0 = time.perf_counter()
        read_condition(d)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.mean(times)


def cost_table(images: list[tuple[str, np.ndarray]], data: Path) -> None:
    bsd = [rgb for name, rgb in images if name.startswith("BSD100/")] or [rgb for _, rgb in images]
    once = [decode_image(encode(rgb, "JPEG", quality=50)).rgb for rgb in bsd]
    print(f"\ncost, read_condition per image (BSD100 LR, {bsd[0].shape[1]}x{bsd[0].shape[0]}): "
          f"PNG {ms_per_read(bsd, 'PNG'):.1f} ms, JPEG file {ms_per_read(bsd, 'JPEG', quality=75):.1f} ms, "
          f"PNG once JPEG {ms_per_read(once, 'PNG'):.1f} ms")
    hr = data / "Set14" / "HR" / "lenna.png"
    if hr.is_file():
        big = np.asarray(Image.fromarray(load_image(hr)).resize((4000, 3000), Image.Resampling.BICUBIC))
        png, jpeg = ms_per_read([big], "PNG"), ms_per_read([big], "JPEG")
        print(f"  a 4000x3000 photo (Set14 lenna, enlarged): PNG {png:.0f} ms, JPEG file {jpeg:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "benchmarks",
                    help="folder holding SET/LR_bicubic/X4 (default: ../shared/data/benchmarks)")
    ap.add_argument("--sets", default="Set5,Set14,BSD100", help="comma-separated (default: Set5,Set14,BSD100)")
    ap.add_argument("--qualities", default="30,40,50,60,75,85,95",
                    help="JPEG qualities (default: 30,40,50,60,75,85,95)")
    ap.add_argument("--sigmas", default="0,2,5,10,15", help="noise sigmas, grey levels (default: 0,2,5,10,15)")
    args = ap.parse_args()
    images = load_set(args.data, args.sets.split(","))
    qualities = [int(q) for q in args.qualities.split(",")]
    print(f"{len(images)} LR images of {args.sets}")
    jpeg_table(images, qualities)
    tables_table(images)
    noise_table(images, [float(s) for s in args.sigmas.split(",")], qualities)
    clean_table(images)
    cost_table(images, args.data)


if __name__ == "__main__":
    main()
