"""Step time of the core loop on one device: precision, memory layout, batch, host sync, torch.compile.

    python tests/benchmarks/bench_step.py [--device cuda] [--batches 16,64] [--steps 50]

Rows: paper-size SRResNet generator steps (HR 96 px, MSE) and SRGAN steps (G then D). "sync"
is the library's step, which reads its losses back to the host every step; "async" keeps them on
the device, so the host can queue the next step's kernels while the GPU runs this one's.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from srgan.config import load_config
from srgan.losses import pixel_loss
from srgan.models import Discriminator, Generator
from srgan.steps import autocast, discriminator_step, generator_step


def async_generator_step(g, opt, lr, hr, loss_fn, bf16):
    """generator_step without reading the loss back: what a step costs when the host never waits."""
    opt.zero_grad(set_to_none=True)
    with autocast(lr.device, bf16):
        sr = g(lr)
    loss = loss_fn(sr.float(), hr)
    loss.backward()
    opt.step()
    return loss.detach()


def seconds_per_step(step, steps: int, device: torch.device) -> float:
    for _ in range(10):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def inputs(batch: int, fmt: torch.memory_format, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch: LR 24 px, HR 96 px."""
    hr = torch.rand(batch, 3, 96, 96, device=device)
    return torch.nn.functional.avg_pool2d(hr, 4).contiguous(memory_format=fmt), hr.contiguous(memory_format=fmt)


def srresnet_row(batch: int, bf16: bool, cl: bool, sync: bool, compiled: bool, steps: int,
                 device: torch.device) -> str:
    fmt = torch.channels_last if cl else torch.contiguous_format
    torch.manual_seed(0)
    g = Generator(load_config("paper").model).to(device, memory_format=fmt)
    opt, mse = torch.optim.Adam(g.parameters(), 1e-4), pixel_loss("mse")
    lr, hr = inputs(batch, fmt, device)
    name = f"srresnet b{batch} {'bf16' if bf16 else 'fp32'}{' CL' if cl else ''} {'sync' if sync else 'async'}"
    if compiled:
        g = torch.compile(g)
        t0 = time.perf_counter()
        async_generator_step(g, opt, lr, hr, mse, bf16)
        if device.type == "cuda":
            torch.cuda.synchronize()
        name += f" compiled ({time.perf_counter() - t0:.0f} s)"
    if sync:
        s = seconds_per_step(lambda: generator_step(g, opt, lr, hr, mse, bf16=bf16), steps, device)
    else:
        s = seconds_per_step(lambda: async_generator_step(g, opt, lr, hr, mse, bf16), steps, device)
    return f"{name:<48}{s:.4f} s/step {batch / s:7.0f} img/s"


def srgan_row(batch: int, bf16: bool, steps: int, device: torch.device) -> str:
    cfg = load_config("paper")
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    g = Generator(cfg.model).to(device, memory_format=fmt)
    d = Discriminator(cfg.model).to(device, memory_format=fmt)
    g_opt, d_opt = torch.optim.Adam(g.parameters(), 1e-4), torch.optim.Adam(d.parameters(), 1e-4)
    mse = pixel_loss("mse")
    lr, hr = inputs(batch, fmt, device)

    def step() -> None:
        _, sr = generator_step(g, g_opt, lr, hr, mse, d=d, adversarial_weight=1e-3, bf16=bf16)
        discriminator_step(d, d_opt, hr, sr, bf16=bf16)

    s = seconds_per_step(step, steps, device)
    return f"{f'srgan b{batch} ' + ('bf16 CL' if bf16 else 'fp32') + ' sync':<48}{s:.4f} s/step {batch / s:7.0f} img/s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", default="16,64")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    print(json.dumps({"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                      "torch": torch.__version__}), flush=True)
    for batch in map(int, args.batches.split(",")):
        rows = [(bf16, cl, sync, False) for bf16 in (False, True) for cl in (False, True) for sync in (True, False)]
        if not args.no_compile:
            rows += [(False, False, False, True), (True, True, False, True)]
        for row in rows:
            try:
                print(srresnet_row(batch, *row, args.steps, device), flush=True)
            except Exception as e:  # a compiler missing on this machine, say: report it and go on
                print(f"srresnet b{batch} {row}: failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
        for bf16 in (False, True):
            print(srgan_row(batch, bf16, args.steps, device), flush=True)


if __name__ == "__main__":
    main()
