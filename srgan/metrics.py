"""PSNR and SSIM with the paper's protocol (the one every published x4 number uses).

Protocol: HR is first cropped to `scale` x the LR size (top-left kept); both images go to the
Y channel of YCbCr (ITU-R BT.601, studio range 16-235, rounded to integers as MATLAB's
`rgb2ycbcr` does for uint8); a grayscale image is its own Y, with no studio-range compression,
as MATLAB evaluation scripts skip `rgb2ycbcr` for one-channel images (for Set14's `bridge` this
is worth 1.3 dB); `scale` pixels are removed from each
border; PSNR uses peak 255; SSIM is Wang et al. 2004 (11x11 Gaussian window, sigma 1.5,
K1 = 0.01, K2 = 0.03, valid region only), as MATLAB's `ssim` reference code.
"""

from __future__ import annotations

import numpy as np

# What `srgan evaluate` measures (srgan.benchmarks.METRICS, in this order), named here where the CLI
# reads them without importing the metrics' code (SciPy); NO_REFERENCE: of SR alone, also measured on HR.
METRIC_NAMES = ("psnr", "ssim", "niqe", "artifacts", "blocks")
NO_REFERENCE = ("niqe", "artifacts", "blocks")


Y_COEFFS = (65.481, 128.553, 24.966)  # BT.601 Y (16-235) of R, G, B in [0, 1], as MATLAB `rgb2ycbcr`


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float64 Y (H, W): integers in [16, 235], as MATLAB `rgb2ycbcr`."""
    rgb = rgb.astype(np.float64)
    r, g, b = Y_COEFFS
    return np.round(16.0 + (r * rgb[..., 0] + g * rgb[..., 1] + b * rgb[..., 2]) / 255.0)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 full-range BT.601 luma (H, W); equal planes map to themselves."""
    rgb = rgb.astype(np.float64)
    return np.round(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.uint8)


def luma(img: np.ndarray, name: str = "image") -> np.ndarray:
    """The Y every metric measures: uint8 RGB (H, W, 3) -> Y float64 (H, W) integers in [16, 235];
    uint8 gray (H, W) -> itself as float64 in [0, 255]. Anything else is a ValueError naming `name`."""
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"{name} must be a uint8 RGB (H, W, 3) or gray (H, W) image, got {img.dtype} {img.shape}")
    return img.astype(np.float64) if img.ndim == 2 else rgb_to_y(img)


def _prepare(sr: np.ndarray, hr: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    if sr.shape != hr.shape:
        raise ValueError(f"SR {sr.shape} and HR {hr.shape} must have the same shape")
    y_sr, y_hr = luma(sr, "SR"), luma(hr, "HR")
    if border:
        y_sr, y_hr = y_sr[border:-border, border:-border], y_hr[border:-border, border:-border]
    return y_sr, y_hr


def psnr(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """PSNR in dB on Y, `border` pixels cropped. sr, hr: uint8 RGB (H, W, 3), or gray (H, W), equal shapes."""
    y_sr, y_hr = _prepare(sr, hr, border)
    mse = np.mean((y_sr - y_hr) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """SSIM in [-1, 1] on Y, `border` pixels cropped. sr, hr: as for `psnr`."""
    from skimage.metrics import structural_similarity  # imports SciPy (0.25 s): only where SSIM is asked for

    y_sr, y_hr = _prepare(sr, hr, border)
    # gaussian_weights with sigma 1.5 and skimage's truncate 3.5 is the 11x11 window;
    # population covariance and the mean over the valid region match Wang's MATLAB code.
    return float(structural_similarity(y_sr, y_hr, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def crop_to_lr(hr: np.ndarray, lr_shape: tuple[int, ...], scale: int) -> np.ndarray:
    """Crop HR (H, W, C) to (scale * lr_h, scale * lr_w) from the top-left, as the LR was made."""
    h, w = lr_shape[0] * scale, lr_shape[1] * scale
    if hr.shape[0] < h or hr.shape[1] < w:
        raise ValueError(f"HR {hr.shape[:2]} is smaller than {scale} x LR {lr_shape[:2]}")
    return hr[:h, :w]
