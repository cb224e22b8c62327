"""int8 calibration data: a fixed, seeded sample of LR tiles cut from real training images.

    HR images (folders, recursive) -> crops.tile_pairs (HR cropped to a multiple of scale, LR made
    from the whole image by the MATLAB-compatible bicubic) -> every LR tile -> `count` of them,
    drawn without replacement by a seeded generator -> uint8 (lr_size, lr_size, 3) each

The same folders and parameters give the same tiles (files sorted by path, fixed seed), so an int8
engine quantized twice gets the same quantization ranges; `digest` names the sample in a card.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srgan import ASSETS
from srgan.condition import Condition
from srgan.crops import tile_pairs
from srgan.degradations import gaussian_noise, jpeg, to_uint8
from srgan.images import find_images, load_image

SHIPPED_TRAIN = ASSETS / "train"  # six BSD200 training images shipped with the package


@dataclass(frozen=True)
class Calibration:
    """Where the calibration tiles come from and how many: recorded in an engine's card."""

    folders: tuple[str, ...] = (str(SHIPPED_TRAIN),)
    count: int = 300  # NNCF's default subset size
    lr_size: int = 48  # LR tile side: 192 HR px, twice the training crop
    seed: int = 0
    scale: int = 4


def image_files(folders: tuple[str, ...]) -> list[Path]:
    """The images under `folders` (recursive), sorted; raises FileNotFoundError naming an empty one."""
    files = []
    for folder in folders:
        found = find_images(folder)
        if not found:
            raise FileNotFoundError(f"calibration folder {folder}: no images")
        files += found
    return files


def calibration_tiles(spec: Calibration) -> tuple[list[np.ndarray], dict]:
    """The calibration sample and its description.

    Returns:
        tiles: uint8 (lr_size, lr_size, 3) LR tiles, `spec.count` of them (fewer if the images
            hold fewer), in a fixed order.
        info: {"images", "tiles_available", "tiles", "digest"} for the card; `digest` is the
            sha256 of the tiles' bytes.
    """
    files = image_files(spec.folders)
    hr_tile = spec.lr_size * spec.scale
    # half-overlapping tiles: the six shipped images give 72 of 48 px instead of 36
    available = [lr for path in files
                 for _, _, _, lr in tile_pairs(load_image(path), spec.scale, hr_tile, hr_tile // 2)]
    if not available:
        raise FileNotFoundError(f"calibration folders {', '.join(spec.folders)}: no image of at least {hr_tile} px")
    rng = np.random.default_rng(spec.seed)
    picked = sorted(rng.choice(len(available), min(spec.count, len(available)), replace=False))
    tiles = [np.ascontiguousarray(available[i]) for i in picked]
    digest = hashlib.sha256(b"".join(t.tobytes() for t in tiles)).hexdigest()
    return tiles, {"images": len(files), "tiles_available": len(available), "tiles": len(tiles), "digest": digest}


# What a conditioned generator's int8 graph is calibrated on, one condition per tile in turn: the
# adapters' activations (0 for a clean input) are then seen at the levels degraded inputs bring.
CALIBRATION_CONDITIONS = (Condition(), Condition(jpeg_quality=75), Condition(jpeg_quality=40),
                          Condition(noise_sigma=10.0), Condition(jpeg_quality=60, noise_sigma=5.0))


def conditioned_tiles(tiles: list[np.ndarray], seed: int = 0) -> list[tuple[np.ndarray, Condition]]:
    """Each tile with a condition of CALIBRATION_CONDITIONS in turn, made to have gone through it:
    Gaussian noise of its sigma, then a JPEG of its quality. uint8 (t, t, 3) tiles."""
    rng, out = np.random.default_rng(seed), []
    for i, tile in enumerate(tiles):
        condition = CALIBRATION_CONDITIONS[i % len(CALIBRATION_CONDITIONS)]
        img = tile.astype(np.float32) / 255
        if condition.noise_sigma:
            img = gaussian_noise(img, condition.noise_sigma, False, rng)
        if condition.jpeg_quality is not None:
            img = jpeg(np.clip(img, 0, 1), condition.jpeg_quality)
        out.append((to_uint8(img), condition))
    return out
