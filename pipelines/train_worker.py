"""The Ray Train worker: `train_loop_per_worker` for both phases.

Each worker reads its share of the crop stream, runs the core's generator (and discriminator)
steps under DDP, and every `checkpoint_every` steps all workers call `ray.train.report`; rank 0
attaches the checkpoint. Rank 0 alone validates and talks to MLflow. On a restart (a lost worker,
or the same command run again) the loop resumes from the latest checkpoint: networks, optimizers,
step (the learning-rate schedule follows from it) and RNG.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipelines.cluster import NotOnThisNode
from srgan.benchmarks import comparison_grid, evaluate_set, load_pair, set_layout
from srgan.checkpoint import D_WEIGHTS, G_WEIGHTS, load_generator, load_training_state, save_checkpoint
from srgan.config import Config, from_dict, lr_at
from srgan.inference import upscale
from srgan.losses import LossFn, content_loss, pixel_loss
from srgan.models import Discriminator, Generator
from srgan.steps import discriminator_step, generator_step

log = logging.getLogger("srgan.train")


@dataclass
class Networks:
    """What one worker trains; `g` and `d` may be DDP-wrapped."""

    g: nn.Module
    g_opt: torch.optim.Optimizer
    d: nn.Module | None = None
    d_opt: torch.optim.Optimizer | None = None


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def _prepare(module: nn.Module, cfg: Config) -> nn.Module:
    if cfg.train.sync_bn:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if cfg.train.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return ray.train.torch.prepare_model(module)  # to the device; DDP when there are several workers


def _optimizer(module: nn.Module, cfg: Config, phase: str) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=getattr(cfg, phase).lr, betas=(cfg.train.beta1, cfg.train.beta2))


def build_networks(cfg: Config, phase: str, init: str | None, tracking_uri: str | None = None) -> Networks:
    """Generator (from `init` if given) and, for phase srgan, a discriminator: each prepared for DDP
    on its own, each with its own Adam."""
    g = Generator(cfg.model)
    if init:
        from pipelines.model_uri import checkpoint_folder

        g.load_state_dict(load_generator(checkpoint_folder(init, tracking_uri)).state_dict())
    g = _prepare(g, cfg)
    nets = Networks(g, _optimizer(g, cfg, phase))
    if phase == "srgan":
        nets.d = _prepare(Discriminator(cfg.model), cfg)
        nets.d_opt = _optimizer(nets.d, cfg, phase)
    return nets


def _stateful(nets: Networks) -> dict[str, Any]:
    return {k: v for k, v in (("g_opt", nets.g_opt), ("d_opt", nets.d_opt)) if v is not None}


def restore(nets: Networks, folder: str) -> dict[str, Any]:
    """Load a training checkpoint into `nets`; returns its training state (step, run id, ...)."""
    unwrap(nets.g).load_state_dict(load_file(Path(folder) / G_WEIGHTS))
    if nets.d is not None:
        unwrap(nets.d).load_state_dict(load_file(Path(folder) / D_WEIGHTS))
    state = load_training_state(folder)
    for name, obj in _stateful(nets).items():
        obj.load_state_dict(state[name])
    torch.set_rng_state(state["torch_rng"])
    return state


def _to_input(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1] on `device`."""
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def timed(iterable: Iterable[Any]) -> Iterator[tuple[float, Any]]:
    """Yield (seconds spent waiting for the item, item): how long training waited on its input."""
    it = iter(iterable)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        yield time.perf_counter() - t0, item


