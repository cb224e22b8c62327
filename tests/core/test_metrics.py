"""PSNR/SSIM reproduce the published bicubic x4 baseline with the paper's protocol."""

import numpy as np
import pytest

from srgan.benchmarks import bicubic_upscaler, evaluate_set
from srgan.metrics import psnr, rgb_to_gray, rgb_to_y, ssim

PUBLISHED = {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027)}


@pytest.mark.parametrize("name", PUBLISHED)
def test_bicubic_baseline_matches_published(benchmarks, name):
    result = evaluate_set(bicubic_upscaler(4), benchmarks / name, 4)
    want_psnr, want_ssim = PUBLISHED[name]
    assert result["images"] == {"Set5": 5, "Set14": 14}[name]
    assert abs(result["psnr"] - want_psnr) <= 0.02
    assert abs(result["ssim"] - want_ssim) <= 0.002


def test_identical_images(rng):
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr(img, img, 4) == float("inf")
    assert ssim(img, img, 4) == pytest.approx(1.0)


def test_psnr_known_value():
    a = np.zeros((20, 20, 3), np.uint8)
    b = a.copy()
    b[..., 1] = 10  # Y = round(16 + 10 * 128.553 / 255) = 21 against 16 everywhere
    assert psnr(a, b, 2) == pytest.approx(10 * np.log10(255**2 / 5**2))


def test_border_is_cropped(rng):
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = a.copy()
    b[:4] = 0  # damage only the border rows
    assert psnr(a, b, 4) == float("inf")
    assert psnr(a, b, 3) < 40


def test_y_channel_range():
    assert rgb_to_y(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16)
    assert rgb_to_y(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), 1)


def test_gray_images_are_their_own_y(rng):
    gray = rng.integers(0, 256, (24, 24), dtype=np.uint8)
    noisy = np.clip(gray.astype(int) + rng.integers(-3, 4, gray.shape), 0, 255).astype(np.uint8)
    rgb = lambda g: np.repeat(g[..., None], 3, axis=2)  # noqa: E731
    assert rgb_to_gray(rgb(gray)).tolist() == gray.tolist()
    # studio-range Y compresses differences by 219/255: the gray path does not
    assert psnr(noisy, gray, 2) < psnr(rgb(noisy), rgb(gray), 2)
