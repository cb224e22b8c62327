"""Benchmark evaluation: metrics of an upscaler (or of the HR images) over folders laid out as

    <data>/<Set>/HR/<name>.png
    <data>/<Set>/LR_bicubic/X<scale>/<name>.png   (optional: made from HR by the project's bicubic)

Full-reference metrics (PSNR, SSIM) compare SR with HR; no-reference ones (NIQE, grid artifacts,
compression blocks) score SR alone, and HR beside it (`hr_niqe`, `hr_artifacts`, `hr_blocks`) so
a table shows how far from the photos a model is. Every metric crops `scale` px from each border
except the grid and block measures, which look for patterns laid on all the output's pixels.

A degraded test set (`degrade`, srgan.degradations) is the same set with its LR images degraded
by a named, seeded spec before they are upscaled; HR is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from srgan.artifacts import block_artifacts, grid_artifacts
from srgan.bicubic import imresize
from srgan.condition import Condition, read_condition
from srgan.config import PRESETS, DegradeConfig, build
from srgan.crops import crop_to_multiple
from srgan.degradations import Spec, degrade, degrade_lr_file, spec_condition, spec_rng
from srgan.images import (
    IMAGE_SUFFIXES,
    UNSUPPORTED,
    ImageError,
    decode_image,
    encode_image,
    read_bytes,
    save_image,
)
from srgan.metrics import METRIC_NAMES, NO_REFERENCE, crop_to_lr, psnr, rgb_to_gray, ssim
from srgan.niqe import niqe

log = logging.getLogger(__name__)

# uint8 LR (h, w, 3) [, its Condition, for a conditioned model] -> uint8 SR (h*s, w*s, 3)
Upscaler = Callable[..., np.ndarray]
Metric = Callable[[np.ndarray, np.ndarray, int], float]  # (SR, HR, scale) -> value
# name -> metric of uint8 RGB (H, W, 3) or gray (H, W) images; NIQE crops `scale` px as PSNR/SSIM do
METRICS: dict[str, Metric] = {
    "psnr": psnr,
    "ssim": ssim,
    "niqe": lambda sr, hr, scale: niqe(sr, crop_border=scale),
    "artifacts": lambda sr, hr, scale: grid_artifacts(sr),
    "blocks": lambda sr, hr, scale: block_artifacts(sr, scale),
}
assert tuple(METRICS) == METRIC_NAMES
# `realworld:SEED` test sets: one draw per image of the `realworld` preset's Real-ESRGAN rounds
# (`degrade`: not its photo round, nothing left clean)
REALWORLD = build(DegradeConfig, PRESETS["realworld"]["degrade"])


def bicubic_upscaler(scale: int) -> Upscaler:
    return lambda lr: imresize(lr, scale)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class TestInput:
    """One image of a (degraded) test set: `lr`, `hr` uint8 RGB, HR cropped to scale x LR; `file`
    the LR as a user would have it (the JPEG where the spec saves one last, else a PNG); `condition`
    what the LR went through by the spec's own values (srgan.degradations.spec_condition; a
    `realworld` draw's own)."""

    lr: np.ndarray
    hr: np.ndarray
    grayscale: bool
    file: bytes
    condition: Condition


def load_input(hr_path: Path, lr_dir: Path, scale: int, spec: Spec | None = None) -> TestInput:
    """The test input of `hr_path`: LR from `lr_dir` if it has the file, else made from HR by the
    project's bicubic; then degraded by `spec` if given (its ops on that LR; `realworld:SEED` makes
    LR from HR by the training pipeline instead)."""
    decoded = decode_image(read_bytes(hr_path), str(hr_path))
    hr, lr_file = decoded.rgb, lr_dir / hr_path.name
    if spec is not None and spec.realworld is not None:
        hr = crop_to_multiple(hr, scale)
        lr, condition = degrade(hr, REALWORLD, scale, spec_rng(spec, hr_path.stem))
        return TestInput(lr, hr, decoded.grayscale, encode_image(lr), condition)
    if lr_file.is_file():
        file = read_bytes(lr_file)
    else:
        hr = crop_to_multiple(hr, scale)
        file = encode_image(imresize(hr, 1 / scale))
    lr = decode_image(file, str(lr_file)).rgb
    if spec is not None:
        file = degrade_lr_file(lr, spec, hr_path.stem)
        lr = decode_image(file, f"{lr_file} ({spec.text})").rgb
    condition = spec_condition(spec) if spec is not None else Condition()
    return TestInput(lr, crop_to_lr(hr, lr.shape, scale), decoded.grayscale, file, condition)


