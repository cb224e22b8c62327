"""Real-photo degradations (srgan.degradations) against hand-computed cases."""

import dataclasses
import math

import numpy as np
import pytest

from helpers import BENCHMARKS
from srgan.condition import Condition
from srgan.config import DegradeConfig, DegradeRound
from srgan.degradations import (
    SpecError,
    blur,
    degrade,
    degrade_lr,
    gaussian_kernel,
    gaussian_noise,
    generalized_gaussian_kernel,
    jpeg,
    parse_spec,
    photo_round,
    plateau_kernel,
    poisson_noise,
    random_kernel,
    resize,
    sinc_kernel,
    to_uint8,
)
from srgan.images import load_image


def moments(k: np.ndarray) -> tuple[float, float, float]:
    """Second moments (along columns x, along rows y, cross xy) of a kernel about its centre."""
    c = k.shape[0] // 2
    y, x = np.mgrid[-c:c + 1, -c:c + 1]
    return float((k * x * x).sum()), float((k * y * y).sum()), float((k * x * y).sum())


def test_gaussian_kernels_sum_to_one_with_the_stated_spread_and_orientation():
    iso = gaussian_kernel(21, 2.0)
    assert iso.shape == (21, 21) and iso.dtype == np.float32 and iso.sum() == pytest.approx(1, abs=1e-6)
    xx, yy, xy = moments(iso)
    assert xx == pytest.approx(4, rel=0.02) and yy == pytest.approx(4, rel=0.02) and abs(xy) < 1e-6
    xx, yy, _ = moments(gaussian_kernel(21, 3.0, 1.0, 0.0))  # wide along the columns
    assert xx == pytest.approx(9, rel=0.1) and yy == pytest.approx(1, rel=0.02)
    xx, yy, _ = moments(gaussian_kernel(21, 3.0, 1.0, math.pi / 2))  # turned a quarter: wide along the rows
    assert yy == pytest.approx(9, rel=0.1) and xx == pytest.approx(1, rel=0.02)
    xx, yy, xy = moments(gaussian_kernel(21, 3.0, 1.0, math.pi / 4))  # along the diagonal x = y (y down)
    assert xy == pytest.approx((9 - 1) / 2, rel=0.1) and xx == pytest.approx(yy, rel=1e-4)


def test_generalized_and_plateau_kernels():
    assert np.allclose(generalized_gaussian_kernel(15, 2, 1, 0.3, 1.0), gaussian_kernel(15, 2, 1, 0.3), atol=1e-7)
    flat_top = generalized_gaussian_kernel(15, 2, 2, 0, 4.0)  # beta > 1: flatter top, shorter tails
    assert flat_top[7, 7] / flat_top[7, 8] < gaussian_kernel(15, 2)[7, 7] / gaussian_kernel(15, 2)[7, 8]
    plateau = plateau_kernel(21, 2, 2, 0, 1.0)
    for k in (flat_top, plateau):
        assert k.sum() == pytest.approx(1, abs=1e-6) and np.allclose(k, k[::-1, ::-1])
    assert plateau[10, 0] / plateau[10, 10] > 10 * gaussian_kernel(21, 2)[10, 0] / gaussian_kernel(21, 2)[10, 10]


def test_sinc_kernel_is_a_low_pass_with_ringing():
    k = sinc_kernel(21, math.pi / 2)
    assert k.shape == (21, 21) and k.sum() == pytest.approx(1, abs=1e-6) and np.allclose(k, k.T)
    assert k.min() < 0  # the negative lobes that make ringing and overshoot
    response = np.abs(np.fft.fft2(k, (128, 128)))
    f = np.fft.fftfreq(128) * 2 * math.pi
    radius = np.hypot(*np.meshgrid(f, f))
    assert response[radius < 0.3 * math.pi].min() > 0.8 and response[radius > 0.8 * math.pi].max() < 0.2


