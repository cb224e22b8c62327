"""Tiled inference equals whole-image inference where the pad covers the receptive field."""

import numpy as np
import pytest
import torch

from srgan.config import ModelConfig
from srgan.images import Decoded
from srgan.inference import upscale, upscale_image
from srgan.models import Generator
from srgan.tiling import plan_tiles, receptive_radius


@pytest.mark.parametrize("h, w, tile, pad", [(50, 37, 16, 5), (16, 16, 32, 8), (7, 100, 24, 0), (64, 64, 32, 40)])
def test_plan_covers_every_pixel_with_equal_windows(h, w, tile, pad):
    tiles = plan_tiles(h, w, tile, pad)
    covered = np.zeros((h, w), int)
    for t in tiles:
        assert (t.h, t.w) == (tiles[0].h, tiles[0].w)
        assert t.y >= 0 and t.y + t.h <= h and t.x >= 0 and t.x + t.w <= w
        assert t.y <= t.core_y and t.core_y + t.core_h <= t.y + t.h
        covered[t.core_y:t.core_y + t.core_h, t.core_x:t.core_x + t.core_w] += 1
    assert (covered >= 1).all()


def generator(**kw) -> Generator:
    torch.manual_seed(0)
    g = Generator(ModelConfig(**{"channels": 8, "blocks": 2, **kw})).eval()
    for m in g.modules():  # non-trivial BN statistics, as a trained model has
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return g


def test_receptive_radius_bounds_the_influence_of_a_pixel(rng):
    g, cfg = generator(), ModelConfig(channels=8, blocks=2)
    r, s = receptive_radius(cfg), cfg.scale
    lr = rng.random((1, 3, 48, 48), dtype=np.float32)
    poked = lr.copy()
    poked[0, :, 24, 24] += 0.5
    with torch.no_grad():
        diff = (g(torch.from_numpy(poked)) - g(torch.from_numpy(lr))).abs().sum(1)[0].numpy()
    ys, xs = np.nonzero(diff > 0)
    assert ys.size
    assert ys.min() >= (24 - r) * s and ys.max() < (24 + r + 1) * s
    assert xs.min() >= (24 - r) * s and xs.max() < (24 + r + 1) * s


@pytest.mark.parametrize("shape", [(70, 53), (20, 90), (31, 31)])
def test_tiled_equals_whole_image(rng, shape):
    g = generator()
    pad = receptive_radius(ModelConfig(channels=8, blocks=2))
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    whole = upscale(g, rgb)
    tiled = np.asarray(upscale_image(g, Decoded(rgb, None, False), tile=16, pad=pad))
    assert tiled.shape == whole.shape == (shape[0] * 4, shape[1] * 4, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


def test_small_pad_is_only_approximate(rng):
    g = generator()
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = upscale(g, rgb).astype(int)
    tiled = np.asarray(upscale_image(g, Decoded(rgb, None, False), tile=16, pad=0)).astype(int)
    assert np.abs(tiled - whole).max() > 1  # seams without context: the pad matters


def test_alpha_and_grayscale_survive(rng):
    g = generator()
    gray = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    image = Decoded(np.repeat(gray[..., None], 3, axis=2), rng.integers(0, 256, (20, 24), dtype=np.uint8), True)
    out = upscale_image(g, image, tile=8, pad=4)
    assert out.mode == "LA" and out.size == (96, 80)
    webp = upscale_image(g, image, tile=8, pad=4, fmt="webp")  # no grayscale in webp: equal RGB planes
    rgb = np.asarray(webp)
    assert webp.mode == "RGBA" and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert (rgb[..., 0] == np.asarray(out)[..., 0]).all() and (rgb[..., 3] == np.asarray(out)[..., 1]).all()


def test_a_conditioned_generator_tiled_equals_whole_image_and_its_radius_bounds_it(rng):
    from srgan.condition import Condition

    cfg = ModelConfig(channels=8, blocks=2, norm="none", conditions=("jpeg", "noise"))
    torch.manual_seed(0)
    g = Generator(cfg).eval()
    with torch.no_grad():
        for p in g.conditioning.parameters():
            p.add_(0.3 * torch.randn_like(p))
    r, condition = receptive_radius(cfg), Condition(40, 5.0)
    assert r > receptive_radius(ModelConfig(channels=8, blocks=2))  # an adapter conv per block
    rgb = rng.integers(0, 256, (70, 53, 3), dtype=np.uint8)
    whole = upscale(g, rgb, condition)
    tiled = np.asarray(upscale_image(g, Decoded(rgb, None, False), tile=16, pad=r, condition=condition))
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    lr = rng.random((1, 3, 48, 48), dtype=np.float32)
    poked, cond = lr.copy(), torch.tensor([[0.6, 0.2]])
    poked[0, :, 24, 24] += 0.5
    with torch.no_grad():
        diff = (g(torch.from_numpy(poked), cond) - g(torch.from_numpy(lr), cond)).abs().sum(1)[0].numpy()
    ys, _ = np.nonzero(diff > 0)
    assert ys.min() >= (24 - r) * 4 and ys.max() < (24 + r + 1) * 4
