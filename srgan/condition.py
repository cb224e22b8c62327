"""The condition of an input, what it went through (its last JPEG save and its noise), and its one
reader, from the file's header and pixels (NumPy and Pillow only: the torch-free serving install
runs it).

    decoded file (srgan.images.decode_image: pixels + format + JPEG header)
      │
      ├─ JPEG file ──────────────▶ jpeg_quality_from_tables(header tables)   the bytes, not the pixels:
      │                            IJG tables inverted exactly, other tables    the file's last save
      │                            to the IJG quality of the same distortion
      ├─ PNG, BMP, TIFF, GIF, ───▶ block_quality(rgb)                         pixels once a JPEG: the
      │  lossless WebP             re-quantisation test on the 8 px grid        quality, or None
      ├─ lossy WebP ─────────────▶ None (its own 4x4 transform and deblocking replaced any JPEG grid)
      │
      └─ every file ─────────────▶ noise_sigma(rgb)                           additive colour noise,
                                   chroma high-pass, robust to texture          0-255 scale
      ▼
    Condition(jpeg_quality, noise_sigma) ──▶ vector(): float32 (2,), zero for CLEAN

Training passes the degradation's own draws as the Condition (srgan.degradations); upscale, evaluate
and the endpoint call `read_condition`, and a user may override either part
(`condition_from_overrides`). Accuracy on the benchmark LR images: tests/benchmarks/bench_condition.py.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from srgan import UserError
from srgan.images import Decoded

CONDITIONS = ("jpeg", "noise")  # what a conditioned generator can be told, in the order of `Condition.vector`
MAX_NOISE = 50.0  # grey levels: past this an image is more noise than picture; training draws up to 30
NOISE_SCALE = 25.0  # vector() divides sigma by it: the training range maps to about 0-1


class ConditionError(UserError):
    """A condition value (from a user, a request or a file header) out of its range."""


@dataclass(frozen=True)
class Condition:
    """What an input went through.

    Attributes:
        jpeg_quality: the IJG quality (1-100, Pillow's and libjpeg's scale) of the image's last JPEG
            save; None: never saved as JPEG, or no 8 px block evidence of it.
        noise_sigma: standard deviation of additive noise per RGB channel, in grey levels (0-255
            scale), 0 to MAX_NOISE.
    """

    jpeg_quality: int | None = None
    noise_sigma: float = 0.0

    def __post_init__(self) -> None:
        q, s = self.jpeg_quality, self.noise_sigma
        if q is not None:
            if isinstance(q, bool) or not isinstance(q, numbers.Integral) or not 1 <= q <= 100:
                raise ConditionError(f"jpeg_quality: {q!r} is not a JPEG quality; expected an int 1-100 or None")
            object.__setattr__(self, "jpeg_quality", int(q))
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0 <= s <= MAX_NOISE:  # NaN fails too
            raise ConditionError(f"noise_sigma: {s!r} is not a noise level; expected grey levels 0-{MAX_NOISE:g}")
        object.__setattr__(self, "noise_sigma", float(s))

    def vector(self) -> np.ndarray:
        """float32 (2,): [(100 - quality) / 100, or 0 without JPEG; sigma / 25]. Zero for CLEAN: the
        generator's conditioning is zero-initialised, so the clean condition gives the unconditioned model."""
        q = self.jpeg_quality
        return np.array([(100 - q) / 100 if q is not None else 0.0, self.noise_sigma / NOISE_SCALE], np.float32)

    def __str__(self) -> str:
        """Short text for logs and an HTTP header: "jpeg=75 noise=3.2", "jpeg=none noise=0.0"."""
        jpeg = "none" if self.jpeg_quality is None else str(self.jpeg_quality)
        return f"jpeg={jpeg} noise={self.noise_sigma:.1f}"


CLEAN = Condition()


def condition_vectors(conditions: Sequence[Condition], names: Sequence[str] = CONDITIONS) -> np.ndarray:
    """float32 (N, len(names)): each condition's vector, the columns `names` (ModelConfig.conditions)."""
    columns = [CONDITIONS.index(n) for n in names]
    if not conditions:
        return np.zeros((0, len(columns)), np.float32)
    return np.stack([c.vector()[columns] for c in conditions])


