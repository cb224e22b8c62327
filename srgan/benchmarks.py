"""Benchmark evaluation: PSNR/SSIM of an upscaler over folders laid out as

    <data>/<Set>/HR/<name>.png
    <data>/<Set>/LR_bicubic/X<scale>/<name>.png   (optional: made from HR by the project's bicubic)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from srgan.bicubic import imresize
from srgan.crops import crop_to_multiple
from srgan.images import IMAGE_SUFFIXES, decode_image, load_image, read_bytes, save_image
from srgan.metrics import crop_to_lr, psnr, rgb_to_gray, ssim

log = logging.getLogger(__name__)

Upscaler = Callable[[np.ndarray], np.ndarray]  # uint8 LR (h, w, 3) -> uint8 SR (h*s, w*s, 3)


def bicubic_upscaler(scale: int) -> Upscaler:
    return lambda lr: imresize(lr, scale)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_pair(hr_path: Path, lr_dir: Path, scale: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(LR, HR, grayscale): uint8 RGB, HR cropped to scale x LR; LR from `lr_dir` if it has the
    file, else made from HR by the project's bicubic."""
    decoded = decode_image(read_bytes(hr_path), str(hr_path))
    hr, lr_file = decoded.rgb, lr_dir / hr_path.name
    if lr_file.is_file():
        lr = load_image(lr_file)
    else:
        hr = crop_to_multiple(hr, scale)
        lr = imresize(hr, 1 / scale)
    return lr, crop_to_lr(hr, lr.shape, scale), decoded.grayscale


def set_layout(set_dir: Path, scale: int) -> tuple[list[Path], Path]:
    """(HR files, LR folder) of a benchmark set (`HR/`, `LR_bicubic/X<scale>/`) or a plain folder
    of HR images (whose LR folder then does not exist and LR is made from HR)."""
    hr_dir = set_dir / "HR" if (set_dir / "HR").is_dir() else set_dir
    if not hr_dir.is_dir():
        raise FileNotFoundError(f"{set_dir}: no such folder")
    files = list_images(hr_dir)
    if not files:
        raise FileNotFoundError(f"{hr_dir}: no images")
    return files, set_dir / "LR_bicubic" / f"X{scale}"


def evaluate_set(upscaler: Upscaler, set_dir: Path, scale: int,
                 save_dir: Path | None = None) -> dict:
    """Mean PSNR/SSIM over one set (see `set_layout`):
    {"psnr", "ssim", "images", "per_image": {name: {"psnr", "ssim"}}}."""
    files, lr_dir = set_layout(set_dir, scale)
    per_image = {}
    for hr_path in tqdm(files, desc=set_dir.name, leave=False, disable=None):
        lr, hr, grayscale = load_pair(hr_path, lr_dir, scale)
        sr = upscaler(lr)
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            save_image(save_dir / f"{hr_path.stem}.png", sr)
        if grayscale:  # a one-channel image is its own Y (see srgan.metrics)
            sr, hr = rgb_to_gray(sr), hr[..., 0]
        per_image[hr_path.stem] = {"psnr": psnr(sr, hr, scale), "ssim": ssim(sr, hr, scale)}
    return {"psnr": float(np.mean([m["psnr"] for m in per_image.values()])),
            "ssim": float(np.mean([m["ssim"] for m in per_image.values()])),
            "images": len(per_image), "per_image": per_image}


def comparison_grid(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, size: int = 192) -> np.ndarray:
    """bicubic | SR | HR side by side, each a centre crop of `size` HR pixels: uint8 (size, 3*size, 3)."""
    scale = sr.shape[0] // lr.shape[0]
    bicubic = imresize(lr, scale)
    size = min(size, *hr.shape[:2])
    y, x = (hr.shape[0] - size) // 2, (hr.shape[1] - size) // 2
    return np.concatenate([img[y:y + size, x:x + size] for img in (bicubic, sr, hr)], axis=1)
