"""The generator in PyTorch as an engine (srgan.engines): fp32, the reference, or under autocast.

    EagerEngine(g, precision)    fastest_eager(device)    weights_digest(g)
"""

from __future__ import annotations

import contextlib
import copy
import hashlib

import numpy as np
import torch
from torch import nn

from srgan.config import cpu_has_bf16
from srgan.engines import EngineError, check_windows, cond_batch


def autocast(device: torch.device | str, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA when `enabled`, otherwise a no-op."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def fastest_eager(device: torch.device) -> str:
    """The fastest eager engine on `device`: fp16 on CUDA; on a CPU bf16 where it is native (3x
    fp32 with AMX), else fp32 (emulated bf16 measured 15x slower than fp32 on an AVX2 CPU)."""
    if device.type == "cuda":
        return "eager-fp16"
    return "eager-bf16" if cpu_has_bf16() else "eager"



class EagerEngine:
    """The generator in PyTorch eager on its own device: fp32 (the reference) or under autocast.

    `g` is used as given (eval mode is the caller's); on the CPU the bf16 engine runs a private
    channels_last copy of it (bf16 convolutions of oneDNN want NHWC).
    """

    card = None

    def __init__(self, g: nn.Module, precision: str = "fp32"):
        self.device = next(g.parameters()).device
        if precision not in ("fp32", "bf16", "fp16"):
            raise EngineError(f"eager precision must be fp32, bf16 or fp16, got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise EngineError("eager-fp16 runs on CUDA only; on the CPU use eager-bf16")
        self.channels_last = precision == "bf16" and self.device.type == "cpu"
        self.g = copy.deepcopy(g).to(memory_format=torch.channels_last) if self.channels_last else g
        self.precision, self.scale, self.conditions = precision, g.scale, tuple(getattr(g, "conditions", ()))
        self.name = "eager" if precision == "fp32" else f"eager-{precision}"

    @torch.inference_mode()
    def __call__(self, windows: list[np.ndarray], cond: np.ndarray | None = None) -> list[np.ndarray]:
        check_windows(windows)
        x = torch.from_numpy(np.stack(windows)).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        c = torch.from_numpy(cond_batch(cond, len(windows), self.conditions)).to(self.device) if self.conditions \
            else None
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.precision != "fp32"):
            sr = self.g(x, c) if self.conditions else self.g(x)  # (N, 3, h*s, w*s), about [0, 1]
        return list(sr.float().clamp_(0, 1).mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())



def weights_digest(g: nn.Module) -> str:
    """sha256 of the generator's state (names, shapes and float32 values): the cache key of its exports."""
    h = hashlib.sha256()
    for key, value in sorted(g.state_dict().items()):
        h.update(f"{key}{tuple(value.shape)}".encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