def condition_from_overrides(base: Condition, jpeg_quality: str | int | None = None,
                             noise: str | float | None = None) -> Condition:
    """`base` (as read) with what the user set: None keeps the part read.

    Args:
        jpeg_quality: "none" (no JPEG: the input is told clean of blocks), or a quality 1-100 as an
            int or its text.
        noise: sigma in grey levels, 0 to MAX_NOISE (50), as a number or its text.

    Raises:
        ConditionError: naming the parameter, the value and what is allowed.
    """
    return Condition(base.jpeg_quality if jpeg_quality is None else _parse_quality(jpeg_quality),
                     base.noise_sigma if noise is None else _parse_noise(noise))


def _parse_quality(value: str | int) -> int | None:
    text = str(value).strip().lower()
    if text == "none":
        return None
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 100:
        raise ConditionError(f"jpeg_quality: {value!r} is not allowed; give 'none' (no JPEG) or a quality 1-100")
    return int(text)


def _parse_noise(value: str | float) -> float:
    try:
        sigma = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        sigma = math.nan
    if not 0 <= sigma <= MAX_NOISE:  # NaN and inf fail here too
        raise ConditionError(f"noise: {value!r} is not allowed; give a sigma in grey levels from 0 to {MAX_NOISE:g}")
    return sigma


# ---------------------------------------------------------------- JPEG quality from the file's tables

# ITU-T T.81 Annex K.1 tables, natural (row-major) order: what libjpeg scales by quality.
_ANNEX_K_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
_ANNEX_K_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *[99] * 32])
QUALITIES = np.arange(1, 101)


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's jpeg_quality_scaling + jpeg_add_quant_table (force_baseline): int (64,) in 1-255."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


_IJG_LUMA = np.stack([ijg_table(_ANNEX_K_LUMA, int(q)) for q in QUALITIES])  # (100, 64), row q-1
_IJG_CHROMA = np.stack([ijg_table(_ANNEX_K_CHROMA, int(q)) for q in QUALITIES])

# For tables no IJG quality makes (Photoshop, phones, custom), the IJG quality of the same expected
# distortion: each coefficient loses T^2/12 (a uniform quantiser) but never more than its own power,
# modelled as a (u^2 + v^2)^-b. Fitted to the 8x8 DCT blocks of Set5+Set14+BSD100 LR (luma a=2e4 b=1.4,
# chroma at 4:2:0 a=1.1e3 b=1.35), amplitudes and b then set on 21 non-IJG table sets (Pillow's
# Photoshop presets, flat, ramped, mixed IJG luma/chroma) against the IJG quality of equal measured
# RGB MSE: mean error 1.4, max 4.9, where least squares on log entries erred 4.1 mean, 12.8 max.
_FREQ2 = np.add.outer(np.arange(8) ** 2, np.arange(8) ** 2).ravel().astype(np.float64)
_POWER_LUMA = np.where(_FREQ2 > 0, 3e4 * np.maximum(_FREQ2, 1) ** -1.4, np.inf)  # DC: always pays T^2/12
_POWER_CHROMA = np.where(_FREQ2 > 0, 2e3 * np.maximum(_FREQ2, 1) ** -1.5, np.inf)
# A luma error shows in R, G and B (weight 3); Cb and Cr errors reach RGB with 1.772^2 + 0.344^2 and
# 1.402^2 + 0.714^2 (5.7 together).
_LUMA_WEIGHT, _CHROMA_WEIGHT = 3.0, 5.7


def _expected_distortion(luma: np.ndarray, chroma: np.ndarray | None) -> np.ndarray:
    d = _LUMA_WEIGHT * np.minimum(luma.astype(np.float64) ** 2 / 12, _POWER_LUMA).sum(-1)
    if chroma is not None:
        d = d + _CHROMA_WEIGHT * np.minimum(chroma.astype(np.float64) ** 2 / 12, _POWER_CHROMA).sum(-1)
    return d


