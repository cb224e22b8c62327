"""Train with the core loop alone (no Ray, no MLflow): for a machine where Ray cannot be installed.

The project's GPU runs were made on a lent machine with no network, where PyTorch was present and
Ray was not; this script runs the same core pieces `srgan train` runs on each Ray worker (tiles
from `srgan.crops`, `generator_step` / `discriminator_step`, the checkpoint format), timed by
wall clock rather than by step count, and writes checkpoints that `srgan train --init`,
`srgan evaluate` and `srgan serve` take as they are.

    python scripts/core_train.py --data IMAGES --init CHECKPOINT --out OUT \
        --srresnet-seconds 300 --srgan-seconds 150 --val srgan/assets/benchmarks/Set5

In order: SRResNet fine-tuning from --init (L1, lr halved at 50/75/90 % of the steps), then SRGAN
from that result (VGG54 content loss where ImageNet VGG19 weights are in torchvision's cache, else
SRGAN-MSE; lr / 10 at half way). Step speed on a device: tests/benchmarks/bench_step.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch

from srgan.benchmarks import IMAGE_SUFFIXES, evaluate_set
from srgan.checkpoint import load_generator, read_meta, save_checkpoint
from srgan.config import Config, PhaseConfig, for_device, from_dict, lr_at
from srgan.crops import random_crops, tile_pairs
from srgan.images import ImageError, load_image
from srgan.inference import upscale
from srgan.losses import VGGWeightsError, content_loss, pixel_loss, vgg_weights_path
from srgan.models import Discriminator
from srgan.steps import discriminator_step, generator_step

SCALE, TILE = 4, 128


def _tiles(path: Path) -> tuple[np.ndarray, np.ndarray] | str:
    try:
        pairs = list(tile_pairs(load_image(path), SCALE, TILE, TILE))
    except ImageError as e:
        return str(e)
    if not pairs:
        return f"{path}: smaller than one {TILE} px tile"
    return np.stack([p[2] for p in pairs]), np.stack([p[3] for p in pairs])


def load_tiles(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """All (HR, LR) 128/32 px tiles of the images in `folder`, as `srgan prepare` cuts them."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    with multiprocessing.Pool() as pool:
        results = pool.map(_tiles, files)
    kept = [r for r in results if not isinstance(r, str)]
    for r in results:
        if isinstance(r, str):
            print(f"  skipped: {r}")
    hr, lr = np.concatenate([k[0] for k in kept]), np.concatenate([k[1] for k in kept])
    print(f"{len(files)} images, {len(kept)} used, {len(hr)} tiles")
    return hr, lr


class Batches:
    """Random aligned crops with flips and rotations (the core's `random_crops`), on the device."""

    def __init__(self, hr: np.ndarray, lr: np.ndarray, batch: int, crop: int, device: torch.device, seed: int):
        self.hr, self.lr, self.batch, self.crop, self.device = hr, lr, batch, crop, device
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.rng.integers(0, len(self.hr), self.batch)
        hr, lr = random_crops(self.hr[idx], self.lr[idx], self.crop, self.rng)
        return tuple(torch.from_numpy(a).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
                     .contiguous(memory_format=torch.channels_last) for a in (lr, hr))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def validate(g: torch.nn.Module, val: Path) -> dict[str, float]:
    g.eval()
    result = evaluate_set(lambda lr: upscale(g, lr), val, SCALE)
    g.train()
    return {"psnr": round(result["psnr"], 3), "ssim": round(result["ssim"], 4)}


