"""The training steps learn on a fixed batch and move both networks."""

import pytest
import torch

from srgan.config import LossConfig, load_config
from srgan.losses import VGGFeatures, VGGWeightsError, content_loss, pixel_loss
from srgan.models import Discriminator, Generator
from srgan.steps import discriminator_step, generator_step


def batch(cfg, n=4):
    torch.manual_seed(0)
    hr = torch.rand(n, 3, cfg.model.hr_crop, cfg.model.hr_crop)
    lr = torch.nn.functional.avg_pool2d(hr, cfg.model.scale)
    return lr, hr


def snapshot(m):
    return [p.detach().clone() for p in m.parameters()]


def changed(before, m):
    return any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))


@pytest.mark.parametrize("bf16", [False, True])
def test_srresnet_steps_lower_pixel_loss(bf16):
    cfg = load_config("tiny")
    torch.manual_seed(0)
    g = Generator(cfg.model)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    lr, hr = batch(cfg)
    losses = [generator_step(g, opt, lr, hr, pixel_loss("mse"), bf16=bf16)[0]["g_loss"] for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kind", ["mse", "vgg22"])
def test_gan_steps_change_both_networks_and_lower_losses(kind):
    cfg = load_config("tiny")
    torch.manual_seed(0)
    g, d = Generator(cfg.model), Discriminator(cfg.model)
    g_opt, d_opt = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    content = content_loss(LossConfig(content=kind, vgg_weights="random"))
    lr, hr = batch(cfg)
    g0, d0 = snapshot(g), snapshot(d)
    g_logs, d_logs = [], []
    for _ in range(10):
        logs, sr = generator_step(g, g_opt, lr, hr, content, d=d, adversarial_weight=1e-3)
        d_before = snapshot(d)
        g_logs.append(logs)
        d_logs.append(discriminator_step(d, d_opt, hr, sr))
        assert changed(d_before, d)  # D moved in its own step only
    assert changed(g0, g) and changed(d0, d)
    if kind == "mse":  # a random VGG's features are too flat to promise a drop in 10 steps
        assert g_logs[-1]["content"] < 0.7 * g_logs[0]["content"]
    assert d_logs[-1]["d_loss"] < d_logs[0]["d_loss"]
    assert {"content", "adversarial", "g_loss"} <= set(g_logs[0])
    assert all(p.requires_grad for p in d.parameters())  # unfrozen after the G step


def test_generator_step_leaves_discriminator_grads_alone():
    cfg = load_config("tiny")
    g, d = Generator(cfg.model), Discriminator(cfg.model)
    lr, hr = batch(cfg)
    generator_step(g, torch.optim.SGD(g.parameters(), 0.1), lr, hr, pixel_loss("l1"), d=d, adversarial_weight=1.0)
    assert all(p.grad is None for p in d.parameters())


def test_vgg_is_frozen_and_rescaled():
    vgg = VGGFeatures("vgg54", "random")
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    assert vgg(torch.rand(1, 3, 32, 32)).shape == (1, 512, 2, 2)
    assert VGGFeatures("vgg22", "random")(torch.rand(1, 3, 32, 32)).shape == (1, 128, 16, 16)


def test_missing_vgg_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(VGGWeightsError, match="content=mse"):
        content_loss(LossConfig(content="vgg54"))
    with pytest.raises(VGGWeightsError, match="no file"):
        content_loss(LossConfig(content="vgg22", vgg_weights=str(tmp_path / "missing.pth")))


def test_vgg_weights_from_a_local_file(tmp_path):
    torch.manual_seed(3)
    ref = VGGFeatures("vgg54", "random").features  # the layout of torchvision's vgg19().features
    torch.save({f"features.{k}": v for k, v in ref.state_dict().items()}, tmp_path / "vgg19.pth")
    vgg = VGGFeatures("vgg22", str(tmp_path / "vgg19.pth"))
    assert torch.equal(vgg.features[0].weight, ref[0].weight)
    (tmp_path / "bad.pth").write_bytes(b"not a state dict")
    with pytest.raises(VGGWeightsError, match=r"bad\.pth"):
        VGGFeatures("vgg22", str(tmp_path / "bad.pth"))
