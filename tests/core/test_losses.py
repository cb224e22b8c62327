"""The GAN losses against hand-computed values, LDL's artifact map, the grid and block losses, and the
perceptual signals that need no download (focal frequency, random features, feature matching)."""

import math

import pytest
import torch
import torch.nn.functional as F

from srgan.losses import (
    RandomFeatures,
    block_loss,
    discriminator_gan_loss,
    feature_loss,
    flat_block_loss,
    focal_frequency_loss,
    generator_gan_loss,
    grid_loss,
    ldl_artifact_map,
    ldl_loss,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))  # -log(sigmoid(-x)) = -log(1 - sigmoid(x))


def test_vanilla_gan_is_the_papers():
    fake, real = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.0])
    # G: -log D(G(z)) = softplus(-logit)
    assert generator_gan_loss("vanilla", fake).item() == pytest.approx((softplus(-0.5) + softplus(1.0)) / 2)
    assert discriminator_gan_loss("vanilla", real, fake, real=True).item() == pytest.approx(
        (softplus(-2.0) + softplus(0.0)) / 2)
    assert discriminator_gan_loss("vanilla", fake, real, real=False).item() == pytest.approx(
        (softplus(0.5) + softplus(-1.0)) / 2)


def test_ragan_against_hand_computed_values():
    """ESRGAN: D_Ra(a, b) = sigmoid(a - mean(b)); mean(real) = 1.0, mean(fake) = -0.25."""
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([0.5, -1.0])
    # G: -(log(1 - D_Ra(real, fake)) + log D_Ra(fake, real)) / 2, each a batch mean
    g_real = (softplus(2.25) + softplus(0.25)) / 2  # -log(1 - sigmoid(real - (-0.25)))
    g_fake = (softplus(-(0.5 - 1.0)) + softplus(-(-1.0 - 1.0))) / 2  # -log sigmoid(fake - 1.0)
    assert generator_gan_loss("ragan", fake, real).item() == pytest.approx((g_real + g_fake) / 2)
    # D: -log D_Ra(real, fake) / 2 and -log(1 - D_Ra(fake, real)) / 2
    d_real = (softplus(-2.25) + softplus(-0.25)) / 2 / 2
    d_fake = (softplus(0.5 - 1.0) + softplus(-1.0 - 1.0)) / 2 / 2
    assert discriminator_gan_loss("ragan", real, fake, real=True).item() == pytest.approx(d_real)
    assert discriminator_gan_loss("ragan", fake, real, real=False).item() == pytest.approx(d_fake)


def test_ragan_works_on_per_pixel_logits():
    real, fake = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8, requires_grad=True)
    loss = generator_gan_loss("ragan", fake, real)
    loss.backward()
    assert loss.ndim == 0 and fake.grad.abs().sum() > 0


def test_ldl_map_penalises_only_where_the_ema_is_closer_and_the_residual_noisy():
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 16, 16)
    noise = 0.2 * torch.randn(1, 3, 16, 16)
    sr = hr + noise  # a noisy residual everywhere
    ema = hr + 0.5 * noise  # closer to HR than SR ...
    ema[..., :, :8] = hr[..., :, :8] + 2 * noise[..., :, :8]  # ... except on the left half
    m = ldl_artifact_map(sr, ema, hr)
    assert m.shape == (1, 1, 16, 16)
    assert torch.all(m[..., :, :8] == 0)  # SR closer than its EMA: a detail being learned, not penalised
    assert torch.all(m[..., 2:-2, 10:-2] > 0)  # EMA closer and the residual locally noisy: an artifact
    flat = ldl_artifact_map(hr + 0.2, hr + 0.1, hr)  # the EMA closer, but a uniform residual: blur, not artifact
    assert flat.abs().max() < 1e-6


def test_ldl_loss_carries_gradient_to_sr_only():
    hr = torch.rand(1, 3, 16, 16)
    sr = (hr + 0.2 * torch.randn(1, 3, 16, 16)).requires_grad_(True)
    loss = ldl_loss(sr, hr + 0.01 * torch.randn(1, 3, 16, 16), hr)
    loss.backward()
    assert loss > 0 and sr.grad.abs().sum() > 0


def test_grid_loss_is_the_checkerboards_energy_and_blind_to_shading():
    torch.manual_seed(0)
    hr, a = torch.rand(2, 3, 96, 96), 2 / 255  # a +-2 grey-level pattern
    checker = a * (1 - 2 * ((torch.arange(4)[:, None] + torch.arange(4)) % 2)).float()
    spot = torch.zeros(4, 4)
    spot[1, 2] = 4 * a  # one brighter phase of the 16
    for cell in (checker, spot - spot.mean()):
        assert grid_loss(hr + cell.repeat(24, 24), hr).item() == pytest.approx(cell.square().mean().item(), rel=1e-4)
    y, x = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    assert grid_loss(hr + 0.001 * x + 0.0005 * y + 0.1, hr).item() < 1e-12  # shading, ramps, offsets
    noise = grid_loss(hr + 0.01 * torch.randn_like(hr), hr).item()  # phases of 16 samples: ~var / 16
    assert noise < 0.2 * checker.square().mean().item()
    sr = (hr + checker.repeat(24, 24)).requires_grad_()
    grid_loss(sr, hr).backward()
    assert sr.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 19 px"):
        grid_loss(hr[..., :16, :16], hr[..., :16, :16])


