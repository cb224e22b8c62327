"""Step time of the core loop on one device: precision, memory layout, batch, host sync, torch.compile.

    python tests/benchmarks/bench_step.py [--device cuda] [--batches 16,64] [--steps 50] [--rounds 3]

Rows: paper-size SRResNet generator steps (HR 96 px, MSE) and SRGAN steps (G then D). Each row
times the library's steps as the trainer runs them ("async": the losses stay on the device, so the
host queues the next step's kernels while the GPU runs this one's) and the same steps reading all
losses back every step ("sync"), in turns over --rounds, and prints the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from srgan.config import load_config
from srgan.losses import pixel_loss
from srgan.models import Discriminator, Generator
from srgan.steps import discriminator_step, generator_step

Step = Callable[[], dict[str, torch.Tensor]]


def seconds_per_step(step: Step, sync: bool, steps: int, device: torch.device) -> float:
    def run(n: int) -> None:
        for _ in range(n):
            logs = step()
            if sync:
                [float(v) for v in logs.values()]
        if device.type == "cuda":
            torch.cuda.synchronize()

    run(10)
    t0 = time.perf_counter()
    run(steps)
    return (time.perf_counter() - t0) / steps


def inputs(batch: int, fmt: torch.memory_format, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch: LR 24 px, HR 96 px."""
    hr = torch.rand(batch, 3, 96, 96, device=device)
    return torch.nn.functional.avg_pool2d(hr, 4).contiguous(memory_format=fmt), hr.contiguous(memory_format=fmt)


def srresnet_step(batch: int, bf16: bool, cl: bool, compiled: bool, device: torch.device) -> Step:
    fmt = torch.channels_last if cl else torch.contiguous_format
    torch.manual_seed(0)
    g = Generator(load_config("paper").model).to(device, memory_format=fmt)
    opt, mse = torch.optim.Adam(g.parameters(), 1e-4), pixel_loss("mse")
    lr, hr = inputs(batch, fmt, device)
    g = torch.compile(g) if compiled else g
    return lambda: generator_step(g, opt, lr, hr, mse, bf16=bf16)[0]


def srgan_step(batch: int, bf16: bool, cl: bool, compiled: bool, device: torch.device) -> Step:
    cfg = load_config("paper")
    fmt = torch.channels_last if cl else torch.contiguous_format
    g = Generator(cfg.model).to(device, memory_format=fmt)
    d = Discriminator(cfg.model).to(device, memory_format=fmt)
    g_opt, d_opt = torch.optim.Adam(g.parameters(), 1e-4), torch.optim.Adam(d.parameters(), 1e-4)
    mse = pixel_loss("mse")
    lr, hr = inputs(batch, fmt, device)

    def step() -> dict[str, torch.Tensor]:
        logs, sr = generator_step(g, g_opt, lr, hr, mse, d=d, adversarial_weight=1e-3, bf16=bf16)
        return logs | discriminator_step(d, d_opt, hr, sr, bf16=bf16)

    return step


def row(make: Callable[..., Step], batch: int, bf16: bool, cl: bool, compiled: bool, args) -> str:
    name = (f"{make.__name__.removesuffix('_step')} b{batch} {'bf16' if bf16 else 'fp32'}{' CL' if cl else ''}"
            f"{' compiled' if compiled else ''}")
    try:
        t0 = time.perf_counter()
        step = make(batch, bf16, cl, compiled, args.device)
        step()  # the first call compiles
        warmup = time.perf_counter() - t0
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for sync in (True, False):
                times[sync].append(seconds_per_step(step, sync, args.steps, args.device))
    except Exception as e:  # a compiler missing on this machine, say: report it and go on
        return f"{name}: failed: {type(e).__name__}: {str(e)[:300]}"
    s, a = statistics.median(times[True]), statistics.median(times[False])
    return (f"{name:<30} sync {s:.4f}  async {a:.4f} s/step  {batch / a:6.0f} img/s  async {s / a - 1:+.0%}"
            + (f"  (first step {warmup:.0f} s)" if compiled else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", type=torch.device, default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", default="16,64")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    print(json.dumps({"device": torch.cuda.get_device_name() if args.device.type == "cuda" else "cpu",
                      "torch": torch.__version__}), flush=True)
    for batch in map(int, args.batches.split(",")):
        rows = [(srresnet_step, bf16, cl, False) for bf16 in (False, True) for cl in (False, True)]
        rows += [(srgan_step, False, True, False), (srgan_step, True, True, False)]
        if not args.no_compile:
            rows += [(srresnet_step, False, True, True)]
        for make, bf16, cl, compiled in rows:
            print(row(make, batch, bf16, cl, compiled, args), flush=True)


if __name__ == "__main__":
    main()
