"""The project's bicubic reproduces MATLAB imresize: the official LR files of all three sets."""

import numpy as np
import pytest

from srgan.bicubic import imresize
from srgan.images import load_image
from srgan.metrics import crop_to_lr


@pytest.mark.parametrize("name", ["Set5", "Set14", "BSD100"])
def test_downscale_matches_official_lr(benchmarks, name):
    hr_files = sorted((benchmarks / name / "HR").glob("*.png"))
    worst_diff, worst_psnr = 0, np.inf
    for hr_path in hr_files:
        official = load_image(benchmarks / name / "LR_bicubic" / "X4" / hr_path.name)
        hr = crop_to_lr(load_image(hr_path), official.shape, 4)
        ours = imresize(hr, 0.25)
        assert ours.shape == official.shape, hr_path.name
        diff = np.abs(ours.astype(int) - official.astype(int))
        mse = np.mean(diff.astype(float) ** 2)
        worst_diff = max(worst_diff, int(diff.max()))
        worst_psnr = min(worst_psnr, np.inf if mse == 0 else 10 * np.log10(255**2 / mse))
    assert len(hr_files) == {"Set5": 5, "Set14": 14, "BSD100": 100}[name]
    assert worst_diff <= 1
    assert worst_psnr > 70


def test_float_input_keeps_float_and_shape():
    img = np.random.default_rng(0).random((17, 23, 3)).astype(np.float32)
    out = imresize(img, 4)
    assert out.dtype == np.float32 and out.shape == (68, 92, 3)
    # an interpolating kernel on upscaling: a constant stays constant
    assert np.allclose(imresize(np.full((8, 8), 0.3), 0.5), 0.3)


def test_uint8_rounds_after_each_pass():
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = imresize(img, 0.5)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        imresize(np.zeros((2, 2, 2, 2)), 2)


def test_mirror_border_reflects_the_edge_pixels(rng):
    # a mirror-border resize equals a clamp-border resize of the symmetrically padded image whose
    # padding the kernel never reaches past (8 px pad, 8-tap kernel at scale 0.5, 4 px kept out)
    img = rng.random((30, 26))
    padded = imresize(np.pad(img, 8, mode="symmetric"), 0.5)
    assert np.allclose(imresize(img, 0.5, border="mirror"), padded[4:-4, 4:-4])
    assert not np.allclose(imresize(img, 0.5), padded[4:-4, 4:-4])  # clamp differs at the edges


def test_rejects_unknown_border():
    with pytest.raises(ValueError, match="border"):
        imresize(np.zeros((8, 8)), 0.5, border="wrap")
