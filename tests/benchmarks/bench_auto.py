"""Per-image time of `auto` (reading the condition, then the conditioned generator) against
`realworld` (blind) on one degraded BSD100 set, through the same engine, in one run.

    python tests/benchmarks/bench_auto.py [--spec jpeg:75] [--engine openvino-int8] [--rounds 3]
                                          [--realesrgan runs/realesrgan/all.json]

The inputs are the LR files `srgan evaluate --degrade SPEC` makes (the JPEG itself for a JPEG spec),
decoded once. Each round times every image through each path in turn, so a busy host slows them
alike; the table gives, per path, the median over rounds of the mean per image, and the ratio
against `realworld`. `auto` is split into its two parts: `read_condition` on the decoded file and
the generator told the result (whole images, as evaluate runs them). `--realesrgan` adds Real-ESRGAN
x4plus's seconds per image from scripts/realesrgan_reference.sh's JSON (measured in its own venv,
on the same machine; not in this process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "benchmarks"


def inputs(spec_text: str) -> list:
    """The decoded LR files of BSD100 degraded by the spec."""
    from srgan.benchmarks import load_input, set_layout
    from srgan.degradations import parse_spec
    from srgan.images import decode_image

    files, lr_dir = set_layout(DATA / "BSD100", 4)
    spec = parse_spec(spec_text)
    return [decode_image(load_input(f, lr_dir, 4, spec).file) for f in files]


def mean_seconds(run, images: list) -> float:
    start = time.perf_counter()
    for image in images:
        run(image)
    return (time.perf_counter() - start) / len(images)


def main(args: argparse.Namespace) -> None:
    from pipelines.model_uri import load_engine
    from srgan.condition import read_condition
    from srgan.inference import upscale

    images = inputs(args.spec)
    engines = {name: load_engine(name, args.engine) for name in ("realworld", "auto")}
    conditions = [read_condition(image) for image in images]
    told = dict(zip(map(id, images), conditions))
    paths = {
        "realworld": lambda image: upscale(engines["realworld"], image.rgb),
        "auto: read_condition": read_condition,
        "auto: generator": lambda image: upscale(engines["auto"], image.rgb, told[id(image)]),
        "auto: both": lambda image: upscale(engines["auto"], image.rgb, read_condition(image)),
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, run in paths.items():
            times[name].append(mean_seconds(run, images))
    base = statistics.median(times["realworld"])
    print(f"BSD100 {args.spec}, {len(images)} images, engine {args.engine}, {args.rounds} rounds (median)")
    print(f"{'path':<24}{'ms per image':>14}{'x realworld':>13}")
    for name, values in times.items():
        ms = 1000 * statistics.median(values)
        print(f"{name:<24}{ms:>14.1f}{ms / 1000 / base:>13.2f}")
    if args.realesrgan:
        measured = json.loads(Path(args.realesrgan).read_text())[args.spec]["BSD100"]["seconds_per_image"]
        print(f"{'Real-ESRGAN x4plus':<24}{1000 * measured:>14.1f}{measured / base:>13.2f}  (its own venv, ncnn)")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", default="jpeg:75", help="degradation spec of the BSD100 LR (default: %(default)s)")
    p.add_argument("--engine", default="openvino-int8", help="inference engine of both models (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds over the set (default: %(default)s)")
    p.add_argument("--realesrgan", help="scripts/realesrgan_reference.sh's --json, for its seconds per image")
    return p


if __name__ == "__main__":
    main(get_args_parser().parse_args())
