"""The core training loop: steps that learn, the schedule, events at the right steps, exact resume."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srgan.checkpoint import load_generator
from srgan.config import LossConfig, load_config
from srgan.losses import VGGFeatures, VGGWeightsError, content_loss
from srgan.trainer import Events, Meter, Trainer, fit


def batch(cfg, n=4, seed=0):
    """uint8 crops as a runner hands them over: LR (n, h, w, 3), HR (n, h*s, w*s, 3)."""
    gen = torch.Generator().manual_seed(seed)
    hr = torch.rand(n, 3, cfg.model.hr_crop, cfg.model.hr_crop, generator=gen)
    lr = torch.nn.functional.avg_pool2d(hr, cfg.model.scale)
    to_u8 = lambda x: x.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # noqa: E731
    return to_u8(lr), to_u8(hr)


def weights(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def changed(before, module):
    return not torch.equal(before, weights(module))


@pytest.mark.parametrize("bf16", [False, True])
def test_srresnet_steps_lower_pixel_loss(bf16):
    cfg = load_config("tiny", overrides=[f"train.bf16={bf16}", "srresnet.learning_rate=1e-3"])
    trainer = Trainer(cfg, "srresnet")
    lr, hr = batch(cfg)
    losses = [trainer.train_step(lr, hr)["g_loss"] for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0] and trainer.step == 15


@pytest.mark.parametrize("kind", ["mse", "vgg22"])
def test_gan_steps_change_both_networks_and_lower_losses(kind):
    cfg = load_config("tiny", overrides=[f"loss.content={kind}", "loss.vgg_weights=random",
                                         "srgan.learning_rate=1e-3", "srgan.milestones=[]"])
    trainer = Trainer(cfg, "srgan")
    lr, hr = batch(cfg)
    g0, d0 = weights(trainer.g), weights(trainer.d)
    logs = [trainer.train_step(lr, hr) for _ in range(10)]
    assert changed(g0, trainer.g) and changed(d0, trainer.d)
    if kind == "mse":  # a random VGG's features are too flat to promise a drop in 10 steps
        assert logs[-1]["content"] < 0.7 * logs[0]["content"]
    assert logs[-1]["d_loss"] < logs[0]["d_loss"]
    assert {"content", "adversarial", "g_loss", "d_real_prob", "d_fake_prob"} <= set(logs[0])
    assert all(p.requires_grad for p in trainer.d.parameters())  # unfrozen after the G step


def test_generator_step_leaves_discriminator_grads_alone():
    cfg = load_config("tiny", overrides=["loss.content=mse"])
    trainer = Trainer(cfg, "srgan")
    trainer._generator_step(*(trainer._input(x) for x in batch(cfg)))
    assert all(p.grad is None for p in trainer.d.parameters())


def test_learning_rate_follows_the_schedule_step_by_step():
    cfg = load_config("tiny", overrides=["loss.content=mse", "srgan.learning_rate=1e-3", "srgan.milestones=[2]"])
    trainer = Trainer(cfg, "srgan")
    rates = [trainer.train_step(*batch(cfg))["learning_rate"] for _ in range(4)]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    assert trainer.d_opt.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    cfg = load_config("tiny", overrides=["loss.content=mse"])
    batches = [batch(cfg, seed=i) for i in range(4)]
    straight = Trainer(cfg, "srgan")
    for b in batches:
        straight.train_step(*b)
    first = Trainer(cfg, "srgan")
    for b in batches[:2]:
        first.train_step(*b)
    first.save(tmp_path / "ck", note="kept")
    torch.manual_seed(123)  # whatever happened in between
    second = Trainer(cfg, "srgan")
    state = second.restore(tmp_path / "ck")
    assert second.step == 2 and state["note"] == "kept"
    for b in batches[2:]:
        second.train_step(*b)
    assert torch.equal(weights(second.g), weights(straight.g))
    assert torch.equal(weights(second.d), weights(straight.d))


class Recorder(Events):
    def __init__(self):
        self.calls = []

    def logged(self, step, metrics):
        self.calls.append(("log", step, sorted(metrics)))

    def validated(self, step, metrics, grid):
        self.calls.append(("val", step, grid.shape))

    def checkpoint(self, step, last):
        self.calls.append(("ckpt", step, last))


def test_fit_calls_the_events_at_their_steps(benchmarks):
    cfg = load_config("tiny", overrides=["srresnet.steps=5", "train.log_every=2", "train.val_every=4",
                                         "train.checkpoint_every=3"])
    trainer, events = Trainer(cfg, "srresnet"), Recorder()
    fit(trainer, (batch(cfg, seed=i) for i in range(100)), events, val_dir=benchmarks / "Set5")
    assert [c[:2] for c in events.calls] == [("log", 2), ("ckpt", 3), ("log", 4), ("val", 4),
                                             ("log", 5), ("val", 5), ("ckpt", 5)]
    assert "train/data_wait_s" in events.calls[0][2] and "train/g_loss" in events.calls[0][2]
    assert events.calls[-1] == ("ckpt", 5, True) and events.calls[3][2][1] == 3 * events.calls[3][2][0]
    fit(trainer, iter(()), events)  # the phase is done: nothing to draw
    again = Recorder()
    fit(trainer, (batch(cfg) for _ in range(3)), again, chief=False)  # not the chief: no log, no val
    assert again.calls == []


def test_fit_refuses_to_end_early_when_the_data_runs_out():
    cfg = load_config("tiny", overrides=["srresnet.steps=5"])
    with pytest.raises(RuntimeError, match="ran out at step 2 of 5"):
        fit(Trainer(cfg, "srresnet"), [batch(cfg)] * 2, Events())


def test_meter_reads_device_losses_back_only_when_flushed():
    meter = Meter()
    for loss in (0.5, 1.5):
        meter.add({"g_loss": torch.tensor(loss), "learning_rate": 1e-4})
    assert isinstance(meter.sums["g_loss"], torch.Tensor)  # summed where it lives, not read per step
    means, rate = meter.flush()
    assert means == {"g_loss": 1.0, "learning_rate": 1e-4} and all(type(v) is float for v in means.values())
    assert rate > 0 and meter.flush()[0] == {}


def test_validation_reports_psnr_and_a_grid(benchmarks):
    cfg = load_config("tiny")
    metrics, grid = Trainer(cfg, "srresnet").validate(benchmarks / "Set5")
    assert 0 < metrics["val/psnr"] < 40 and -1 <= metrics["val/ssim"] <= 1
    assert metrics["val/niqe"] > metrics["val/hr_niqe"] > 0  # an untrained model's output is far from a photo
    assert {"val/artifacts", "val/hr_artifacts"} <= set(metrics)
    assert grid.dtype == np.uint8 and grid.shape == (192, 576, 3)


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


def test_ema_is_validated_checkpointed_and_resumed(tmp_path):
    cfg = load_config("tiny", overrides=["train.ema_decay=0.5", "srresnet.learning_rate=1e-2"])
    trainer = Trainer(cfg, "srresnet")
    g0 = weights(trainer.g)
    b = batch(cfg)
    trainer.train_step(*b)
    g1 = weights(trainer.g)
    assert torch.allclose(weights(trainer.g_ema), 0.5 * g0 + 0.5 * g1, atol=1e-6)  # decay 0.5: half way
    trainer.save(tmp_path / "ck")
    assert torch.equal(weights(load_generator(tmp_path / "ck")), weights(trainer.g_ema))  # the EMA is the model
    again = Trainer(cfg, "srresnet")
    again.restore(tmp_path / "ck")
    assert torch.equal(weights(again.g), g1) and torch.equal(weights(again.g_ema), weights(trainer.g_ema))
    for t in (trainer, again):
        t.train_step(*b)
    assert torch.equal(weights(again.g_ema), weights(trainer.g_ema))


@pytest.mark.parametrize("recipe", [
    ["model.discriminator=unet", "loss.gan=ragan"],
    ["model.discriminator=vgg", "loss.gan=ragan", "train.ema_decay=0.9", "loss.ldl_weight=1"],
    ["model.discriminator=unet", "loss.gan=vanilla", "train.ema_decay=0.9", "loss.ldl_weight=1", "loss.content=l1"],
    ["model.discriminator=vgg", "loss.gan=vanilla", "loss.grid_weight=30"],
    ["model.discriminator=vgg", "model.hr_crop=48", "loss.block_weight=10", "loss.flat_block_weight=10"],
])
def test_gan_recipes_train_both_networks(recipe):
    cfg = load_config("tiny", overrides=["loss.content=mse", "srgan.learning_rate=1e-3", "srgan.milestones=[]",
                                         *recipe])
    trainer = Trainer(cfg, "srgan")
    lr, hr = batch(cfg)
    g0, d0 = weights(trainer.g), weights(trainer.d)
    logs = [trainer.train_step(lr, hr) for _ in range(5)]
    assert changed(g0, trainer.g) and changed(d0, trainer.d)
    assert ("ldl" in logs[0]) == ("loss.ldl_weight=1" in recipe)
    assert ("grid" in logs[0]) == ("loss.grid_weight=30" in recipe)
    assert ("flat_blocks" in logs[0]) == ("blocks" in logs[0]) == ("loss.flat_block_weight=10" in recipe)
    assert all(torch.isfinite(v).all() for v in logs[-1].values() if isinstance(v, torch.Tensor))


def test_ldl_needs_the_ema():
    with pytest.raises(ValueError, match="ema_decay"):
        Trainer(load_config("tiny", overrides=["loss.ldl_weight=1"]), "srresnet")


def test_condition_only_training_moves_the_conditioning_alone():
    cfg = load_config("tiny", overrides=["model.norm=none", "model.conditions=[jpeg,noise]",
                                         "train.condition_only=true", "srresnet.learning_rate=1e-2"])
    trainer = Trainer(cfg, "srresnet")
    g = trainer.g
    base = {k: v.clone() for k, v in g.state_dict().items() if "adapter" not in k and "conditioning" not in k}
    lr, hr = batch(cfg)
    cond = np.tile(np.float32([[0.3, 0.2]]), (4, 1))
    losses = [float(trainer.train_step(lr, hr, cond)["g_loss"]) for _ in range(8)]
    assert losses[-1] < losses[0]  # the conditioning learns...
    assert all(torch.equal(g.state_dict()[k], v) for k, v in base.items())  # ...and nothing else moves
    with pytest.raises(ValueError, match="needs a conditioned generator"):
        Trainer(load_config("tiny", overrides=["train.condition_only=true"]), "srresnet")


@pytest.mark.parametrize("term, key", [("loss.ffl_weight=1", "ffl"), ("loss.gpl_weight=1", "gpl"),
                                       ("loss.feature_match_weight=1", "feature_match")])
@pytest.mark.parametrize("kind", ["vgg", "unet"])
def test_perceptual_terms_reach_the_generator_only(term, key, kind):
    base = ["loss.content=mse", f"model.discriminator={kind}", "train.seed=3"]
    on, off = (Trainer(load_config("tiny", overrides=[*base, *extra]), "srgan") for extra in ([term], []))
    lr, hr = (on._input(x) for x in batch(on.cfg))
    logs = on._generator_step(lr, hr)[0]
    off._generator_step(lr, hr)
    assert key in logs and torch.isfinite(logs[key]) and logs[key] > 0
    assert not torch.equal(weights(on.g), weights(off.g))  # the term moved G...
    assert all(p.grad is None for p in on.d.parameters())  # ...and gave D no gradient
    assert all(p.requires_grad for p in on.d.parameters())


def test_the_gan_step_with_the_new_terms_off_is_the_plain_one():
    """Off by default, the G step is content + 1e-3 x -log D(G(lr)), computed here by hand."""
    cfg = load_config("tiny", overrides=["loss.content=mse"])
    trainer = Trainer(cfg, "srgan")
    g, d = copy.deepcopy(trainer.g), copy.deepcopy(trainer.d)
    opt = torch.optim.Adam(g.parameters(), lr=cfg.srgan.learning_rate, betas=(cfg.train.beta1, cfg.train.beta2))
    lr, hr = (trainer._input(x) for x in batch(cfg))
    logs = trainer._generator_step(lr, hr)[0]
    sr = g(lr)
    d.requires_grad_(False)
    logits = d(sr)
    loss = F.mse_loss(sr, hr) + 1e-3 * F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    loss.backward()
    opt.step()
    assert set(logs) == {"content", "adversarial", "g_loss"}
    assert torch.equal(logs["g_loss"], loss.detach()) and torch.equal(weights(g), weights(trainer.g))
