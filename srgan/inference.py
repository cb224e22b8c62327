"""Running a generator or an engine (srgan.engines) on uint8 images: whole, or tile by tile."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from srgan.bicubic import imresize
from srgan.engines import Engine, as_engine
from srgan.images import Decoded
from srgan.metrics import rgb_to_gray
from srgan.tiling import upscale_tiled


def autocast(device: torch.device | str, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA when `enabled`, otherwise a no-op."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def upscale(model: Engine | nn.Module, rgb: np.ndarray) -> np.ndarray:
    """Upscale a whole uint8 RGB (H, W, 3) image in one pass -> uint8 (H*s, W*s, 3).

    `model` is an engine (srgan.engines) or a generator (eval mode), run as the eager fp32 engine.
    """
    return as_engine(model)([rgb])[0]


def finish_upscale(image: Decoded, rgb_sr: np.ndarray, scale: int) -> Decoded:
    """The upscaled image in the source's kind: a grayscale source back to equal planes (so it
    encodes as grayscale), its alpha plane upscaled by bicubic."""
    if image.grayscale:
        rgb_sr = np.repeat(rgb_to_gray(rgb_sr)[..., None], 3, axis=2)
    alpha = imresize(image.alpha, scale) if image.alpha is not None else None
    return Decoded(rgb=rgb_sr, alpha=alpha, grayscale=image.grayscale)


def upscale_image(model: Engine | nn.Module, image: Decoded, tile: int, pad: int, batch: int = 4) -> Decoded:
    """Upscale a decoded image tile by tile (memory bounded by the tile): the offline path.
    `model` as in `upscale`; `batch` windows go through it at a time."""
    engine = as_engine(model)
    rgb = upscale_tiled(engine, image.rgb, engine.scale, tile, pad, batch)
    return finish_upscale(image, rgb, engine.scale)
