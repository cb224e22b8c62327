import json

import pytest
import torch

from srgan import SHIPPED_MODELS
from srgan.checkpoint import (
    CheckpointError,
    interpolate,
    load_discriminator,
    load_generator,
    load_training_state,
    save_checkpoint,
)
from srgan.config import load_config
from srgan.models import Discriminator, Generator, is_conditioning


def test_round_trip_rebuilds_from_folder_alone(tmp_path):
    cfg = load_config("tiny", overrides=["model.blocks=2", "model.norm=none"])
    g, d = Generator(cfg.model), Discriminator(cfg.model)
    opt = torch.optim.Adam(g.parameters())
    g(torch.rand(1, 3, 8, 8)).mean().backward()
    opt.step()
    save_checkpoint(tmp_path / "ck", g, cfg, d=d, training_state={"step": 7, "g_opt": opt.state_dict()},
                    phase="srresnet")
    g2 = load_generator(tmp_path / "ck")
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(g.eval()(x), g2(x))
    assert len(g2.blocks) == 2 and not g2.training
    d2 = load_discriminator(tmp_path / "ck")
    assert all(torch.equal(a, b) for a, b in zip(d.state_dict().values(), d2.state_dict().values()))
    state = load_training_state(tmp_path / "ck")
    assert state["step"] == 7 and state["g_opt"]["state"][0]["step"] == 1
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert meta["phase"] == "srresnet" and meta["config"]["model"]["blocks"] == 2


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_generator(tmp_path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    cfg = load_config("tiny")
    save_checkpoint(tmp_path, Generator(cfg.model), cfg)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["model"]["channels"] = 16
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(tmp_path)


def test_missing_weights_file(tmp_path):
    cfg = load_config("tiny")
    save_checkpoint(tmp_path, Generator(cfg.model), cfg)
    (tmp_path / "generator.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing generator\.safetensors"):
        load_generator(tmp_path)


def test_interpolation_ends_are_the_two_shipped_generators_exactly():
    srresnet, srgan = load_generator(SHIPPED_MODELS["default"]), load_generator(SHIPPED_MODELS["srgan"])
    for alpha, expected in ((0.0, srresnet), (1.0, srgan)):
        got = interpolate(srresnet, srgan, alpha).state_dict()
        assert all(torch.equal(got[k], v) for k, v in expected.state_dict().items())
    half = interpolate(srresnet, srgan, 0.5).state_dict()["tail.weight"]
    assert torch.allclose(half, (srresnet.tail.weight + srgan.tail.weight) / 2)


def test_interpolation_refuses_mismatches():
    a = Generator(load_config("tiny").model)
    with pytest.raises(CheckpointError, match="different architectures"):
        interpolate(a, Generator(load_config("tiny", overrides=["model.blocks=2"]).model), 0.5)
    with pytest.raises(CheckpointError, match=r"alpha must be in \[0, 1\]"):
        interpolate(a, a, 1.5)


@pytest.mark.parametrize("conditioned, blind", [("auto", "default"), ("auto-gan", "srgan")])
def test_a_shipped_conditioned_model_is_its_blind_model_plus_conditioning(conditioned, blind):
    """Trained condition_only: every weight of the blind model is in it unchanged (the conditioning
    and the blocks' adapters are its own), so a clean input gets the blind model's output exactly."""
    g, base = load_generator(SHIPPED_MODELS[conditioned]), load_generator(SHIPPED_MODELS[blind])
    weights = g.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in base.state_dict().items())
    own = weights.keys() - base.state_dict().keys()
    assert own == {k for k in weights if is_conditioning(k)}  # what it adds is its conditioning...
    assert {k.split(".")[0] for k in own} == {"conditioning", "blocks"}  # ...the embedding and the blocks' adapters
    lr, degraded = torch.rand(1, 3, 16, 16), torch.tensor([[0.6, 0.2]])  # JPEG q40, noise 6
    with torch.no_grad():
        assert torch.equal(g(lr, torch.zeros(1, 2)), base(lr))
        assert (g(lr, degraded) - base(lr)).abs().mean() > 1e-3  # the conditioning was trained
