"""Bicubic resizing compatible with MATLAB's `imresize(img, scale, 'bicubic')`.

Every published SR number uses MATLAB's LR images, so this is the only resize the project uses
to make LR from HR (and the bicubic baseline's upscale). What makes it MATLAB's and not
Pillow's or OpenCV's:
- the cubic kernel (a = -0.5) is widened by 1/scale when shrinking (antialiasing);
- taps that fall outside the image are clamped to the border pixel (replicate), as the MATLAB
  that made the benchmarks' LR files did; `border="mirror"` reflects them instead (symmetric, the
  edge pixel repeated), as MATLAB's `imresize` has done since (NIQE's half-scale pass needs that);
- the image is resized one dimension at a time, rows first when both scales are equal, and a
  uint8 image is rounded back to uint8 after each pass.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Border = Literal["clamp", "mirror"]
BORDERS = ("clamp", "mirror")


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _border_index(idx: np.ndarray, in_len: int, border: Border) -> np.ndarray:
    """0-based source indices (any integers) -> indices inside [0, in_len)."""
    if border == "clamp":
        return np.clip(idx, 0, in_len - 1)
    period = np.mod(idx, 2 * in_len)  # symmetric: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
    return np.where(period < in_len, period, 2 * in_len - 1 - period)


def _taps(in_len: int, out_len: int, scale: float, border: Border) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, each (out_len, P), for one dimension."""
    width = 4.0 / scale if scale < 1 else 4.0  # antialiasing widens the kernel when shrinking
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)  # 1-based centres
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    return _border_index(idx.astype(np.int64) - 1, in_len, border), weights


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float, border: Border) -> np.ndarray:
    idx, weights = _taps(img.shape[axis], out_len, scale, border)
    moved = np.moveaxis(img.astype(np.float64, copy=False), axis, 0)  # (L, ...)
    out = np.einsum("op,op...->o...", weights, moved[idx])  # gather P taps per output, weight, sum
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float, border: Border = "clamp") -> np.ndarray:
    """Resize an image by `scale` like MATLAB `imresize(img, scale, 'bicubic')`.

    Args:
        img: (H, W) or (H, W, C), uint8 in [0, 255] or float in any range.
        scale: factor applied to both sides, e.g. 0.25 for x4 downscaling, 4 for upscaling.
        border: taps outside the image take the border pixel ("clamp": the MATLAB that made the
            benchmarks' LR files, the project's LR protocol) or the mirrored pixel ("mirror":
            MATLAB's `imresize` today, e.g. in NIQE's reference code).

    Returns:
        (ceil(H*scale), ceil(W*scale)[, C]) array of the input's dtype; uint8 is rounded and
        clipped after each 1-D pass, as MATLAB does.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects an (H, W) or (H, W, C) array, got shape {img.shape}")
    if scale <= 0:
        raise ValueError(f"imresize scale must be positive, got {scale}")
    if border not in BORDERS:
        raise ValueError(f"imresize border must be one of {BORDERS}, got {border!r}")
    is_uint8 = img.dtype == np.uint8
    out = img
    for axis in (0, 1):
        out_len = int(np.ceil(img.shape[axis] * scale))
        out = _resize_axis(out, axis, out_len, scale, border)
        if is_uint8:
            out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out if is_uint8 else out.astype(img.dtype, copy=False)