def test_block_loss_is_the_energy_of_steps_across_block_edges_only():
    torch.manual_seed(0)
    hr, a = torch.rand(2, 3, 96, 96), 3 / 255
    cols, rows = torch.arange(96) // 32 % 2, (torch.arange(96) // 32 % 2)[:, None]
    steps = a * (cols + rows).float()  # a step of a across every 32 px line, both ways
    assert block_loss(hr + steps, hr).item() == pytest.approx(a * a, rel=1e-4)
    assert block_loss(hr + 0.1, hr).item() < 1e-12  # HR's own steps cancel; offsets do not count
    inside = a * ((torch.arange(96) + 16) // 32 % 2).float()  # steps at 16, 48, 80: not block edges
    assert block_loss(hr + inside, hr).item() < 1e-12  # ...nor steps across the other lines
    noise = block_loss(hr + 0.01 * torch.randn_like(hr), hr).item()  # steps alike everywhere: ~0
    assert noise < 0.2 * a * a
    sr = (hr + steps).requires_grad_()
    block_loss(sr, hr).backward()
    assert sr.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="over 32 px"):
        block_loss(hr[..., :32, :32], hr[..., :32, :32])


def cosine(n: int, cycles: int, amplitude: float) -> torch.Tensor:
    """(1, 1, n, n): a horizontal cosine of `cycles` periods across the image."""
    x = torch.arange(n, dtype=torch.float32)
    return (amplitude * torch.cos(2 * math.pi * cycles * x / n)).expand(1, 1, n, n).clone()


def test_focal_frequency_loss_is_mse_for_one_frequency_and_weighs_the_weaker_down():
    hr = torch.rand(1, 1, 32, 32)
    one = hr + cosine(32, 3, 0.1)
    assert focal_frequency_loss(hr, hr) == 0
    # one frequency: its two bins are both the worst (weight 1), and the orthonormal FFT keeps energy
    assert torch.allclose(focal_frequency_loss(one, hr), F.mse_loss(one, hr), rtol=1e-4)
    two = one + cosine(32, 7, 0.05)  # a second frequency at half the amplitude: weight 1/2
    expected = (0.1**2 / 2 + 0.5 * 0.05**2 / 2)  # mean square of each cosine, times its weight
    assert math.isclose(focal_frequency_loss(two, hr).item(), expected, rel_tol=1e-3)
    sr = two.clone().requires_grad_(True)
    focal_frequency_loss(sr, hr).backward()
    assert sr.grad.abs().sum() > 0


def test_random_features_are_seeded_frozen_and_leave_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    net = RandomFeatures(seed=1)
    assert torch.equal(torch.rand(3), expected)
    same, other = RandomFeatures(seed=1), RandomFeatures(seed=2)
    w = lambda m: torch.cat([p.flatten() for p in m.parameters()])  # noqa: E731
    assert torch.equal(w(net), w(same)) and not torch.equal(w(net), w(other))
    assert not any(p.requires_grad for p in net.parameters())
    feats = net.train()(torch.rand(2, 3, 32, 32))
    assert not net.training
    assert [tuple(f.shape) for f in feats] == [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8)]
    assert all(f.abs().mean() > 1e-3 for f in feats)  # He init: the deepest tap has not died out


def test_feature_loss_counts_every_layer_alike_and_carries_gradient():
    real = [torch.rand(2, 4, 8, 8), 100 * torch.rand(2, 8, 4, 4)]
    assert feature_loss(real, real) == 0
    fake = [r * 1.1 for r in real]  # 10 % off on both layers, whatever their scale
    assert math.isclose(feature_loss(fake, real).item(), 0.1, rel_tol=1e-4)
    leaf = real[0].clone().requires_grad_(True)
    feature_loss([leaf * 2, real[1]], real).backward()
    assert leaf.grad.abs().sum() > 0


def test_flat_block_loss_is_the_block_measure_beyond_hr():
    hr = torch.full((1, 3, 96, 96), 0.5)
    stepped = hr.clone()
    stepped[..., 32:] += 3 / 255  # a 3 grey-level step at each vertical block edge (32 and 64), none across rows
    stepped[..., 64:] += 3 / 255
    # weight 1 everywhere (flat): the vertical edges step 3 x 219/255 grey levels of Y (16-235), the horizontal 0
    assert math.isclose(flat_block_loss(stepped, hr).item(), 1.5 * 219 / 255 / 255, rel_tol=1e-4)
    assert flat_block_loss(hr, hr) == 0 and flat_block_loss(stepped, stepped) == 0  # HR's own blocks are no artifact
    pattern = hr + 0.02 * (torch.arange(96) % 4 == 0).float()  # a 4 px grid: the edges' neighbours step alike
    assert flat_block_loss(pattern, hr) == 0
    sr = stepped.clone()
    sr[..., 36:] += 1 / 255  # a step on a neighbouring line of the edge at 32
    sr.requires_grad_(True)
    flat_block_loss(sr, hr).backward()
    assert sr.grad[..., 31:33].abs().sum() > 0  # the edge's own step...
    assert sr.grad[..., 34:62].abs().sum() == 0  # ...not its neighbours': a grid there would game the measure
    with pytest.raises(ValueError, match="over 32 px"):
        flat_block_loss(hr[..., :32, :32], hr[..., :32, :32])


def test_flat_block_loss_counts_flat_places_as_the_measure_does():
    gen = torch.Generator().manual_seed(0)
    textured = 0.5 + 0.1 * torch.rand(1, 3, 96, 96, generator=gen)  # neighbours step ~10 grey levels
    steps = torch.zeros(1, 3, 96, 96)
    steps[..., 32:] += 3 / 255
    flat = flat_block_loss(torch.full_like(textured, 0.5) + steps, torch.full_like(textured, 0.5))
    assert flat_block_loss(textured + steps, textured) < flat / 5
