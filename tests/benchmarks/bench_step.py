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
from srgan.trainer import Trainer

Step = Callable[[], dict[str, float | torch.Tensor]]


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


def inputs(batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch as a runner hands it over: uint8 LR 24 px, HR 96 px."""
    gen = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (batch, 96, 96, 3), dtype=torch.uint8, generator=gen).to(device)
    lr = torch.randint(0, 256, (batch, 24, 24, 3), dtype=torch.uint8, generator=gen).to(device)
    return lr, hr


def trainer_step(phase: str, batch: int, bf16: bool, cl: bool, compiled: bool, device: torch.device) -> Step:
    """The core trainer's step (G; in phase srgan G then D) on a fixed batch."""
    cfg = load_config("paper", overrides=[f"train.bf16={bf16}", f"train.channels_last={cl}", "loss.content=mse"])
    trainer = Trainer(cfg, phase, device)
    if compiled:
        trainer.g = torch.compile(trainer.g)
    lr, hr = inputs(batch, device)
    return lambda: trainer.train_step(lr, hr)


def srresnet_step(batch: int, bf16: bool, cl: bool, compiled: bool, device: torch.device) -> Step:
    return trainer_step("srresnet", batch, bf16, cl, compiled, device)


def srgan_step(batch: int, bf16: bool, cl: bool, compiled: bool, device: torch.device) -> Step:
    return trainer_step("srgan", batch, bf16, cl, compiled, device)


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