class Meter:
    """Running means of the step logs between two log lines, and the step rate.

    Device tensors are summed where they are and read back once per log line, so the host never
    waits for the GPU between steps.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float | torch.Tensor] = {}
        self.n, self.t0 = 0, time.perf_counter()

    def add(self, logs: dict[str, float | torch.Tensor]) -> None:
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def flush(self) -> tuple[dict[str, float], float]:
        means = {k: float(v) / max(self.n, 1) for k, v in self.sums.items()}
        rate = self.n / max(time.perf_counter() - self.t0, 1e-9)
        self.__init__()
        return means, rate


def validate(g: nn.Module, val_dir: str, scale: int, bf16: bool) -> tuple[dict[str, float], Any]:
    """PSNR/SSIM over `val_dir` with the core protocol, and a bicubic | SR | HR grid of its first image."""
    if not Path(val_dir).is_dir():
        raise NotOnThisNode(val_dir, "--val")
    g = unwrap(g).eval()
    try:
        result = evaluate_set(lambda lr: upscale(g, lr, bf16), Path(val_dir), scale)
        files, lr_dir = set_layout(Path(val_dir), scale)
        lr, hr, _ = load_pair(files[0], lr_dir, scale)
        grid = comparison_grid(lr, upscale(g, lr, bf16), hr)
    finally:
        g.train()
    return {"val/psnr": result["psnr"], "val/ssim": result["ssim"]}, grid


def _report(nets: Networks, cfg: Config, step: int, metrics: dict[str, Any], rank: int,
            state: dict[str, Any], final_model: tuple[str, str] | None) -> None:
    """All ranks report; rank 0 attaches the checkpoint (and logs the final model to MLflow)."""
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(tmp, unwrap(nets.g), cfg, d=unwrap(nets.d) if nets.d is not None else None,
                        training_state={**state, "step": step, "torch_rng": torch.get_rng_state(),
                                        **{k: v.state_dict() for k, v in _stateful(nets).items()}},
                        phase=metrics["phase"], step=step)
        if final_model is not None:
            from pipelines import tracking
            metrics["model_uri"] = tracking.log_model(tmp, *final_model)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=f"checkpoint_{step:08d}")


def _resume(nets: Networks, rank: int) -> dict[str, Any]:
    """The training state of the latest checkpoint, loaded into `nets`; a fresh state if none."""
    checkpoint = ray.train.get_checkpoint()
    if not checkpoint:
        return {"step": 0, "mlflow_run_id": None}
    with checkpoint.as_directory() as folder:
        state = restore(nets, folder)
    log.info("rank %d resumed at step %d", rank, state["step"])
    return state


def _train_step(nets: Networks, batch: dict[str, torch.Tensor], content: LossFn, cfg: Config,
                lr: float, device: torch.device) -> dict[str, float | torch.Tensor]:
    """One G step (and, in phase srgan, one D step) at learning rate `lr` on a batch of uint8 crops."""
    tc = cfg.train
    for opt in _stateful(nets).values():
        for group in opt.param_groups:
            group["lr"] = lr
    lr_img, hr_img = (_to_input(batch[k], device, tc.channels_last) for k in ("lr", "hr"))
    d = unwrap(nets.d) if nets.d is not None else None
    logs, sr = generator_step(nets.g, nets.g_opt, lr_img, hr_img, content, d=d,
                              adversarial_weight=cfg.loss.adversarial_weight, bf16=tc.bf16)
    if nets.d is not None:
        logs |= discriminator_step(nets.d, nets.d_opt, hr_img, sr, bf16=tc.bf16)
    return logs | {"lr": lr}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg, phase = from_dict(config["cfg"]), config["phase"]
    steps, tc = getattr(cfg, phase).steps, cfg.train
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config["threads"])
    torch.manual_seed(tc.seed)
    device = ray.train.torch.get_device()
    log.info("rank %d of %d on node %s (%s)", rank, world, ray.get_runtime_context().get_node_id()[:12], device)
    nets = build_networks(cfg, phase, config.get("init"), config["tracking_uri"])
    state = _resume(nets, rank)
    step = start_step = state["step"]
    if rank == 0:
        from pipelines import tracking
        state["mlflow_run_id"] = tracking.start_run(config["tracking_uri"], config["experiment_id"],
                                                    config["run_name"], state["mlflow_run_id"])
        if not start_step:
            tracking.mlflow.log_params(tracking.flatten({"phase": phase, "workers": world, **config["cfg"]}))
    content: LossFn = pixel_loss(cfg.loss.pixel) if phase == "srresnet" else content_loss(cfg.loss)
    per_worker = tc.batch_size // world
    shard = ray.train.get_dataset_shard("train")
    meter, latest = Meter(), {}
    while step < steps:  # one pass over the crop stream per epoch: fresh crops each time
        epoch_start = step
        batches = shard.iter_torch_batches(batch_size=per_worker, drop_last=True,
                                           local_shuffle_buffer_size=per_worker * 8)
        for wait, batch in timed(batches):
            step += 1
            logs = _train_step(nets, batch, content, cfg, lr_at(getattr(cfg, phase), step - 1), device)
            meter.add(logs | {"data_wait_s": wait})
            last = step == steps
            if rank == 0 and (step % tc.log_every == 0 or last):
                latest |= _log_train(meter, step, steps, tc.batch_size)
            if rank == 0 and config.get("val_dir") and (step % tc.val_every == 0 or last):
                latest |= _log_val(nets.g, config["val_dir"], cfg, step)
            if step % tc.checkpoint_every == 0 or last:
                metrics = {"step": step, "start_step": start_step, "phase": phase,
                           "mlflow_run_id": state["mlflow_run_id"] or "", **latest}
                final = (config["registered_model"], phase) if last and rank == 0 else None
                _report(nets, cfg, step, metrics, rank, state, final)
            if last:
                break
        if step == epoch_start:
            raise RuntimeError(f"worker {rank}: the training data gave no batch of {per_worker} crops")
    if rank == 0:
        tracking.mlflow.end_run()


def _log_train(meter: Meter, step: int, steps: int, batch_size: int) -> dict[str, float]:
    from pipelines import tracking
    means, rate = meter.flush()
    metrics = {f"train/{k}": v for k, v in means.items()}
    metrics |= {"train/steps_per_s": rate, "train/images_per_s": rate * batch_size}
    tracking.log_metrics(metrics, step)
    eta = (steps - step) / max(rate, 1e-9)
    log.info("step %d/%d  g_loss %.5f  %.2f steps/s  waiting for data %.0f%%  ETA %dm%02ds", step, steps,
             means.get("g_loss", math.nan), rate, 100 * means.get("data_wait_s", 0.0) * rate, eta // 60, eta % 60)
    return metrics


def _log_val(g: nn.Module, val_dir: str, cfg: Config, step: int) -> dict[str, float]:
    from pipelines import tracking
    metrics, grid = validate(g, val_dir, cfg.model.scale, cfg.train.bf16)
    tracking.log_metrics(metrics, step)
    tracking.log_image(grid, f"val/grid_{step:08d}.png")
    log.info("step %d  val PSNR %.2f dB  SSIM %.4f", step, metrics["val/psnr"], metrics["val/ssim"])
    return metrics