def jpeg_quality_from_tables(tables: Sequence[Sequence[int]]) -> int:
    """The IJG quality (1-100) of a JPEG's quantization tables.

    Args:
        tables: the file's tables by id (srgan.images.JpegInfo.tables): luma first, then chroma if
            the file has colour; 64 ints each, natural (row-major) order.

    Returns:
        The quality whose IJG tables they are, exactly (Pillow, libjpeg, and most software write
        these); for any other tables, the IJG quality of the same expected distortion.

    Raises:
        ConditionError: no table, or one without 64 positive entries.
    """
    arrays = [np.asarray(t, dtype=np.int64) for t in tables]
    if not arrays or any(a.shape != (64,) or a.min() < 1 for a in arrays):
        raise ConditionError(f"JPEG quantization tables: expected 1 or more tables of 64 positive ints, "
                             f"got shapes {[a.shape for a in arrays]}")
    luma, chroma = arrays[0], arrays[1] if len(arrays) > 1 else None
    exact = (luma == _IJG_LUMA).all(1)
    if chroma is not None:
        exact &= (chroma == _IJG_CHROMA).all(1)
    if exact.any():
        return int(QUALITIES[exact][-1])  # identical tables (rare) give the same file: any of them
    ijg = _expected_distortion(_IJG_LUMA, None if chroma is None else _IJG_CHROMA)
    return int(QUALITIES[np.argmin(np.abs(np.log(ijg) - np.log(_expected_distortion(luma, chroma))))])


# ---------------------------------------------------------------- JPEG quality from pixels

# The block evidence: a JPEG's 8x8 luma DCT coefficients are multiples of its table, so quantising
# its pixels again with the same table changes (nearly) nothing, and with tables a little finer does:
# the error of re-quantisation over q dips at the file's quality and rises after it, where for pixels
# never quantised on that grid it only falls as q rises. Measured on Set5+Set14+BSD100 LR, q30-95 at
# 4:2:0 and 4:4:4: the dip's depth (error at q / largest error of the 5 qualities after it) was at most
# 0.41 for every JPEG and at least 0.98 for clean and noisy images. Steps across x%8 == 0 versus other
# columns did not separate them (median ratio 1.00 for both clean and q95; q50 down to 0.95).
_DIP_THRESHOLD = 0.65
_DIP_SPAN = 5
_MIN_BLOCKS = 16  # fewer unclipped blocks: too little evidence either way
_MAX_BLOCKS = 1024  # the most textured ones: a clear dip (BSD100 LR has 150 blocks), and bounded time
_WINDOW = 256  # big images are read in 16-aligned windows of this size
_WINDOWS = 4


def _windows(rgb: np.ndarray, size: int = _WINDOW, count: int = _WINDOWS) -> list[np.ndarray]:
    """The whole image if it is small, else a grid of `count` windows, size x size px, each at a
    multiple of 16 px (so on the JPEG block and 4:2:0 MCU grid), spread over the image."""
    h, w = rgb.shape[:2]
    if h * w <= count * size * size:
        return [rgb]
    side = math.isqrt(count)
    ys = np.linspace(0, max(h - size, 0), side).astype(int) // 16 * 16
    xs = np.linspace(0, max(w - size, 0), side).astype(int) // 16 * 16
    return [rgb[y:y + size, x:x + size] for y in ys for x in xs]


# The orthonormal 8-point DCT-II as a matrix: D @ block @ D.T is the 2-D DCT of a block (scipy's
# dctn(norm="ortho") to 1e-12).
_DCT = np.array([[math.sqrt((1 if k == 0 else 2) / 8) * math.cos(math.pi * (2 * n + 1) * k / 16) for n in range(8)]
                 for k in range(8)])


