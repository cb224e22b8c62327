"""Tiled inference: memory bounded by the tile, not the image, and the same output.

Geometry (in LR pixels, per axis): the image is cut into cores of `tile` px (the last one flush
with the border). Each core is run inside a window of `tile + 2 * pad` px that is shifted, never
shrunk, to stay inside the image; so every window of an image has the same shape (batchable)
and every core has at least `pad` px of real context on each side, except where it touches the
image border, where the whole-image run sees the same zero padding. Where `pad` covers the
generator's receptive field, the stitched output equals whole-image inference.

    pre-process: plan_tiles + cut     -> windows uint8 (S_h, S_w, 3)
    run:         the generator on batches of windows (the server batches across requests)
    post-process: the core of each SR window into the output (srgan.canvas.Canvas.paste)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srgan.config import ModelConfig


@dataclass(frozen=True)
class Tile:
    """One window (y, x, h, w) and the core it contributes (core_y, core_x, core_h, core_w), LR px."""

    y: int
    x: int
    h: int
    w: int
    core_y: int
    core_x: int
    core_h: int
    core_w: int


def _axis(length: int, tile: int, pad: int) -> list[tuple[int, int, int, int]]:
    """(window start, window size, core start, core size) along one axis."""
    size = min(length, tile + 2 * pad)
    cores = list(range(0, max(length - tile, 0) + 1, tile))
    if cores[-1] + tile < length:
        cores.append(length - tile)
    out = []
    for c in cores:
        core = min(tile, length)
        start = min(max(c - pad, 0), length - size)
        out.append((start, size, c, core))
    return out


def plan_tiles(height: int, width: int, tile: int, pad: int) -> list[Tile]:
    """Windows covering an LR image of (height, width); all windows have the same shape."""
    if tile <= 0 or pad < 0:
        raise ValueError(f"tile must be positive and pad non-negative, got tile={tile} pad={pad}")
    return [Tile(y, x, h, w, cy, cx, ch, cw)
            for y, h, cy, ch in _axis(height, tile, pad) for x, w, cx, cw in _axis(width, tile, pad)]


def cut(lr: np.ndarray, t: Tile) -> np.ndarray:
    return lr[t.y:t.y + t.h, t.x:t.x + t.w]


def core(sr_window: np.ndarray, t: Tile, scale: int) -> np.ndarray:
    """The part of an upscaled window (h*s, w*s[, C]) that tile `t` contributes: (core_h*s, core_w*s[, C])."""
    oy, ox = (t.core_y - t.y) * scale, (t.core_x - t.x) * scale
    return sr_window[oy:oy + t.core_h * scale, ox:ox + t.core_w * scale]


def receptive_radius(cfg: ModelConfig) -> int:
    """How far (LR px, rounded up) an output pixel of the generator sees: the pad that makes
    tiled inference exact. Head 9x9 and each 3x3 conv at LR size add 4 and 1 (a conditioned
    generator's adapters, one more per block); convs after the k-th x2 upsampling add 1/2^k; the
    tail 9x9 adds 4/scale."""
    n_up = int(np.log2(cfg.scale))
    per_block = 3 if cfg.conditions else 2
    lr_convs = per_block * cfg.blocks + 1 + 1  # residual blocks, trunk conv, first upsampling conv
    radius = 4 + lr_convs + sum(1 / 2**k for k in range(1, n_up)) + 4 / cfg.scale
    return int(np.ceil(radius))
