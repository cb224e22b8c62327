"""Running a generator on uint8 images: whole, in batches of windows, or tile by tile."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from srgan.bicubic import imresize
from srgan.images import Decoded
from srgan.metrics import rgb_to_gray
from srgan.tiling import upscale_tiled


def autocast(device: torch.device | str, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA when `enabled`, otherwise a no-op."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


@torch.inference_mode()
def upscale_windows(g: nn.Module, windows: list[np.ndarray], bf16: bool = False) -> list[np.ndarray]:
    """Run `g` (eval mode) on same-shaped uint8 (h, w, 3) images as one batch -> uint8 (h*s, w*s, 3)."""
    device = next(g.parameters()).device
    x = torch.from_numpy(np.stack(windows)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    with autocast(device, bf16):
        sr = g(x)  # (N, 3, h*s, w*s), about [0, 1]
    return list(sr.float().clamp_(0, 1).mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


def upscale(g: nn.Module, rgb: np.ndarray, bf16: bool = False) -> np.ndarray:
    """Upscale a whole uint8 RGB (H, W, 3) image in one forward pass -> uint8 (H*s, W*s, 3)."""
    return upscale_windows(g, [rgb], bf16)[0]


def finish_upscale(image: Decoded, rgb_sr: np.ndarray, scale: int) -> Decoded:
    """The upscaled image in the source's kind: a grayscale source back to equal planes (so it
    encodes as grayscale), its alpha plane upscaled by bicubic."""
    if image.grayscale:
        rgb_sr = np.repeat(rgb_to_gray(rgb_sr)[..., None], 3, axis=2)
    alpha = imresize(image.alpha, scale) if image.alpha is not None else None
    return Decoded(rgb=rgb_sr, alpha=alpha, grayscale=image.grayscale)


def upscale_image(g: nn.Module, image: Decoded, tile: int, pad: int, bf16: bool = False, batch: int = 4) -> Decoded:
    """Upscale a decoded image tile by tile (memory bounded by the tile): the offline path."""
    rgb = upscale_tiled(lambda windows: upscale_windows(g, windows, bf16), image.rgb, g.scale, tile, pad, batch)
    return finish_upscale(image, rgb, g.scale)
