"""Per-image time of the generator through each inference engine (srgan.engines), one run.

    python tests/benchmarks/bench_engines.py [--model default] [--sizes 128,512] [--rounds 5]
                                              [--threads N] [--engines eager,openvino-int8,...] [--static]

Each round times one image of each size through every engine in turn (batch 1, the engines
interleaved so that a busy host slows them alike); the table gives the medians over rounds and
ratios against today's endpoint path (eager bf16 autocast on a contiguous tensor) and against the
eager-bf16 engine (bf16 + channels_last). Engines are exported into the cache first (their export
time is printed, not timed). Inputs are real: a Set14 photo, mirrored out to the size.

`--static` adds openvino-int8 compiled for each size alone (the graph reshaped to 1x3xSxS) to show
what the dynamic-shape graph costs. End-to-end images/s through the HTTP endpoint:
`tests/benchmarks/bench_serve.py --engine NAME` (decode, tiling, batching, encode included).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT.parent / "shared" / "data" / "benchmarks" / "Set14" / "HR" / "lenna.png"
TODAY = "eager-bf16, contiguous"  # what the endpoint ran before the engines: autocast, no channels_last
DEFAULT_ENGINES = "eager,eager-bf16,onnx,openvino,openvino-bf16,openvino-int8"


def photo(size: int) -> np.ndarray:
    """uint8 (size, size, 3): a real photo, cropped, mirrored out where it is smaller."""
    from srgan import ASSETS
    from srgan.images import load_image

    path = PHOTO if PHOTO.is_file() else ASSETS / "benchmarks" / "Set5" / "HR" / "baby.png"
    rgb = load_image(path)[:size, :size]
    return np.pad(rgb, ((0, size - rgb.shape[0]), (0, size - rgb.shape[1]), (0, 0)), mode="symmetric")


def today(g: torch.nn.Module) -> Callable:
    """The endpoint's path before the engines: bf16 autocast on the contiguous model."""
    from srgan.engines import EagerEngine

    engine = EagerEngine(g, "bf16")
    engine.g, engine.channels_last = g, False
    return engine


def static_int8(engine, size: int, threads: int) -> Callable:
    """openvino-int8 compiled for one input shape (1, 3, size, size)."""
    import openvino as ov

    from srgan.engines import IR_FILE, from_batch, to_batch

    core = ov.Core()
    model = core.read_model(engine.folder / IR_FILE)
    model.reshape([1, 3, size, size])
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads,
                                                 "PERFORMANCE_HINT": "LATENCY"})
    return lambda windows: from_batch(compiled(to_batch(windows))[0])


def build(args: argparse.Namespace) -> dict[str, Callable]:
    from pipelines.model_uri import load_engine, load_model

    runners: dict[str, Callable] = {TODAY: today(load_model(args.model))}
    for name in args.engines.split(","):
        engine = load_engine(args.model, name)
        if engine.name != name:
            raise SystemExit(f"{name} is not available here (fell back to {engine.name}); see the log")
        runners[name] = engine
        if engine.card:
            psnr = engine.card["set5_psnr"]
            print(f"{name}: exported in {engine.card['export_seconds']} s, Set5 PSNR {psnr['engine']:.3f} dB "
                  f"(eager fp32 {psnr['eager_fp32']:.3f})")
    return runners


def measure(runners: dict[str, Callable], sizes: list[int], rounds: int, extra: Callable | None) -> dict:
    """{(name, size): [seconds per round]}, every runner timed once per size per round, in turn."""
    images = {s: photo(s) for s in sizes}
    static = {s: extra(s) for s in sizes} if extra else {}
    times: dict[tuple[str, int], list[float]] = {}
    for s in sizes:  # warm-up: first calls compile kernels for the shape
        for run in [*runners.values(), *([static[s]] if static else [])]:
            run([images[s]])
    for r in range(rounds):
        for s in sizes:
            for name, run in [*runners.items(), *([("openvino-int8, static shape", static[s])] if static else [])]:
                start = time.perf_counter()
                run([images[s]])
                times.setdefault((name, s), []).append(time.perf_counter() - start)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {s}px {t[-1] * 1000:.0f} ms"
                                                   for (n, s), t in times.items() if n in (TODAY, "openvino-int8")))
    return times


def table(times: dict, sizes: list[int]) -> str:
    names = list(dict.fromkeys(n for n, _ in times))
    med = {k: float(np.median(v)) for k, v in times.items()}
    head = "".join(f"{f'{s}px ms':>11}{'vs today':>10}{'vs bf16+CL':>11}" for s in sizes)
    lines = [f"{'engine':<30}{head}"]
    for n in names:
        cells = ""
        for s in sizes:
            t = med[(n, s)]
            bf16 = med.get(("eager-bf16", s), float("nan"))
            cells += f"{t * 1000:>11.0f}{med[(TODAY, s)] / t:>9.2f}x{bf16 / t:>10.2f}x"
        lines.append(f"{n:<30}{cells}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--sizes", default="128,512", help="LR input sides (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads, and the runtimes' (default: %(default)s)")
    ap.add_argument("--engines", default=DEFAULT_ENGINES)
    ap.add_argument("--static", action="store_true", help="also openvino-int8 compiled per shape")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    runners = build(args)
    extra = (lambda s: static_int8(runners["openvino-int8"], s, args.threads)) if args.static else None
    times = measure(runners, sizes, args.rounds, extra)
    print(f"\n{args.model}, batch 1, {args.threads} threads, median of {args.rounds} interleaved rounds "
          f"({torch.__version__}; {torch.backends.cpu.get_cpu_capability()})")
    print(table(times, sizes))


if __name__ == "__main__":
    main()