def train_phase(phase: str, g, cfg: Config, batches: Batches, seconds: float, lr: float,
                fractions: tuple[float, ...], gamma: float, val: Path, log: list, content=None, d=None
                ) -> PhaseConfig:
    """Train for about `seconds`: the step count is fixed after a 100-step rate probe, and lr is
    multiplied by `gamma` at those `fractions` of it. Returns the schedule that ran."""
    g_opt = torch.optim.Adam(g.parameters(), lr, betas=(cfg.train.beta1, cfg.train.beta2))
    d_opt = torch.optim.Adam(d.parameters(), lr, betas=(cfg.train.beta1, cfg.train.beta2)) if d else None
    content = content or pixel_loss(cfg.loss.pixel)
    schedule = PhaseConfig(steps=0, lr=lr, lr_gamma=gamma)  # steps and milestones once the rate is known
    step, start = 0, time.perf_counter()
    while not schedule.steps or step < schedule.steps:
        lr_now = lr_at(schedule, step)
        set_lr(g_opt, lr_now)
        lr_img, hr_img = batches()
        if d is None:
            logs, _ = generator_step(g, g_opt, lr_img, hr_img, content, bf16=cfg.train.bf16)
        else:
            set_lr(d_opt, lr_now)
            logs, sr = generator_step(g, g_opt, lr_img, hr_img, content, d=d,
                                      adversarial_weight=cfg.loss.adversarial_weight, bf16=cfg.train.bf16)
            logs |= discriminator_step(d, d_opt, hr_img, sr, bf16=cfg.train.bf16)
        step += 1
        if not schedule.steps and step == 100:
            rate = step / (time.perf_counter() - start)
            total = max(step, int(rate * seconds))
            schedule = dataclasses.replace(schedule, steps=total,
                                           lr_milestones=tuple(int(total * f) for f in fractions))
            print(f"{phase}: {rate:.1f} steps/s -> {total} steps, lr x{gamma} at {list(schedule.lr_milestones)}")
        total = schedule.steps
        if total and (step % max(1, total // 10) == 0 or step == total):
            entry = {"phase": phase, "step": step, "seconds": round(time.perf_counter() - start, 1), "lr": lr_now,
                     **{k: round(float(v), 5) for k, v in logs.items()},
                     **{f"val_{k}": v for k, v in validate(g, val).items()}}
            log.append(entry)
            print(json.dumps(entry), flush=True)
    return schedule


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder of HR training images")
    p.add_argument("--init", type=Path, required=True, help="SRResNet checkpoint to start from")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--val", type=Path, required=True, help="validation set (a benchmark set folder)")
    p.add_argument("--srresnet-seconds", type=float, default=300)
    p.add_argument("--srgan-seconds", type=float, default=150)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction,
                   help="bf16 autocast (default: `train.bf16`'s device default, on for CPU, off for GPU)")
    args = p.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    meta = read_meta(args.init)
    base = from_dict(meta["config"])
    cfg = for_device(dataclasses.replace(base, train=dataclasses.replace(base.train, batch_size=args.batch,
                                                                         bf16=args.bf16)), gpu=device.type == "cuda")
    t0 = time.perf_counter()
    tiles = load_tiles(args.data)  # worker processes forked before CUDA starts in this one
    batches = Batches(*tiles, args.batch, cfg.model.hr_crop, device, seed=0)
    summary = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "torch": torch.__version__, "init": str(args.init), "init_step": meta.get("step"), "batch": args.batch,
               "bf16": cfg.train.bf16}
    print(json.dumps(summary), flush=True)
    summary["tiles"], summary["load_s"] = len(batches.hr), round(time.perf_counter() - t0, 1)

    log: list = []
    g = load_generator(args.init).to(device, memory_format=torch.channels_last).train()
    summary["init_val"] = validate(g, args.val)
    ran = train_phase("srresnet", g, cfg, batches, args.srresnet_seconds, 2e-4, (0.5, 0.75, 0.9), 0.5, args.val, log)
    start = meta.get("step") or 0  # the saved schedule counts from the start of the run --init came from
    srresnet_steps = start + ran.steps
    srresnet_cfg = dataclasses.replace(cfg, srresnet=dataclasses.replace(
        ran, steps=srresnet_steps, lr_milestones=tuple(start + m for m in ran.lr_milestones)))
    save_checkpoint(args.out / "srresnet", g, srresnet_cfg, phase="srresnet", step=srresnet_steps,
                    continued_from=str(args.init), device=summary["device"])

    try:
        vgg_weights_path(cfg.loss.vgg_weights)
        kind = "vgg54"
    except VGGWeightsError:
        kind = "mse"
    gan_cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, content=kind))
    d = Discriminator(cfg.model).to(device, memory_format=torch.channels_last).train()
    content = content_loss(gan_cfg.loss)
    ran = train_phase("srgan", g, gan_cfg, batches, args.srgan_seconds, 1e-4, (0.5,), 0.1, args.val, log,
                      content=content, d=d)
    gan_cfg = dataclasses.replace(gan_cfg, srgan=ran)
    # Without the discriminator (95 MB in float32): a GAN run from this generator starts a fresh one.
    save_checkpoint(args.out / "srgan", g, gan_cfg, phase="srgan", step=ran.steps, content=kind,
                    init_from=f"srresnet step {srresnet_steps}", device=summary["device"])
    summary.update(log=log, srgan_content=kind, total_s=round(time.perf_counter() - t0, 1))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"done in {summary['total_s']} s; checkpoints in {args.out}")


if __name__ == "__main__":
    main()
