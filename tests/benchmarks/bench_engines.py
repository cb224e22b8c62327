"""Per-image time of the generator through each inference engine (srgan.engines), one run.

    python tests/benchmarks/bench_engines.py [--model default] [--sizes 128,512] [--rounds 5]
                                              [--threads 1] [--engines eager,openvino-int8,...] [--static]

Each engine runs in its own process (one runtime per process, as in a replica: PyTorch's OpenMP
pool and OpenVINO's TBB pool never compete for the cores). The parent interleaves them: each round asks
every engine in turn for one image of one size (batch 1), one at a time, so that a busy host
slows them alike; the table gives medians over rounds and ratios against today's endpoint path
(eager bf16 autocast on a contiguous tensor) and against the eager-bf16 engine (bf16 +
channels_last). Engines are exported into the cache first (their export time is printed, not
timed). Inputs are real: a Set14 photo, mirrored out to the size.

`--static` adds openvino-int8 compiled for each size alone (the graph reshaped to 1x3xSxS), to
show what the dynamic-shape graph costs. End-to-end images/s through the HTTP endpoint:
`tests/benchmarks/bench_serve.py --engine NAME` (decode, tiling, batching, encode included).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT.parent / "shared" / "data" / "benchmarks" / "Set14" / "HR" / "lenna.png"
TODAY = "eager-bf16, contiguous"  # the endpoint's path before the engines: autocast, no channels_last
STATIC = "openvino-int8, static"
DEFAULT_ENGINES = "eager,eager-bf16,onnx,openvino,openvino-bf16,openvino-int8"


def photo(size: int) -> np.ndarray:
    """uint8 (size, size, 3): a real photo, cropped, mirrored out where it is smaller."""
    from srgan import ASSETS
    from srgan.images import load_image

    path = PHOTO if PHOTO.is_file() else ASSETS / "benchmarks" / "Set5" / "HR" / "baby.png"
    rgb = load_image(path)[:size, :size]
    return np.pad(rgb, ((0, size - rgb.shape[0]), (0, size - rgb.shape[1]), (0, 0)), mode="symmetric")


def static_int8(folder: Path, size: int, threads: int) -> Callable:
    """openvino-int8 compiled for one input shape (1, 3, size, size)."""
    import openvino as ov

    from srgan.engines import IR_FILE, from_batch, to_batch

    core = ov.Core()
    model = core.read_model(folder / IR_FILE)
    model.reshape([1, 3, size, size])
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads,
                                                 "PERFORMANCE_HINT": "LATENCY"})
    return lambda windows: from_batch(compiled(to_batch(windows))[0])


def runner(model: str, name: str, threads: int, size: int) -> tuple[Callable, str]:
    """The callable timed as `name`, and a line about it."""
    from pipelines.model_uri import load_engine, load_model
    from srgan.eager import EagerEngine

    if name == TODAY:
        engine = EagerEngine(load_model(model), "bf16")
        engine.g, engine.channels_last = load_model(model), False  # the old upscale_windows(g, w, bf16=True)
        return engine, ""
    engine = load_engine(model, "openvino-int8" if name == STATIC else name)
    if engine.name != (name if name != STATIC else "openvino-int8"):
        raise SystemExit(f"{name} is not available here (fell back to {engine.name})")
    if name == STATIC:
        return static_int8(engine.folder, size, threads), ""
    about = ""
    if engine.card:
        psnr = engine.card["set5_psnr"]
        about = (f"{name}: exported in {engine.card['export_seconds']} s, Set5 PSNR {psnr['engine']:.3f} dB "
                 f"(eager fp32 {psnr['eager_fp32']:.3f})")
    return engine, about


def worker(conn: Connection, model: str, name: str, threads: int, size: int) -> None:
    """One engine in its own process: warm up, then time one image per request until told to stop."""
    import torch

    torch.set_num_threads(threads)  # before building: the runtimes take torch's thread count
    run, about = runner(model, name, threads, size)
    image = photo(size)
    run([image])  # first call: kernels compiled for the shape
    conn.send(about)
    try:
        while conn.recv():
            start = time.perf_counter()
            run([image])
            conn.send(time.perf_counter() - start)
    except EOFError:  # the parent is gone
        pass


def measure(args: argparse.Namespace, names: list[str], size: int) -> dict[str, list[float]]:
    """{name: [seconds per round]} at one size, the engines' processes asked in turn."""
    ctx = mp.get_context("spawn")
    procs, conns = [], {}
    for name in names:
        parent, child = ctx.Pipe()
        procs.append(ctx.Process(target=worker, args=(child, args.model, name, args.threads, size), daemon=True))
        procs[-1].start()
        conns[name] = parent
        about = parent.recv()  # one at a time: exports and warm-ups do not overlap
        if about and size == args.sizes[0]:
            print(about)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name, conn in conns.items():
            time.sleep(0.2)  # let the last process's threads stop spinning
            conn.send(True)
            times[name].append(conn.recv())
        print(f"{size}px round {r + 1}/{args.rounds}: " +
              ", ".join(f"{n} {t[-1] * 1000:.0f} ms" for n, t in times.items()), flush=True)
    for conn, proc in zip(conns.values(), procs):
        conn.send(False)
        proc.join()
    return times


def table(times: dict[int, dict[str, list[float]]]) -> str:
    sizes = list(times)
    names = list(times[sizes[0]])
    med = {(n, s): float(np.median(times[s][n])) for s in sizes for n in names}
    head = "".join(f"{f'{s} px, ms':>12}{'vs today':>10}{'vs bf16+CL':>12}" for s in sizes)
    lines = [f"{'engine':<24}{head}"]
    for n in names:
        cells = ""
        for s in sizes:
            t, bf16 = med[(n, s)], med.get(("eager-bf16", s), float("nan"))
            cells += f"{t * 1000:>12.0f}{med[(TODAY, s)] / t:>9.2f}x{bf16 / t:>11.2f}x"
        lines.append(f"{n:<24}{cells}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--sizes", default="128,512", type=lambda s: [int(x) for x in s.split(",")],
                    help="LR input sides (default: 128,512)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="threads per engine; a Serve replica has 1 CPU "
                                                           "(default: %(default)s)")
    ap.add_argument("--engines", default=DEFAULT_ENGINES)
    ap.add_argument("--static", action="store_true", help="also openvino-int8 compiled per shape")
    args = ap.parse_args()
    names = [TODAY, *args.engines.split(","), *([STATIC] if args.static else [])]
    times = {size: measure(args, names, size) for size in args.sizes}
    import torch

    print(f"\n{args.model}, batch 1, {args.threads} thread(s) per engine, median of {args.rounds} interleaved rounds "
          f"(torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()})")
    print(table(times))


if __name__ == "__main__":
    main()