def load_pair(hr_path: Path, lr_dir: Path, scale: int, spec: Spec | None = None
              ) -> tuple[np.ndarray, np.ndarray, bool]:
    """(LR, HR, grayscale) of `load_input`."""
    test = load_input(hr_path, lr_dir, scale, spec)
    return test.lr, test.hr, test.grayscale


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


def check_metrics(metrics: Sequence[str], reference: bool = True) -> None:
    """Raise ValueError naming any metric that is unknown, or that needs HR when there is none."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    if not reference and set(metrics) - set(NO_REFERENCE):
        raise ValueError(f"the HR images have nothing to compare with: only {', '.join(NO_REFERENCE)} apply")


def _score(sr: np.ndarray, hr: np.ndarray, scale: int, metrics: Sequence[str], with_hr: bool) -> dict[str, float]:
    scores = {m: METRICS[m](sr, hr, scale) for m in metrics}
    if with_hr:  # HR's own no-reference scores, while it is in memory
        scores |= {f"hr_{m}": METRICS[m](hr, hr, scale) for m in metrics if m in NO_REFERENCE}
    return scores


def evaluate_set(upscaler: Upscaler | None, set_dir: Path, scale: int, save_dir: Path | None = None,
                 metrics: Sequence[str] = ("psnr", "ssim"), spec: Spec | None = None,
                 condition: Literal["read", "true"] | None = None) -> dict:
    """Mean and per-image `metrics` over one set (see `set_layout`), its LR degraded by `spec` if
    given, e.g. {"psnr", "niqe", "hr_niqe", "images", "per_image": {name: {"psnr", "niqe", "hr_niqe"}}}.

    `upscaler` None scores the HR images themselves (no-reference metrics only). With a model,
    each no-reference metric is also given for HR as hr_<name>. Units: PSNR dB, SSIM [-1, 1],
    NIQE (lower is better), artifacts grey levels, blocks a ratio (see srgan.artifacts).
    `condition` (for a conditioned model): the upscaler is called as upscaler(lr, condition), the
    condition "read" from the LR file (srgan.condition.read_condition: what a user gets) or the
    spec's "true" one (the model's ceiling); each image's is in per_image as "condition".
    `save_dir` receives the SR images as <name>.png, and with a `spec` the degraded LR as lr/<name>.png.
    """
    check_metrics(metrics, reference=upscaler is not None)
    files, lr_dir = set_layout(set_dir, scale)
    per_image = {}
    for hr_path in tqdm(files, desc=set_dir.name, leave=False, disable=None):
        test = load_input(hr_path, lr_dir, scale, spec)
        lr, hr, told = test.lr, test.hr, {}
        if upscaler is None:
            sr = hr
        elif condition is None:
            sr = upscaler(lr)
        else:
            used = read_condition(decode_image(test.file)) if condition == "read" else test.condition
            sr, told = upscaler(lr, used), {"condition": str(used)}
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            save_image(save_dir / f"{hr_path.stem}.png", sr)
            if spec is not None:
                (save_dir / "lr").mkdir(exist_ok=True)
                save_image(save_dir / "lr" / f"{hr_path.stem}.png", lr)
        if test.grayscale:  # a one-channel image is its own Y (see srgan.metrics)
            sr, hr = rgb_to_gray(sr), hr[..., 0]
        try:
            per_image[hr_path.stem] = _score(sr, hr, scale, metrics, with_hr=upscaler is not None) | told
        except ValueError as e:  # e.g. too small for NIQE's 96 px blocks: name the file
            raise ImageError(str(hr_path), str(e), UNSUPPORTED) from e
    means = {k: float(np.mean([m[k] for m in per_image.values()])) for k in next(iter(per_image.values()))
             if k != "condition"}
    return {**means, "images": len(per_image), "per_image": per_image}


def comparison_grid(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, size: int = 192) -> np.ndarray:
    """bicubic | SR | HR side by side, each a centre crop of `size` HR pixels: uint8 (size, 3*size, 3)."""
    scale = sr.shape[0] // lr.shape[0]
    bicubic = imresize(lr, scale)
    size = min(size, *hr.shape[:2])
    y, x = (hr.shape[0] - size) // 2, (hr.shape[1] - size) // 2
    return np.concatenate([img[y:y + size, x:x + size] for img in (bicubic, sr, hr)], axis=1)