def test_random_kernels_are_odd_normalised_and_seeded():
    cfg = DegradeConfig().first
    a = [random_kernel(np.random.default_rng(i), cfg) for i in range(30)]
    b = [random_kernel(np.random.default_rng(i), cfg) for i in range(30)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(k.shape[0] % 2 == 1 and 7 <= k.shape[0] <= 21 and k.sum() == pytest.approx(1, abs=1e-5) for k in a)
    assert len({k.tobytes() for k in a}) == 30


def test_blur_keeps_flat_images_and_spreads_a_point():
    flat = np.full((20, 30, 3), 0.4, np.float32)
    assert np.allclose(blur(flat, gaussian_kernel(21, 3.0)), 0.4, atol=1e-5)  # reflected borders: no dark rim
    point = np.zeros((31, 31, 3), np.float32)
    point[15, 15] = 1
    k = gaussian_kernel(9, 1.5, 0.7, 0.4)
    assert np.allclose(blur(point, k)[11:20, 11:20, 0], k, atol=1e-6)


def test_noise_has_the_stated_sigma_and_grey_noise_is_the_same_on_every_channel(rng):
    img = np.full((200, 200, 3), 0.5, np.float32)
    noise = gaussian_noise(img, 10, False, rng) - img
    assert noise.std() * 255 == pytest.approx(10, rel=0.03) and abs(noise.mean()) * 255 < 0.2
    assert abs(np.corrcoef(noise[..., 0].ravel(), noise[..., 1].ravel())[0, 1]) < 0.05
    grey = gaussian_noise(img, 10, True, rng) - img
    assert np.array_equal(grey[..., 0], grey[..., 2]) and grey.std() * 255 == pytest.approx(10, rel=0.03)


def test_poisson_noise_grows_with_intensity(rng):
    ramp = np.repeat(np.linspace(0, 1, 256, dtype=np.float32)[None, :, None], 400, axis=0).repeat(3, axis=2)
    noise = poisson_noise(ramp, 1.0, False, rng) - ramp
    dark, bright = noise[:, 20:40].std(), noise[:, 200:220].std()
    # shot noise: variance = intensity / levels (256 distinct levels here)
    assert bright == pytest.approx(math.sqrt(0.82 / 256), rel=0.1) and bright > 2.5 * dark
    assert abs(noise.mean()) < 2e-3


def test_jpeg_decodes_and_loses_more_at_lower_quality():
    lr = load_image(BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "baby.png").astype(np.float32) / 255
    errors = []
    for q in (95, 75, 30):
        out = jpeg(lr, q)
        assert out.shape == lr.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
        errors.append(np.abs(out - lr).mean())
    assert 0 < errors[0] < errors[1] < errors[2]


def test_resize_shapes_and_modes(rng):
    img = rng.random((24, 36, 3), dtype=np.float32)
    for mode in ("area", "bilinear", "bicubic"):
        assert resize(img, 12, 18, mode).shape == (12, 18, 3) and resize(img, 30, 40, mode).shape == (30, 40, 3)
    assert resize(img, 24, 36, "bicubic") is img


def test_the_pipeline_makes_lr_from_hr_as_a_function_of_its_rng():
    hr = load_image(BENCHMARKS / "Set5" / "HR" / "baby.png")[:96, :96]
    cfg = DegradeConfig(enabled=True)
    draws = [degrade(hr, cfg, 4, np.random.default_rng(seed)) for seed in (1, 1, 2)]
    outs = [lr for lr, _ in draws]
    assert outs[0].shape == (24, 24, 3) and outs[0].dtype == np.uint8
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    assert draws[0][1] == draws[1][1]  # the condition too is a function of the draws


def test_the_pipelines_condition_is_its_last_jpeg_and_its_lr_size_noise():
    hr = load_image(BENCHMARKS / "Set5" / "HR" / "bird.png")[:96, :96]
    only_second = DegradeConfig(enabled=True, first=DegradeRound(prob=0.0), final_sinc_prob=0.0, final_jpeg_prob=0.0,
                                second=DegradeRound(blur_prob=0.0, gaussian_noise_prob=1.0, noise_sigma=(7, 7),
                                                    jpeg_prob=0.0))
    assert degrade(hr, only_second, 4, np.random.default_rng(0))[1] == Condition(noise_sigma=7.0)
    last_jpeg = dataclasses.replace(only_second, second=DegradeRound(prob=0.0), final_jpeg_prob=1.0,
                                    final_jpeg_quality=(55, 55))
    qualities = {degrade(hr, last_jpeg, 4, np.random.default_rng(seed))[1].jpeg_quality for seed in range(8)}
    assert qualities == {55, None}  # JPEG then resize leaves no 8 px block: no JPEG quality to tell


def test_specs_parse_and_refuse_what_they_cannot_read():
    assert parse_spec("blur:1.5+jpeg:60").ops == (("blur", 1.5), ("jpeg", 60.0))
    assert parse_spec("realworld:7").realworld == 7
    for bad in ("jpeg:0", "jpeg:75.5", "noise:-1", "sharpen:2", "jpeg", "blur:1+", "realworld:x"):
        with pytest.raises(SpecError, match="--degrade"):
            parse_spec(bad)


def test_degraded_lr_is_the_same_bytes_for_the_same_spec_and_name():
    lr = load_image(BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "bird.png")
    spec = parse_spec("noise:10+jpeg:75")
    a, b = degrade_lr(lr, spec, "bird"), degrade_lr(lr, spec, "bird")
    assert a.shape == lr.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, degrade_lr(lr, spec, "other"))  # each image its own noise
    noise = degrade_lr(lr, parse_spec("noise:10"), "bird").astype(float) - lr
    assert noise.std() == pytest.approx(10, rel=0.1)  # 9.4: rounding to uint8 and clipping at 0 take a little


