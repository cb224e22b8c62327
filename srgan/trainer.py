"""The training loop, in one place: networks, optimizers, the step schedule, the G and D steps,
validation, and the state a checkpoint needs. Fed by any iterator of uint8 crop batches.

    batches: (lr, hr) uint8 tensors (B, h, w, 3) and (B, h*s, w*s, 3), from any source
      -> Trainer.train_step   learning rate of this step; G step; in phase srgan a D step
      -> fit(...)             log / validate / checkpoint every N steps, until the phase's steps

Runners supply the batches and decide where logs and checkpoints go (`Events`): the Ray Train
worker (pipelines/train_worker.py: a dataset shard in; ray.train.report and MLflow out) and the
single-process runner (pipelines/train_local.py: tiles in memory in; files out). Both build the
networks through `Trainer`, so a step is the same function of (weights, batch) in either.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from srgan.benchmarks import comparison_grid, evaluate_set, load_pair, set_layout
from srgan.checkpoint import D_WEIGHTS, G_TRAIN_WEIGHTS, G_WEIGHTS, load_training_state, save_checkpoint
from srgan.config import PHASES, Config, for_device, learning_rate_at
from srgan.eager import EagerEngine, autocast
from srgan.inference import upscale
from srgan.losses import (
    LossFn,
    RandomFeatures,
    block_loss,
    content_loss,
    discriminator_gan_loss,
    feature_loss,
    flat_block_loss,
    focal_frequency_loss,
    generator_gan_loss,
    grid_loss,
    ldl_loss,
    pixel_loss,
)
from srgan.models import Generator, discriminator, is_conditioning, load_weights

log = logging.getLogger("srgan.train")
# uint8 (B, h, w, 3) LR, (B, h*s, w*s, 3) HR [, float32 (B, k) condition vectors]
Batch = tuple[torch.Tensor | np.ndarray, ...]
VAL_METRICS = ("psnr", "ssim", "niqe", "artifacts")


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Turn off gradients for `module`'s parameters for the duration (restored afterwards)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class Trainer:
    """The networks of one phase and how one step changes them.

    Args:
        cfg: the config; what it leaves to the device is decided here for `device` (`for_device`).
        phase: "srresnet" (pixel loss) or "srgan" (content + adversarial, with a discriminator).
        device: where the networks and batches live.
        g_init: generator weights to start from (a state dict), else a fresh generator.
        wrap: applied to each network after it is moved to `device` and laid out: Ray Train's
            `prepare_model` (DDP across workers); identity in one process.
    """

    def __init__(self, cfg: Config, phase: str, device: torch.device | str = "cpu",
                 g_init: dict[str, torch.Tensor] | None = None,
                 wrap: Callable[[nn.Module], nn.Module] = lambda m: m):
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        self.device = torch.device(device)
        self.cfg = cfg = for_device(cfg, self.device.type == "cuda")
        self.phase, self.schedule, self.bf16 = phase, getattr(cfg, phase), cfg.train.bf16
        torch.manual_seed(cfg.train.seed)  # the same fresh weights on every rank and in every runner
        g = Generator(cfg.model)
        if g_init is not None:
            load_weights(g, g_init)
        if cfg.train.condition_only:
            if g.conditioning is None:
                raise ValueError("train.condition_only needs a conditioned generator: set model.conditions")
            g.requires_grad_(False)
            for name, p in g.named_parameters():
                p.requires_grad_(is_conditioning(name))
        self.g = wrap(self._lay_out(g))
        self.g_opt = self._adam(self.g)
        # The EMA of G's weights: not wrapped (every rank updates its own copy from identical weights)
        self.g_ema = (copy.deepcopy(unwrap(self.g)).requires_grad_(False) if cfg.train.ema_decay > 0 else None)
        if cfg.loss.ldl_weight > 0 and self.g_ema is None:
            raise ValueError("loss.ldl_weight needs the EMA generator as its reference: set train.ema_decay > 0")
        self.d: nn.Module | None = None
        self.d_opt: torch.optim.Optimizer | None = None
        if phase == "srgan":
            self.d = wrap(self._lay_out(discriminator(cfg.model)))
            self.d_opt = self._adam(self.d)
        self.content: LossFn = pixel_loss(cfg.loss.pixel) if phase == "srresnet" else content_loss(cfg.loss)
        self.gpl = (RandomFeatures(cfg.train.seed).to(self.device)
                    if phase == "srgan" and cfg.loss.gpl_weight > 0 else None)
        self.step = 0  # steps done in this phase

    def _lay_out(self, module: nn.Module) -> nn.Module:
        if self.cfg.train.sync_bn:
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        fmt = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
        return module.to(self.device, memory_format=fmt)

    def _adam(self, module: nn.Module) -> torch.optim.Optimizer:
        tc = self.cfg.train
        trained = [p for p in module.parameters() if p.requires_grad]  # train.condition_only freezes the rest
        return torch.optim.Adam(trained, lr=self.schedule.learning_rate, betas=(tc.beta1, tc.beta2))

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {k: v for k, v in (("g_opt", self.g_opt), ("d_opt", self.d_opt)) if v is not None}

    def _input(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1] on the device."""
        x = torch.as_tensor(batch).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        return x.contiguous(memory_format=torch.channels_last if self.cfg.train.channels_last
                            else torch.contiguous_format)

    # ------------------------------------------------------------ one step

    def train_step(self, lr: torch.Tensor | np.ndarray, hr: torch.Tensor | np.ndarray,
                   cond: torch.Tensor | np.ndarray | None = None) -> dict[str, float | torch.Tensor]:
        """One step at this step's learning rate: G, then (phase srgan) D.

        Args:
            lr: uint8 (B, h, w, 3) LR crops; hr: uint8 (B, h*s, w*s, 3), the aligned HR crops.
            cond: float32 (B, k), the crops' condition vectors (srgan.crops.CropStream); used by a
                conditioned generator, None or k = 0 for a blind one.

        Returns:
            The step's losses as detached 0-dim device tensors (reading one waits for the device:
            read them when logging) and the learning rate.
        """
        rate = learning_rate_at(self.schedule, self.step)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = rate
        lr, hr = self._input(lr), self._input(hr)
        cond = torch.as_tensor(cond).to(self.device) if self.cfg.model.conditions and cond is not None else None
        logs, sr, logits = self._generator_step(lr, hr, cond)
        if self.g_ema is not None:
            self._update_ema()
        if self.d is not None:
            logs |= self._discriminator_step(hr, sr, *logits)
        self.step += 1
        return logs | {"learning_rate": rate}

    def _generator_step(self, lr: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor | None = None
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor, tuple[torch.Tensor, ...]]:
        """Content loss (+ LDL) (+ grid) (+ blocks) (+ in phase srgan, the perceptual terms and adversarial_weight
        x the GAN loss).

        Forward passes run under bf16 autocast when set; losses are computed in float32. Returns the
        logs, the detached SR batch and D's detached logits on (HR, SR) for the D step (phase srgan).
        """
        cfg = self.cfg.loss
        self.g_opt.zero_grad(set_to_none=True)
        with autocast(self.device, self.bf16):
            sr = self.g(lr, cond)  # (B, 3, h*s, w*s), not clamped
        loss = content = self.content(sr.float(), hr)
        logs = {"content": content.detach()}
        if cfg.ldl_weight > 0:
            with torch.no_grad(), autocast(self.device, self.bf16):
                sr_ema = self.g_ema(lr, cond).float()
            logs["ldl"] = ldl = ldl_loss(sr.float(), sr_ema, hr)
            loss = loss + cfg.ldl_weight * ldl
        if cfg.grid_weight > 0:
            logs["grid"] = grid = grid_loss(sr.float(), hr)
            loss = loss + cfg.grid_weight * grid
        if cfg.block_weight > 0:
            logs["blocks"] = blocks = block_loss(sr.float(), hr, 8 * self.cfg.model.scale)
            loss = loss + cfg.block_weight * blocks
        if cfg.flat_block_weight > 0:
            logs["flat_blocks"] = flat = flat_block_loss(sr, hr, self.cfg.model.scale)
            loss = loss + cfg.flat_block_weight * flat
        logits: tuple[torch.Tensor, ...] = ()
        if self.d is not None:
            loss = loss + self._perceptual(sr, hr, logs)
            # D unwrapped and frozen: it only carries gradient to G
            d, match = unwrap(self.d), cfg.feature_match_weight > 0
            with frozen(d), autocast(self.device, self.bf16):
                fake, fake_feats = d.forward_features(sr)
                with torch.no_grad():  # vanilla needs no D(hr) but for feature matching
                    real, real_feats = d.forward_features(hr) if cfg.gan == "ragan" or match else (fake.detach(), [])
            fake, real = fake.float(), real.float()
            logs["adversarial"] = adversarial = generator_gan_loss(cfg.gan, fake, real)
            loss = loss + cfg.adversarial_weight * adversarial
            if match:
                logs["feature_match"] = fm = feature_loss(fake_feats, real_feats)
                loss = loss + cfg.feature_match_weight * fm
            logits = (real.detach(), fake.detach())
        loss.backward()
        self.g_opt.step()
        logs = {k: v.detach() for k, v in logs.items()} | {"g_loss": loss.detach()}
        return logs, sr.detach(), logits

    def _perceptual(self, sr: torch.Tensor, hr: torch.Tensor, logs: dict[str, torch.Tensor]) -> torch.Tensor | float:
        """The weighted perceptual terms that need no download (focal frequency, generic perceptual),
        each logged; 0 when both are off."""
        cfg, total = self.cfg.loss, 0.0
        if cfg.ffl_weight > 0:
            logs["ffl"] = ffl = focal_frequency_loss(sr, hr)
            total = total + cfg.ffl_weight * ffl
        if self.gpl is not None:
            with autocast(self.device, self.bf16):
                fake = self.gpl(sr)
                with torch.no_grad():
                    real = self.gpl(hr)
            logs["gpl"] = gpl = feature_loss(fake, real)
            total = total + cfg.gpl_weight * gpl
        return total

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * weights; buffers copied."""
        decay, g = self.cfg.train.ema_decay, unwrap(self.g)
        torch._foreach_lerp_(list(self.g_ema.parameters()), list(g.parameters()), 1 - decay)
        for ema_buffer, buffer in zip(self.g_ema.buffers(), g.buffers()):
            ema_buffer.copy_(buffer)

    def _discriminator_step(self, hr: torch.Tensor, sr: torch.Tensor, real_g: torch.Tensor,
                            fake_g: torch.Tensor) -> dict[str, torch.Tensor]:
        """D on real then on fake, each with its own forward and backward (gradients accumulate):
        DDP's one-forward-one-backward rule and per-batch BN statistics, as in the paper. RaGAN
        compares each half with the other's mean logit: the fake half's from the G step (same D
        weights), the real half's from this step."""
        kind = self.cfg.loss.gan
        self.d_opt.zero_grad(set_to_none=True)
        logs, other = {}, fake_g
        for name, batch in (("real", hr), ("fake", sr)):
            with autocast(self.device, self.bf16):
                logits = self.d(batch).float()
            loss = discriminator_gan_loss(kind, logits, other, real=name == "real")
            loss.backward()
            other = logits.detach()
            logs[f"d_{name}_loss"] = loss.detach()
            logs[f"d_{name}_prob"] = torch.sigmoid(logits.detach()).mean()
        self.d_opt.step()
        logs["d_loss"] = logs["d_real_loss"] + logs["d_fake_loss"]
        return logs

    # ------------------------------------------------------------ validation and state

    def validate(self, val_dir: str | Path) -> tuple[dict[str, float], np.ndarray]:
        """The paper's PSNR/SSIM and the perceptual side (NIQE, grid artifacts; the HR images' own
        beside them as val/hr_*) over a benchmark set or folder of HR images, with the EMA
        generator when there is one; and a bicubic | SR | HR grid of its first image: uint8 (192, 576, 3)."""
        g = (self.g_ema if self.g_ema is not None else unwrap(self.g)).eval()
        scale = self.cfg.model.scale
        try:
            engine = EagerEngine(g, "bf16" if self.bf16 else "fp32")
            result = evaluate_set(lambda lr: upscale(engine, lr), Path(val_dir), scale, metrics=VAL_METRICS)
            files, lr_dir = set_layout(Path(val_dir), scale)
            lr, hr, _ = load_pair(files[0], lr_dir, scale)
            grid = comparison_grid(lr, upscale(engine, lr), hr)
        finally:
            g.train()
        return {f"val/{k}": v for k, v in result.items() if k not in ("images", "per_image")}, grid

    def save(self, folder: str | Path, **state: Any) -> Path:
        """A checkpoint folder of this step: weights, config, and the training state (optimizers,
        step, RNG, plus the runner's own `state`, e.g. its MLflow run id)."""
        training_state = {**state, "step": self.step, "torch_rng": torch.get_rng_state(),
                          **{k: v.state_dict() for k, v in self.optimizers.items()}}
        g = unwrap(self.g)
        return save_checkpoint(folder, self.g_ema if self.g_ema is not None else g, self.cfg,
                               d=unwrap(self.d) if self.d is not None else None, training_state=training_state,
                               g_train=g if self.g_ema is not None else None, phase=self.phase, step=self.step)

    def restore(self, folder: str | Path) -> dict[str, Any]:
        """Load a checkpoint written by `save`; returns its training state (the runner's keys too)."""
        folder = Path(folder)
        trained = folder / G_TRAIN_WEIGHTS if (folder / G_TRAIN_WEIGHTS).is_file() else folder / G_WEIGHTS
        unwrap(self.g).load_state_dict(load_file(trained))
        if self.g_ema is not None:
            self.g_ema.load_state_dict(load_file(folder / G_WEIGHTS))
        if self.d is not None:
            unwrap(self.d).load_state_dict(load_file(folder / D_WEIGHTS))
        state = load_training_state(folder)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])
        torch.set_rng_state(state["torch_rng"])
        self.step = state["step"]
        return state


