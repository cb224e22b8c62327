"""NIQE reproduces the authors' MATLAB release and ranks a blurred photo below the sharp one."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.special import gamma

from helpers import DATA
from srgan.images import load_image
from srgan.niqe import PRISTINE_PARAMS, _nearest_shape, niqe

MATLAB_BABOON = 5.72957338  # MATLAB R2021a, authors' code, Y of rgb2ycbcr, no crop (see metrics/README.md)


def test_matches_matlab_reference():
    img = load_image(DATA / "metrics" / "niqe_reference_baboon.png")
    assert abs(niqe(img) - MATLAB_BABOON) <= 0.002


def test_shipped_pristine_model_is_the_shared_one():
    assert PRISTINE_PARAMS.read_bytes() == (DATA / "metrics" / "niqe_pris_params.npz").read_bytes()


@pytest.mark.parametrize("name", ["Set14/HR/lenna.png", "BSD100/HR/108005.png"])
def test_blur_scores_worse(benchmarks, name):
    sharp = load_image(benchmarks / name)
    blurred = np.round(gaussian_filter(sharp.astype(float), sigma=(1.5, 1.5, 0))).astype(np.uint8)
    assert niqe(blurred, crop_border=4) > niqe(sharp, crop_border=4) + 1.0


def test_gray_is_its_own_luma(benchmarks):
    gray = load_image(benchmarks / "Set14" / "HR" / "bridge.png")[..., 0]
    score = niqe(gray, crop_border=4)
    assert np.isfinite(score) and score > 0
    assert score != niqe(np.repeat(gray[..., None], 3, axis=2), crop_border=4)  # RGB goes to studio range


def test_one_block_is_enough(rng):
    # MATLAB's covariance of a single block is zero, not NaN
    assert np.isfinite(niqe(rng.integers(0, 256, (96, 100), dtype=np.uint8)))


@pytest.mark.parametrize("shape, crop", [((95, 200, 3), 0), ((100, 100, 3), 4), ((200, 90), 0)])
def test_too_small_is_a_clear_error(shape, crop):
    with pytest.raises(ValueError, match=r"at least one 96x96 block.*after cropping"):
        niqe(np.zeros(shape, np.uint8), crop_border=crop)


@pytest.mark.parametrize("img", [np.zeros((128, 128, 3), np.float32), np.zeros((128, 128, 4), np.uint8)])
def test_rejects_non_uint8_rgb_or_gray(img):
    with pytest.raises(ValueError, match="uint8 RGB"):
        niqe(img)


def test_shape_search_is_the_release_grid_search(rng):
    # the release takes argmin over the whole grid; the binary search must pick the same points
    grid = np.arange(0.2, 10.001, 0.001)
    r = gamma(2 / grid) ** 2 / (gamma(1 / grid) * gamma(3 / grid))
    rhat = np.concatenate([rng.uniform(0.0, 0.8, 2000), [np.nan]])
    want = grid[np.argmin((r[None, :] - rhat[:, None]) ** 2, axis=1)]
    assert np.array_equal(_nearest_shape(rhat), want)
