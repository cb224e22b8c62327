"""Artifacts of an upscaler that PSNR and NIQE miss: a pattern locked to the 4 px output grid
(`grid_artifacts`, below) and JPEG blocks carried over from the input (`block_artifacts`, at the end).

Grid artifacts: how strong a pattern locked to the 4 px output grid is where the image is flat.

Why: a x4 generator builds its output with two PixelShuffle x2 steps, so every output pixel is
made by one of 4x4 sub-pixel "phases" of the last convolutions. When the phases disagree (GAN
training encourages it) the image carries a fixed pattern of period 2 or 4 px: the checkerboard
on the flat skin and sky of the SRGAN shipped before the grid loss (srgan.losses.grid_loss). PSNR
and NIQE hardly see it; the eye sees it at an amplitude of one or two grey levels on a flat area.

What: a pattern of period 4 (or 2) puts all its energy at the 16 spatial frequencies (a/4, b/4)
cycles/px, a, b in 0..3; equivalently, it is the mean of the image at each (y mod 4, x mod 4)
phase. Natural content spreads its energy smoothly over all frequencies. So, per 64x64 tile:

    Y (H, W) ──► high-pass r = Y - Gaussian(Y, sigma 2)     removes shading; keeps >99% at 1/4 cycle/px
      │  64x64 tiles (the last row/column flush with the border)
      ▼
    |FFT(r)|^2 per tile ──► P = energy at the 15 non-zero grid frequencies (the 4x4 phase means)
                            F = what content puts there: per grid frequency, the larger of the
                                mean energies of its two neighbours in each of 4 directions
                                (the max follows the spectral lines of straight edges)
                            pattern energy = max(P - F, 0)        grey levels^2 per pixel
      │  weight w = 1 / (1 + (rest of r's energy) / 2^2)          ~1 on flat tiles (r RMS < 2
      ▼                                                            grey levels), ~0 on texture,
    sqrt(sum w * pattern / sum w)                                  where a pattern is masked

Range and meaning: grey levels of Y (0-255 scale), >= 0: the RMS amplitude of the grid-locked
pattern where the image is flattest, so it compares across images and sizes. A +-a pattern
measures a on a flat image, 0.9-1 a added to a photo. Per-set means on Set5/Set14/BSD100: HR
photos 0.13-0.16, bicubic x4 0.01-0.02, the shipped SRResNet 0.06-0.10, the shipped SRGAN
0.17-0.21, the plain-recipe SRGAN shipped before the grid loss 2.0-2.3 (its lowest image 0.9). Content that is itself
periodic with a period the grid divides (a facade with windows every 20 px, BSD100 119082 HR:
1.0) counts too: the measure cannot tell it from an artifact. Deterministic; 13-16 ms for a
512x512 image on a shared 2-core CPU.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter

from srgan.metrics import luma

PERIOD = 4  # the output grid of two PixelShuffle x2 steps; period-2 patterns are among its frequencies
TILE = 64  # px: local enough to find a flat patch, 16 samples per phase and axis
HIGHPASS_SIGMA = 2.0  # px: the Gaussian's gain at 1/4 cycle/px is exp(-2 pi^2 sigma^2 / 16) < 0.01
FLAT_RMS = 2.0  # grey levels: tiles whose residual is below this count fully, textured ones less
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # neighbour bins: +-1 bin along x, y and diagonals


@lru_cache(maxsize=1)
def _bins() -> tuple[tuple[np.ndarray, np.ndarray], list[tuple[np.ndarray, ...]]]:
    """FFT bins of a TILE x TILE tile: the 15 non-zero grid frequencies (rows, cols), and for each
    direction the two neighbours of each (rows_a, cols_a, rows_b, cols_b)."""
    step = TILE // PERIOD
    rows, cols = np.meshgrid(np.arange(0, TILE, step), np.arange(0, TILE, step), indexing="ij")
    rows, cols = rows.ravel()[1:], cols.ravel()[1:]  # drop the zero frequency
    pairs = [((rows + dy) % TILE, (cols + dx) % TILE, (rows - dy) % TILE, (cols - dx) % TILE)
             for dy, dx in _DIRECTIONS]
    return (rows, cols), pairs


def _tiles(r: np.ndarray) -> np.ndarray:
    """(N, TILE, TILE) tiles covering r (H, W): a grid from the top-left, the last row and column
    moved flush with the bottom and right borders (overlapping their neighbours) to cover it all."""
    ys, xs = ([*range(0, n - TILE + 1, TILE), *([n - TILE] if n % TILE else [])] for n in r.shape)
    windows = np.lib.stride_tricks.sliding_window_view(r, (TILE, TILE))  # a view: nothing copied yet
    return windows[np.ix_(ys, xs)].reshape(-1, TILE, TILE)


def _tile_energies(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pattern energy, content energy at the grid, total energy) per tile, each (N,), in grey
    levels^2 per pixel (Parseval: the bins of |FFT|^2 / TILE^4 sum to the tile's mean square)."""
    spectrum = np.abs(np.fft.fft2(tiles)) ** 2 / TILE**4  # (N, TILE, TILE)
    (rows, cols), pairs = _bins()
    grid = spectrum[:, rows, cols].sum(axis=1)
    neighbours = [(spectrum[:, ra, ca] + spectrum[:, rb, cb]) / 2 for ra, ca, rb, cb in pairs]
    content = np.max(neighbours, axis=0).sum(axis=1)  # (4, N, 15) -> (N,)
    return np.maximum(grid - content, 0), grid, spectrum.sum(axis=(1, 2))


