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
from srgan.crops import tile_pairs
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
