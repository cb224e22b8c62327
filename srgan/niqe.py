"""NIQE, the Natural Image Quality Evaluator, as the authors' MATLAB release computes it.

Mittal, Soundararajan, Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE SPL 2013.
A no-reference measure: the distance between a multivariate Gaussian (MVG) fitted to the image's
natural-scene statistics and the MVG of a corpus of pristine photos. Lower is more natural.

    Y (H, W) in [16, 235] (gray: [0, 255])          the image's luma, rounded to integers
      │  crop to whole 96 px blocks (top-left kept)
      ├─ scale 1: MSCN = (Y - mu) / (sigma + 1)      mu, sigma: local mean/std, 7x7 Gaussian window
      │           per 96x96 block: 18 features       AGGD fits to MSCN and to 4 neighbour products
      ├─ scale 2: the same on bicubic Y/2 (48x48 blocks, mirrored borders)
      ▼
    (blocks, 36) features -> mean, covariance -> sqrt(d^T pinv((cov_p + cov) / 2) d), d = mu_p - mu

What makes it MATLAB's (checked against the value MATLAB R2021a gives for a reference image, see
tests/core/test_niqe.py): the pristine model and window are the release's own (`assets/metrics`);
local statistics replicate the border (`imfilter(..., 'replicate')`); neighbour products shift
circularly inside each block (`circshift`); the AGGD shape is the nearest point of the release's
grid 0.2:0.001:10; the half-scale pass is today's MATLAB `imresize`, which mirrors at the borders
(the project's LR protocol clamps, so the two differ at the edges); a block with a NaN feature
(e.g. a flat block, whose MSCN is all zero) is left out of the covariance but its other features
count in the mean (`nanmean`, `nancov`).

Precision: the reference image scores 5.72996 here against MATLAB's 5.72957 (4e-4). Shapes come
from a 0.001 grid, so arithmetic differences of 1e-7 in the local statistics move a few blocks to
the next grid point: computing them in float32 (as BasicSR does) lands within 4e-6 of MATLAB on
this image; float64 is kept as the release's own arithmetic, with no evidence beyond one image.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma

from srgan import ASSETS
from srgan.bicubic import imresize
from srgan.metrics import luma

PRISTINE_PARAMS = ASSETS / "metrics" / "niqe_pris_params.npz"
BLOCK = 96  # the block size of the pristine model; NIQE is defined for it only
# (row, column) circular shifts of the four neighbour products: horizontal, vertical, two diagonals
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (36,), covariance (36, 36), Gaussian window (7, 7)) of the pristine model."""
    params = np.load(PRISTINE_PARAMS)
    return params["mu_pris_param"].ravel(), params["cov_pris_param"], params["gaussian_window"]


@lru_cache(maxsize=1)
def _shape_grid() -> tuple[np.ndarray, np.ndarray]:
    """The AGGD shapes the release searches (0.2:0.001:10) and r(shape) = G(2/a)^2 / (G(1/a) G(3/a))."""
    shapes = np.arange(0.2, 10.001, 0.001)
    return shapes, gamma(2 / shapes) ** 2 / (gamma(1 / shapes) * gamma(3 / shapes))


def _nearest_shape(rhat: np.ndarray) -> np.ndarray:
    """The grid shape whose r is nearest each `rhat` (N,), as MATLAB's `min` over the whole grid.

    r increases along the grid, so a binary search finds the same point as the release's search of
    all 9801 values, without an (N, 9801) array. Where rhat is NaN, MATLAB's `min` returns index 1.
    """
    shapes, r = _shape_grid()
    right = np.clip(np.searchsorted(r, rhat), 1, len(r) - 1)
    left_nearer = (r[right - 1] - rhat) ** 2 <= (r[right] - rhat) ** 2  # ties: the first, as `min`
    index = np.where(left_nearer, right - 1, right)
    return shapes[np.where(np.isnan(rhat), 0, index)]


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit an asymmetric generalised Gaussian to each row of x (N, P) -> (shape, left scale, right
    scale), each (N,); NaN scales where a row has no negative (or no positive) value."""
    with np.errstate(invalid="ignore", divide="ignore"):  # empty sides give NaN, as in MATLAB
        left_std = np.sqrt((x**2 * (x < 0)).sum(1) / (x < 0).sum(1))
        right_std = np.sqrt((x**2 * (x > 0)).sum(1) / (x > 0).sum(1))
        ratio = left_std / right_std
        rhat = np.abs(x).mean(1) ** 2 / (x**2).mean(1)
        rhat_norm = rhat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    shape = _nearest_shape(rhat_norm)
    spread = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
    return shape, left_std * spread, right_std * spread


def _mscn(y: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of y (H, W) float64 in [0, 255]."""
    mu = correlate(y, window, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(y * y, window, mode="nearest") - mu * mu))
    return (y - mu) / (sigma + 1)


