"""Running a generator on uint8 images."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from srgan.images import to_tensor, to_uint8
from srgan.steps import autocast


@torch.inference_mode()
def upscale(g: nn.Module, rgb: np.ndarray, bf16: bool = False) -> np.ndarray:
    """Upscale uint8 RGB (H, W, 3) with generator `g` (eval mode) -> uint8 (H*s, W*s, 3)."""
    device = next(g.parameters()).device
    with autocast(device, bf16):
        sr = g(to_tensor(rgb).to(device))
    return to_uint8(sr)
