import pytest
import torch

from srgan.config import ModelConfig
from srgan.models import (
    Discriminator,
    Generator,
    UNetDiscriminator,
    UpsampleBlock,
    count_parameters,
    discriminator,
    load_weights,
)


def test_srresnet_paper_parameter_count():
    c, b = 64, 16
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731 - weights + bias
    expected = (conv(3, c, 9) + 1  # head conv + PReLU (one slope)
                + b * (2 * conv(c, c, 3) + 2 * 2 * c + 1)  # residual blocks: 2 convs, 2 BN, PReLU
                + conv(c, c, 3) + 2 * c  # trunk conv + BN
                + 2 * (conv(c, 4 * c, 3) + 1)  # two sub-pixel x2 blocks
                + conv(c, 3, 9))
    assert expected == 1_549_462
    assert count_parameters(Generator(ModelConfig())) == expected


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_generator_upscales_by_scale(scale, norm):
    g = Generator(ModelConfig(scale=scale, channels=8, blocks=1, norm=norm)).eval()
    out = g(torch.rand(2, 3, 12, 10))
    assert out.shape == (2, 3, 12 * scale, 10 * scale)
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())
    assert has_bn == (norm == "batch")


def test_generator_rejects_unsupported_scale():
    with pytest.raises(ValueError, match="scale must be 2, 4 or 8"):
        Generator(ModelConfig(scale=3))


def test_discriminator_paper_layout_and_logits():
    d = Discriminator(ModelConfig())
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [m.stride[0] for m in convs] == [1, 2] * 4
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules()) == 7
    dense = [m for m in d.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dense] == [(512 * 6 * 6, 1024), (1024, 1)]
    assert d(torch.rand(3, 3, 96, 96)).shape == (3,)


def test_discriminator_rejects_crop_not_multiple_of_16():
    with pytest.raises(ValueError, match="multiple of 16"):
        Discriminator(ModelConfig(hr_crop=100))


def test_icnr_upsampler_maps_a_constant_image_to_a_constant_image():
    """ICNR: a fresh sub-pixel block is conv + nearest-neighbour, so no checkerboard at the start."""
    torch.manual_seed(0)
    block = UpsampleBlock(8, icnr=True)
    out = block(torch.full((1, 8, 10, 10), 0.3))  # (1, 8, 20, 20)
    interior = out[..., 2:-2, 2:-2]  # the zero padding of the conv touches the border
    assert torch.allclose(interior, interior[..., :1, :1].expand_as(interior), atol=1e-6)
    x = torch.rand(1, 8, 10, 10)  # any input: each 2x2 output block repeats one value
    y = block(x)
    for dy, dx in ((0, 1), (1, 0), (1, 1)):
        assert torch.equal(y[..., dy::2, dx::2], y[..., 0::2, 0::2])
    plain = UpsampleBlock(8)(torch.full((1, 8, 10, 10), 0.3))[..., 2:-2, 2:-2]
    assert (plain - plain[..., :1, :1]).abs().max() > 1e-3  # without ICNR: a periodic pattern


def test_icnr_is_applied_to_the_generators_upsamplers_only_when_asked():
    torch.manual_seed(0)
    g = Generator(ModelConfig(channels=8, blocks=1, icnr=True))
    for block in g.upsample:
        w = block.conv.weight
        assert torch.equal(w[0::4], w[1::4]) and torch.equal(w[0::4], w[3::4])
    assert not torch.equal(Generator(ModelConfig(channels=8, blocks=1)).upsample[0].conv.weight[0::4],
                           Generator(ModelConfig(channels=8, blocks=1)).upsample[0].conv.weight[1::4])


def test_unet_discriminator_gives_a_logit_per_pixel_with_spectral_norm():
    cfg = ModelConfig(discriminator="unet", d_channels=8)
    d = discriminator(cfg)
    assert isinstance(d, UNetDiscriminator)
    assert d(torch.rand(2, 3, 32, 48)).shape == (2, 1, 32, 48)
    normed = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d) and hasattr(m, "weight_orig")]
    assert len(normed) == 8  # three down, three up, two extra; not the first and last convs
    assert count_parameters(discriminator(ModelConfig(discriminator="unet"))) == 4_376_897  # Real-ESRGAN's
    assert isinstance(discriminator(ModelConfig()), Discriminator)


def test_a_conditioned_generator_starts_as_the_blind_one_and_keeps_it_for_the_clean_condition():
    blind = Generator(ModelConfig(channels=8, blocks=2, norm="none")).eval()
    g = load_weights(Generator(ModelConfig(channels=8, blocks=2, norm="none", conditions=("jpeg", "noise"))),
                     blind.state_dict()).eval()
    lr, cond = torch.rand(3, 3, 12, 10), torch.tensor([[0.25, 0.0], [0.0, 0.4], [0.7, 0.2]])
    with torch.no_grad():
        assert torch.equal(g(lr, cond), blind(lr))  # zero-initialised: every condition gives the blind output
        for p in g.conditioning.parameters():  # trained conditioning...
            p.add_(torch.randn_like(p))
        assert not torch.allclose(g(lr, cond), blind(lr))  # ...moves the degraded inputs' output
        assert torch.equal(g(lr, torch.zeros(3, 2)), blind(lr))  # but never the clean condition's
        assert torch.equal(g(lr), blind(lr))  # None is the clean condition
    with pytest.raises(ValueError, match=r"take a \(3, 2\) tensor"):
        g(lr, torch.zeros(3, 1))


def test_only_conditioning_weights_may_be_missing_when_loading():
    blind = Generator(ModelConfig(channels=8, blocks=1, norm="none"))
    conditioned = Generator(ModelConfig(channels=8, blocks=1, norm="none", conditions=("noise",)))
    with pytest.raises(RuntimeError, match="conditioning"):
        load_weights(blind, conditioned.state_dict())  # the other way round: unexpected keys
    with pytest.raises(RuntimeError, match="head"):
        load_weights(conditioned, {k: v for k, v in blind.state_dict().items() if not k.startswith("head")})


@pytest.mark.parametrize("kind, taps", [("vgg", 8), ("unet", 9)])
def test_discriminator_features_come_with_the_same_logits(kind, taps):
    d = discriminator(ModelConfig(discriminator=kind, d_channels=8, d_dense=16, hr_crop=32)).eval()
    x = torch.rand(2, 3, 32, 32)
    logits, feats = d.forward_features(x)
    assert torch.equal(logits, d(x)) and len(feats) == taps  # the G step's logits are unchanged
    assert all(f.shape[0] == 2 and f.dim() == 4 for f in feats)
