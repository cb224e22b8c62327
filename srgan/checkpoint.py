"""The one checkpoint format: a folder with safetensors weights and a JSON config.

    generator.safetensors      generator weights (loading never unpickles anything); with an EMA
                               of the weights (train.ema_decay), the EMA: what is evaluated and served
    generator_train.safetensors  (EMA runs only) the trained weights themselves, to resume from
    config.json                {"format", "model": ModelConfig, "config": the full resolved Config, ...}
    discriminator.safetensors  (optional) discriminator weights
    training_state.pt          (optional) optimizers, schedulers, step, RNG: plain tensors and
                               numbers, loaded with torch.load(weights_only=True)

`config.json` alone rebuilds the generator: `load_generator(folder)`. Reading it (`read_meta`,
`model_config`) needs no torch; the weights do, and import it when they are read or written.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srgan import DIAL_PAIRS, SHIPPED_MODELS, UserError
from srgan.config import Config, ConfigError, ModelConfig, from_dict, read_document, to_dict

if TYPE_CHECKING:
    import torch
    from torch import nn

    from srgan.models import Generator

FORMAT = "srgan-checkpoint/1"
G_WEIGHTS, G_TRAIN_WEIGHTS, D_WEIGHTS, CONFIG, STATE = (
    "generator.safetensors", "generator_train.safetensors", "discriminator.safetensors", "config.json",
    "training_state.pt")


class CheckpointError(UserError):
    """A checkpoint that is missing, incomplete or does not fit the model asked for."""


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def save_checkpoint(folder: str | Path, g: nn.Module, cfg: Config, d: nn.Module | None = None,
                    training_state: dict[str, Any] | None = None, g_train: nn.Module | None = None,
                    **meta: Any) -> Path:
    """Write a checkpoint folder. `g`, `d` and `g_train` (the trained weights, when `g` is their EMA)
    are plain modules (unwrap DDP first)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(_state(g), folder / G_WEIGHTS)
    if g_train is not None:
        save_file(_state(g_train), folder / G_TRAIN_WEIGHTS)
    if d is not None:
        save_file(_state(d), folder / D_WEIGHTS)
    if training_state is not None:
        torch.save(training_state, folder / STATE)
    doc = {"format": FORMAT, "model": to_dict(cfg.model), "config": to_dict(cfg), **meta}
    (folder / CONFIG).write_text(json.dumps(doc, indent=2))
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The checkpoint's config.json as a dict; raises CheckpointError naming the folder."""
    path = Path(folder) / CONFIG
    return read_document(path.read_bytes, str(path), FORMAT, CheckpointError, f"not a checkpoint (no {CONFIG})")


def model_config(folder: str | Path) -> ModelConfig:
    try:
        return from_dict({"model": read_meta(folder)["model"]}).model
    except ConfigError as e:
        raise CheckpointError(f"{folder}: {e}") from e


def _load_into(module: nn.Module, path: Path) -> nn.Module:
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path.parent}: missing {path.name}")
    try:
        module.load_state_dict(load_file(path))
    except (RuntimeError, OSError) as e:  # shape/key mismatch or a damaged file
        raise CheckpointError(f"{path}: weights do not fit the model in {CONFIG}: {e}") from e
    return module


def load_generator(folder: str | Path) -> Generator:
    """Rebuild the generator from a checkpoint folder alone, in eval mode, on the CPU."""
    from srgan.models import Generator

    folder = Path(folder)
    return _load_into(Generator(model_config(folder)), folder / G_WEIGHTS).eval()


def interpolate(g0: Generator, g1: Generator, alpha: float) -> Generator:
    """Network interpolation (ESRGAN, Wang et al. 2018): a generator whose every weight is
    (1 - alpha) * g0's + alpha * g1's, for two generators of one architecture fine-tuned from each
    other (the SRResNet and the SRGAN made from it). alpha 0 is g0 exactly, 1 is g1 exactly; in
    between, a perception-distortion dial from g0's fidelity to g1's texture. In eval mode."""
    if not 0 <= alpha <= 1:
        raise CheckpointError(f"alpha must be in [0, 1], got {alpha}")
    s0, s1 = g0.state_dict(), g1.state_dict()
    if s0.keys() != s1.keys() or any(s0[k].shape != s1[k].shape for k in s0):
        raise CheckpointError("the two generators to interpolate have different architectures")
    g = copy.deepcopy(g0)
    # (1 - a) * w0 + a * w1 rather than lerp: w0 + a * (w1 - w0) is not exactly w1 at a = 1 in floats
    g.load_state_dict({k: (1 - alpha) * s0[k] + alpha * s1[k] if s0[k].is_floating_point() else s0[k] for k in s0})
    return g.eval()


def load_interpolated(alpha: float, pair: tuple[str, str] = DIAL_PAIRS[0]) -> Generator:
    """The perception-distortion dial: a shipped pair (srgan.DIAL_PAIRS), its PSNR model (alpha 0:
    fidelity) and its GAN (alpha 1: texture), interpolated as `interpolate`."""
    return interpolate(load_generator(SHIPPED_MODELS[pair[0]]), load_generator(SHIPPED_MODELS[pair[1]]), alpha)


def load_discriminator(folder: str | Path) -> nn.Module:
    from srgan.models import discriminator

    folder = Path(folder)
    return _load_into(discriminator(model_config(folder)), folder / D_WEIGHTS)


def load_training_state(folder: str | Path) -> dict[str, Any] | None:
    """The optimizer/step/RNG state saved beside the weights, or None if there is none."""
    import torch

    path = Path(folder) / STATE
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None