def _block_coefficients(rgb: np.ndarray) -> np.ndarray:
    """float64 (N, 63): the orthonormal 8x8 DCT AC coefficients of the luma (JFIF Y) blocks on the
    grid from (0, 0), without blocks that touch 0 or 255 in any channel (the decoder clipped those,
    which blurs the re-quantisation test) where 16 or more are left."""
    h, w = rgb.shape[0] // 8 * 8, rgb.shape[1] // 8 * 8
    x = rgb[:h, :w].astype(np.float64)
    y = x @ np.array([0.299, 0.587, 0.114])
    blocks = y.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    coefs = (_DCT @ blocks @ _DCT.T).reshape(-1, 64)[:, 1:]
    clipped = ((x == 0) | (x == 255)).any(-1).reshape(h // 8, 8, w // 8, 8).any((1, 3)).ravel()
    return coefs[~clipped] if (~clipped).sum() >= _MIN_BLOCKS else coefs  # mostly saturated: all, or nothing


def _requantisation_errors(coefs: np.ndarray) -> np.ndarray:
    """float64 (100,): mean squared change of `coefs` quantised with the IJG luma table of each quality."""
    steps = _IJG_LUMA[:, 1:].astype(np.float64)
    return np.array([np.mean((coefs - t * np.round(coefs / t)) ** 2) for t in steps])


def block_quality(rgb: np.ndarray) -> int | None:
    """The IJG quality of a JPEG these pixels once were, from the pixels alone (for lossless files).

    Args:
        rgb: uint8 (H, W, 3), the grid of the JPEG at (0, 0) (a crop off the 8 px grid reads None).

    Returns:
        The quality (1-97; the re-quantisation test needs finer qualities after it, so 98-100 read
        as None, which is near clean), or None: no 8 px block evidence, or under 16 usable blocks.
    """
    coefs = np.concatenate([_block_coefficients(w) for w in _windows(rgb)])
    if len(coefs) < _MIN_BLOCKS:
        return None
    if len(coefs) > _MAX_BLOCKS:
        coefs = coefs[np.argsort((coefs ** 2).sum(1))[-_MAX_BLOCKS:]]
    errors = _requantisation_errors(coefs) + 1e-3  # flat blocks: 0 at every q, no dip
    later = np.array([errors[i + 1:i + 1 + _DIP_SPAN].max() for i in range(97)])  # q+1 .. q+5, q = 1..97
    depth = errors[:97] / later
    best = int(np.argmin(depth))
    return int(QUALITIES[best]) if depth[best] < _DIP_THRESHOLD else None


# ---------------------------------------------------------------- noise

# Colour noise is independent per channel, so it is as strong in the two opponent chroma planes as in
# any; natural texture lives mostly in luma. The residual of a 7-tap (1, -2, 1)^3 high-pass in both
# directions (unit norm: noise passes with its sigma) leaves little of the chroma's own texture; the
# part of it that follows the luma residual (colour edges) is regressed out, and the median of what is
# left, / 0.6745, is sigma. What clean Set5+Set14+BSD100 LR images read, on average (raw, before the
# floor below): Immerkaer's 3x3 mask on RGB +5.0 (Sobel-masked +3.8; Haar HH MAD +4.3), on the chroma
# planes +1.1, this filter, regression and median +0.6 (baboon's fur, the worst, 2.1). Higher orders cut
# texture further but read noisier: a std of 2 % at sigma 15 on a 120 x 80 image, 1 % with (1, -2, 1).
_OPPONENT = np.array([[1, 1, 1], [1, -1, 0], [1, 1, -2]]) / np.sqrt([[3.0], [2.0], [6.0]])  # orthonormal
_HIGHPASS = np.array([1, -6, 15, -20, 15, -6, 1]) / math.sqrt(924.0)
_HALF = len(_HIGHPASS) // 2
# A clean LR still reads about 0.5 (uint8 rounding is 0.29 per plane, the rest texture): taken off in
# quadrature; then readings under 1 are clean (training draws sigma from 1 up, or none).
_FLOOR, _DEAD_ZONE = 0.5, 1.0
_MIN_SAMPLES = 1024  # fewer left by a mask: the mask is skipped (clipping reads low, never high)


def _box_mean(x: np.ndarray, size: int) -> np.ndarray:
    """The mean of each size x size neighbourhood of float (H, W, C) `x`, mirrored at the border
    (scipy.ndimage.uniform_filter's default), from a summed-area table."""
    half = size // 2
    table = np.pad(np.pad(x, ((half, half), (half, half), (0, 0)), mode="symmetric").cumsum(0).cumsum(1),
                   ((1, 0), (1, 0), (0, 0)))
    return (table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]) / size ** 2