# ---------------------------------------------------------------- the loop

class Events:
    """What a runner does at the loop's moments; the defaults do nothing."""

    def logged(self, step: int, metrics: dict[str, float]) -> None:
        """`train/*` means since the last log line."""

    def validated(self, step: int, metrics: dict[str, float], grid: np.ndarray) -> None:
        """`val/*` metrics and the bicubic | SR | HR grid."""

    def checkpoint(self, step: int, last: bool) -> None:
        """Time to save (`trainer.save`) and, for a distributed runner, to report."""


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


def timed(batches: Iterable[Batch]) -> Iterator[tuple[float, Batch]]:
    """Yield (seconds spent waiting for the batch, batch): how long training waited on its input."""
    it = iter(batches)
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return
        yield time.perf_counter() - t0, batch


def fit(trainer: Trainer, batches: Iterable[Batch], events: Events, val_dir: str | Path | None = None,
        chief: bool = True) -> None:
    """Train from `trainer.step` to the phase's step count on `batches` (which must not run out).

    Every `log_every` steps the chief logs, every `val_every` it validates on `val_dir` (if given),
    every `checkpoint_every` steps every process checkpoints; all three at the last step.
    `chief`: this process logs and validates (rank 0 of a distributed run; the others only train
    and take part in checkpoints).
    """
    tc, steps = trainer.cfg.train, trainer.schedule.steps
    if trainer.step >= steps:
        return
    meter = Meter()
    for wait, batch in timed(batches):
        logs = trainer.train_step(*batch)
        step, last = trainer.step, trainer.step == steps
        if chief:
            meter.add(logs | {"data_wait_s": wait})
        if chief and (step % tc.log_every == 0 or last):
            events.logged(step, _train_metrics(meter, step, steps, tc.batch_size))
        if chief and val_dir is not None and (step % tc.val_every == 0 or last):
            metrics, grid = trainer.validate(val_dir)
            log.info("step %d  val PSNR %.2f dB  SSIM %.4f  NIQE %.2f (HR %.2f)  artifacts %.2f (HR %.2f)", step,
                     *(metrics[f"val/{k}"] for k in ("psnr", "ssim", "niqe", "hr_niqe", "artifacts", "hr_artifacts")))
            events.validated(step, metrics, grid)
        if step % tc.checkpoint_every == 0 or last:
            events.checkpoint(step, last)
        if last:
            return
    raise RuntimeError(f"the training data ran out at step {trainer.step} of {steps}")


def _train_metrics(meter: Meter, step: int, steps: int, batch_size: int) -> dict[str, float]:
    means, rate = meter.flush()
    metrics = {f"train/{k}": v for k, v in means.items()}
    metrics |= {"train/steps_per_s": rate, "train/images_per_s": rate * batch_size}
    eta = (steps - step) / max(rate, 1e-9)
    log.info("step %d/%d  g_loss %.5f  %.2f steps/s  waiting for data %.0f%%  ETA %dm%02ds", step, steps,
             means.get("g_loss", math.nan), rate, 100 * means.get("data_wait_s", 0.0) * rate, eta // 60, eta % 60)
    return metrics
