"""Running a generator on uint8 images: whole, in batches of windows, or tile by tile into a canvas."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from PIL import Image
from torch import nn

from srgan.canvas import Canvas
from srgan.images import Decoded
from srgan.tiling import core, cut, plan_tiles


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


def upscale_image(g: nn.Module, image: Decoded, tile: int, pad: int, bf16: bool = False, batch: int = 4,
                  fmt: str = "png") -> Image.Image:
    """Upscale a decoded image tile by tile, the offline path: SR windows run `batch` at a time and
    their cores go straight into a `Canvas` (memory: the output's one copy plus a batch of windows).
    Returns the Pillow image `write_image` encodes as `fmt` (see `Canvas` for its mode)."""
    canvas = Canvas(image, g.scale, fmt)
    tiles = plan_tiles(image.rgb.shape[0], image.rgb.shape[1], tile, pad)
    for i in range(0, len(tiles), batch):
        group = tiles[i:i + batch]
        for t, sr in zip(group, upscale_windows(g, [cut(image.rgb, t) for t in group], bf16)):
            canvas.paste(t, core(sr, t, g.scale))
    return canvas.finish()