def _noise_residuals(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 (n, 3) high-pass residuals of (luma, chroma 1, chroma 2) at the pixels whose 7x7
    footprint holds no clipped value (0 or 255: clipping cuts the noise), and float64 (n, 3) the
    RGB means of their 9x9 neighbourhoods; pixels within _HALF of the border have no residual."""
    x = rgb.astype(np.float64)
    planes = x @ _OPPONENT.T
    inner = (slice(_HALF, -_HALF), slice(_HALF, -_HALF))
    size = 2 * _HALF + 1
    residual = sliding_window_view(sliding_window_view(planes, size, axis=0) @ _HIGHPASS, size, axis=1) @ _HIGHPASS
    clipped = sliding_window_view(((rgb == 0) | (rgb == 255)).any(-1), (size, size)).any((-2, -1))
    means = _box_mean(x, 9)[inner]
    keep = ~clipped if (~clipped).sum() >= _MIN_SAMPLES else np.ones_like(clipped)
    return residual[keep], means[keep]


def _robust_sigma(residual: np.ndarray) -> float:
    luma, chroma = residual[:, 0], residual[:, 1:]
    slope = chroma.T @ luma / max(float(luma @ luma), 1e-9)  # (2,): chroma that follows luma is texture
    return float(np.median(np.abs(chroma - np.outer(luma, slope)))) / 0.6745


def noise_sigma(rgb: np.ndarray, calibrated: bool = True) -> float:
    """Standard deviation of additive colour noise (independent per RGB channel), 0-255 scale.

    Args:
        rgb: uint8 (H, W, 3); images over 4 x 256 x 256 px are read in 4 windows of 256 px.
        calibrated: False gives the raw reading, before the floor of clean images is taken off and
            readings under 1 are set to 0 (for measuring both).

    Returns:
        sigma rounded to 0.1; 0.0 under 1 (clean), MAX_NOISE (50) at most. Grey noise (the same on
        all three channels) and noise in a grayscale image are not seen: they leave the chroma planes
        alone; nor is noise saved as a 4:2:0 JPEG afterwards, which drops the chroma's fine detail.
    """
    parts = [_noise_residuals(w) for w in _windows(rgb) if min(w.shape[:2]) > 2 * _HALF]
    if sum(len(r) for r, _ in parts) == 0:
        return 0.0
    residual, means = (np.concatenate(p) for p in zip(*parts))
    sigma = _robust_sigma(residual)
    # Pixels whose neighbourhood sits within 2.5 sigma of 0 or 255 lose noise to clipping.
    margin = 2.5 * max(sigma, 1.0)
    away = ((means > margin) & (means < 255 - margin)).all(-1)
    if away.sum() >= _MIN_SAMPLES:
        sigma = _robust_sigma(residual[away])
    if not calibrated:
        return sigma
    sigma = math.sqrt(max(sigma ** 2 - _FLOOR ** 2, 0.0))
    return min(round(sigma, 1), MAX_NOISE) if sigma >= _DEAD_ZONE else 0.0


# ---------------------------------------------------------------- the reader

def _jpeg_quality(decoded: Decoded) -> int | None:
    if decoded.jpeg is not None:
        return jpeg_quality_from_tables(decoded.jpeg.tables)
    if decoded.format == "WEBP" and not decoded.webp_lossless:
        # VP8's 4x4 transform and in-loop deblocking replace any JPEG grid; its artifacts are not a
        # JPEG quality, and re-reading its pixels as one would only guess.
        return None
    return block_quality(decoded.rgb)


def read_condition(decoded: Decoded) -> Condition:
    """The condition of a decoded input (module docstring): JPEG quality from a JPEG's header or,
    for lossless files, from the 8 px block evidence of the pixels; noise sigma from the pixels."""
    return Condition(_jpeg_quality(decoded), noise_sigma(decoded.rgb))