def test_rounds_and_steps_left_out_by_their_probabilities_leave_the_final_resize():
    hr = load_image(BENCHMARKS / "Set5" / "HR" / "bird.png")[:96, :96]
    off = DegradeConfig(enabled=True, first=DegradeRound(prob=0.0), second=DegradeRound(prob=0.0),
                        final_sinc_prob=0.0, final_jpeg_prob=0.0)
    lr, condition = degrade(hr, off, 4, np.random.default_rng(3))
    assert condition == Condition()
    plain = [np.clip(np.round(resize(hr.astype(np.float32) / 255, 24, 24, m) * 255), 0, 255).astype(np.uint8)
             for m in ("area", "bilinear", "bicubic")]
    assert any(np.array_equal(lr, p) for p in plain)


def test_the_photo_round_works_on_the_clean_lr_at_its_own_scale():
    lr = load_image(BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "bird.png")
    only_jpeg = DegradeRound(blur_prob=0.0, resize_probs=(0.0, 0.0, 1.0), noise_prob=0.0, jpeg_quality=(60, 60))
    out, condition = photo_round(lr, only_jpeg, np.random.default_rng(0))
    assert np.array_equal(out, to_uint8(jpeg(lr.astype(np.float32) / 255, 60)))  # the LR saved as JPEG q60
    assert condition == Condition(jpeg_quality=60)
    photo = DegradeConfig().photo  # blur in LR px, the size kept
    outs = [photo_round(lr, photo, np.random.default_rng(seed))[0] for seed in range(8)]
    assert all(o.shape == lr.shape and o.dtype == np.uint8 for o in outs)
    assert len({o.tobytes() for o in outs}) > 4  # drawn anew for each seed...
    assert np.array_equal(outs[0], photo_round(lr, photo, np.random.default_rng(0))[0])  # ...the same for the same
    noisy = DegradeRound(blur_prob=0.0, resize_probs=(0.0, 0.0, 1.0), gaussian_noise_prob=1.0, noise_sigma=(5, 5),
                         jpeg_prob=0.0)
    assert photo_round(lr, noisy, np.random.default_rng(0))[1] == Condition(noise_sigma=5.0)