def grid_artifacts(img: np.ndarray) -> float:
    """RMS amplitude of a pattern locked to the 4 px pixel grid, in the flattest parts of `img`.

    See the module docstring for the method and for typical values.

    Args:
        img: uint8 RGB (H, W, 3) in [0, 255], measured on its Y channel (BT.601, [16, 235]), or
            uint8 gray (H, W), its own Y; H and W at least 64. No border is cropped: a model's
            border pixels are part of its output, and the grid runs through them.

    Returns:
        Grey levels of Y (0-255 scale), >= 0: ~0.1 for photos and bicubic upscales, 1-3 for a
        visible checkerboard.

    Raises:
        ValueError: not a uint8 RGB or gray image, or smaller than 64x64.
    """
    y = luma(img, "grid_artifacts' image")
    if min(y.shape) < TILE:
        raise ValueError(f"grid_artifacts needs an image of at least {TILE}x{TILE}, got {y.shape[0]}x{y.shape[1]}")
    residual = y - gaussian_filter(y, HIGHPASS_SIGMA, mode="nearest")
    pattern, grid, total = _tile_energies(_tiles(residual))
    weight = 1 / (1 + (total - grid) / FLAT_RMS**2)  # flatness of the tile without the pattern
    return float(np.sqrt(np.sum(weight * pattern) / np.sum(weight)))



# ---------------------------------------------------------------- compression blocks carried over

JPEG_BLOCK = 8  # px: JPEG codes an image in 8x8 blocks from its top-left corner
BLOCK_FLAT_STEP = 2.0  # grey levels: stretches whose neighbours step less than this count fully


def _line_steps(y: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean step across each vertical line of `y`, per stretch of one block's height.

    Returns (S, boundary, reference): S (stretches, lines) the mean |y[:, j+1] - y[:, j]| over each
    stretch of JPEG_BLOCK * scale rows; boundary marks the lines between two upscaled JPEG blocks
    (every JPEG_BLOCK * scale px), reference the other lines at a multiple of `scale` px."""
    period = JPEG_BLOCK * scale
    steps = np.abs(np.diff(y, axis=1))
    rows = steps.shape[0] // period * period
    per_stretch = steps[:rows].reshape(rows // period, period, -1).mean(axis=1)
    j = np.arange(1, steps.shape[1] + 1)  # line j lies between columns j - 1 and j
    return per_stretch, j % period == 0, (j % scale == 0) & (j % period != 0)


def _block_sums(y: np.ndarray, scale: int) -> tuple[float, float]:
    """(sum of w * boundary step, sum of w * reference step) over the block edges of the vertical lines."""
    per_stretch, boundary, reference = _line_steps(y, scale)
    period = JPEG_BLOCK * scale
    # the mean reference step within one block period either side of each boundary line (cumulative sums)
    masked = np.concatenate([np.zeros((len(per_stretch), 1)), np.cumsum(per_stretch * reference, axis=1)], axis=1)
    counts = np.concatenate([[0], np.cumsum(reference)])
    lines = np.flatnonzero(boundary)
    lo, hi = np.maximum(lines - period, 0), np.minimum(lines + period + 1, len(reference))
    ref = (masked[:, hi] - masked[:, lo]) / (counts[hi] - counts[lo])
    w = 1 / (1 + (ref / BLOCK_FLAT_STEP) ** 2)
    return float(np.sum(w * per_stretch[:, lines])), float(np.sum(w * ref))


def block_artifacts(img: np.ndarray, scale: int) -> float:
    """How much more the image steps across the edges of upscaled JPEG blocks than beside them.

    Why: a JPEG codes 8x8 blocks on their own; at low quality each block's edge is a small step. An
    upscaler that takes the steps for detail keeps them, and sharpens them, as a grid of edges every
    8 x scale output px (the SRGAN turned Set5 baby's JPEG blocks into 32 px blotches). NIQE does
    not see it: it rewards the added edges as texture.

    What: on Y, the mean step across each boundary line (every 8 x scale px, as the LR's JPEG grid
    from the top-left) over each block edge (8 x scale px along it), against the mean step across
    the lines at a multiple of `scale` px within one block either side, which share the boundary's
    sub-pixel phase (a generator's 4 px grid pattern then counts on both sides alike). Each edge is
    weighted 1 / (1 + (reference step / 2 grey levels)^2): flat places count, where blocks show;
    textured ones, where steps are everywhere, hardly. Vertical and horizontal lines together:

        blocks = sum(w * boundary step) / sum(w * reference step)

    Range and meaning: a ratio, ~1 when the block grid is not in the image. Measured means on
    Set5 / Set14: HR photos 1.03 / 1.04 (single images 0.92-1.25), bicubic of the clean LR 0.97 /
    1.00, of LR saved as JPEG q75 1.18 / 1.21 (q40: 1.50 / 1.54); the shipped SRGAN 0.96 / 0.99
    on clean LR, 1.34 / 1.37 on JPEG q75, 1.74 / 1.81 on q40. Blocks from a JPEG saved before a
    resize sit elsewhere and are not measured.

    Args:
        img: uint8 RGB (H, W, 3) or gray (H, W), the upscaled image, aligned with its LR's top-left.
        scale: the upscaling factor: the blocks are 8 x scale px.

    Returns:
        The ratio above (1 = no block grid).

    Raises:
        ValueError: not a uint8 image, or no block edge fits (a side under 8 x scale + 1 px).
    """
    y = luma(img, "block_artifacts' image")
    period = JPEG_BLOCK * scale
    if min(y.shape) < period + 1:
        raise ValueError(f"block_artifacts needs an image of at least {period + 1} px a side, got "
                         f"{y.shape[0]}x{y.shape[1]}")
    (bx, rx), (by, ry) = _block_sums(y, scale), _block_sums(y.T, scale)
    return (bx + by) / (rx + ry)
