"""Running a generator on uint8 images: the uint8 HWC <-> float NCHW boundary."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from srgan.steps import autocast


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W), [0, 1] -> uint8 (H, W, 3), rounded and clamped."""
    img = img.detach().float().squeeze(0).clamp(0, 1).mul(255.0).round()
    return img.to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@torch.inference_mode()
def upscale(g: nn.Module, rgb: np.ndarray, bf16: bool = False) -> np.ndarray:
    """Upscale uint8 RGB (H, W, 3) with generator `g` (eval mode) -> uint8 (H*s, W*s, 3)."""
    device = next(g.parameters()).device
    with autocast(device, bf16):
        sr = g(to_tensor(rgb).to(device))
    return to_uint8(sr)
