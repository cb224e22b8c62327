"""Tile geometry and training crops (core, no Ray)."""

import numpy as np
import pytest

from srgan.bicubic import imresize
from srgan.crops import random_crops, tile_pairs, tile_starts
from srgan.metrics import psnr


def test_tile_starts_cover_and_end_flush():
    assert tile_starts(300, 128, 128) == [0, 128, 172]
    assert tile_starts(256, 128, 128) == [0, 128]
    assert tile_starts(128, 128, 64) == [0]
    assert tile_starts(100, 128, 128) == []


def test_tile_pairs_are_aligned_cuts_of_one_lr(rng):
    hr = rng.integers(0, 256, (301, 259, 3), dtype=np.uint8)
    lr_full = imresize(hr[:300, :256], 0.25)
    tiles = list(tile_pairs(hr, 4, 128, 128))
    assert [(y, x) for y, x, _, _ in tiles] == [(y, x) for y in (0, 128, 172) for x in (0, 128)]
    for y, x, h, l in tiles:
        assert h.shape == (128, 128, 3) and l.shape == (32, 32, 3)
        assert (h == hr[y:y + 128, x:x + 128]).all()
        assert (l == lr_full[y // 4:y // 4 + 32, x // 4:x // 4 + 32]).all()


def test_tile_pairs_reject_misaligned_tile():
    with pytest.raises(ValueError, match="multiples of scale"):
        list(tile_pairs(np.zeros((64, 64, 3), np.uint8), 4, 30, 32))


def smooth_image(rng, size):
    """A smooth random image, so a bicubic downscale of a crop matches the crop of the downscale."""
    small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
    return imresize(small, 16)


def test_random_crops_stay_aligned_through_flips_and_rotations(rng):
    hr = np.stack([smooth_image(rng, 128) for _ in range(16)])
    lr = np.stack([imresize(h, 0.25) for h in hr])
    out_hr, out_lr = random_crops(hr, lr, 96, rng)
    assert out_hr.shape == (16, 96, 96, 3) and out_lr.shape == (16, 24, 24, 3)
    for h, l in zip(out_hr, out_lr):
        assert psnr(imresize(h, 0.25), l, 2) > 35  # misaligned, unflipped or unrotated pairs fall far below


def test_random_crops_differ_between_draws(rng):
    hr = np.stack([smooth_image(rng, 128) for _ in range(8)])
    lr = np.stack([imresize(h, 0.25) for h in hr])
    a, _ = random_crops(hr, lr, 64, np.random.default_rng(1))
    b, _ = random_crops(hr, lr, 64, np.random.default_rng(2))
    assert not (a == b).all()