def _block_features(mscn: np.ndarray, size: int) -> np.ndarray:
    """(N, 18) features of the size x size blocks tiling mscn (H, W), all blocks fitted at once."""
    h, w = mscn.shape
    blocks = mscn.reshape(h // size, size, w // size, size).swapaxes(1, 2).reshape(-1, size, size)
    shape, left, right = _aggd(blocks.reshape(len(blocks), -1))
    features = [shape, (left + right) / 2]
    for shift in SHIFTS:
        products = blocks * np.roll(blocks, shift, axis=(1, 2))  # circular inside each block
        shape, left, right = _aggd(products.reshape(len(blocks), -1))
        mean = (right - left) * gamma(2 / shape) / gamma(1 / shape)
        features += [shape, mean, left, right]
    return np.stack(features, axis=1)


def _distance(features: np.ndarray, mu_p: np.ndarray, cov_p: np.ndarray) -> float:
    """NIQE of (N, 36) block features against the pristine MVG (mu_p, cov_p)."""
    mu = np.nanmean(features, axis=0)
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) == 0:
        return float("nan")  # no block with a full set of features: NIQE is undefined (MATLAB: NaN)
    # MATLAB's cov of one observation is zero (it divides by N, not N - 1, when N = 1)
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_p)
    d = mu_p - mu
    # MATLAB's pinv tolerance: max(size) * eps(norm(A)); numpy's default rcond is 1e-15
    pinv = np.linalg.pinv((cov_p + cov) / 2, rcond=max(cov_p.shape) * np.finfo(np.float64).eps)
    return float(np.sqrt(d @ pinv @ d))


def niqe(img: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of an image, as the authors' MATLAB release (R2021a) computes it on MATLAB's Y channel.

    Lower is better: pristine photos score about 3-5, blurred or upscaled ones 6-8 and more.
    0.02-0.04 s for a 512x512 image on a shared 2-core CPU (Set14 lenna, pepper), as the features
    of all blocks are fitted at once (a Python loop over blocks takes seconds).

    Args:
        img: uint8 RGB (H, W, 3) in [0, 255], measured on its Y channel (BT.601, [16, 235],
            rounded as MATLAB's `rgb2ycbcr`), or uint8 gray (H, W), which is its own Y.
        crop_border: pixels removed from each side first (SR protocol: the scale).

    Returns:
        NIQE, >= 0; NaN where no 96 px block has texture (e.g. a flat image), as MATLAB.

    Raises:
        ValueError: not a uint8 RGB or gray image, a negative crop, or under one 96x96 block
            after cropping.
    """
    y = luma(img, "niqe's image")  # gray is its own Y, as in srgan.metrics
    if crop_border < 0:
        raise ValueError(f"niqe crop_border must be >= 0, got {crop_border}")
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    h, w = (dim // BLOCK * BLOCK for dim in y.shape)
    if h == 0 or w == 0:
        raise ValueError(f"niqe needs at least one {BLOCK}x{BLOCK} block, but the image is "
                         f"{y.shape[0]}x{y.shape[1]} after cropping {crop_border} px from each border")
    mu_p, cov_p, window = _pristine()
    y = y[:h, :w]
    features = [_block_features(_mscn(y, window), BLOCK)]
    features.append(_block_features(_mscn(imresize(y, 0.5, border="mirror"), window), BLOCK // 2))
    return _distance(np.concatenate(features, axis=1), mu_p, cov_p)
