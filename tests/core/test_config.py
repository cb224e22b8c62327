import json
from dataclasses import dataclass

import pytest

from srgan import SHIPPED_MODELS
from srgan.config import (
    Config,
    ConfigError,
    build,
    cpu_has_bf16,
    for_device,
    from_dict,
    learning_rate_at,
    load_config,
    parse_override,
    to_dict,
)


def test_paper_preset_is_the_published_recipe():
    cfg = load_config("paper")
    assert cfg == Config()
    assert (cfg.model.blocks, cfg.model.channels, cfg.model.scale) == (16, 64, 4)
    assert cfg.srresnet.steps == 1_000_000 and cfg.srresnet.learning_rate == 1e-4
    assert cfg.srgan.steps == 200_000 and cfg.srgan.milestones == (100_000,)
    assert cfg.loss.content == "vgg54" and cfg.loss.adversarial_weight == 1e-3


def test_photoreal_preset_is_the_shipped_srgans_recipe():
    shipped = json.loads((SHIPPED_MODELS["srgan"] / "config.json").read_text())["config"]
    cfg = to_dict(load_config("photoreal"))
    assert cfg["srgan"] == shipped["srgan"]
    # the model as its checkpoint rebuilds it: fields added since it shipped take their defaults
    assert to_dict(from_dict({"model": shipped["model"]}).model) == cfg["model"]
    assert {k: cfg["loss"][k] for k in ("content", "adversarial_weight", "gan", "ldl_weight", "grid_weight")} == {
        k: shipped["loss"][k] for k in ("content", "adversarial_weight", "gan", "ldl_weight", "grid_weight")}
    assert cfg["train"]["ema_decay"] == shipped["train"]["ema_decay"] > 0


def test_conditioned_presets_are_the_shipped_auto_pairs_recipes():
    shipped, shipped_gan = (json.loads((SHIPPED_MODELS[m] / "config.json").read_text())["config"]
                            for m in ("auto", "auto-gan"))
    psnr, gan = to_dict(load_config("conditioned")), to_dict(load_config("conditioned-gan"))
    assert psnr["degrade"] == gan["degrade"] == shipped["degrade"] == shipped_gan["degrade"]
    assert psnr["model"] == gan["model"] == to_dict(from_dict({"model": shipped["model"]}).model)
    assert psnr["train"]["condition_only"] and gan["train"]["condition_only"]
    # the GAN's terms are its own: the PSNR phase of `conditioned` (the shipped `auto`) has none of them
    assert gan["loss"]["flat_block_weight"] > 0 and gan["loss"]["grid_weight"] > 0
    assert psnr["loss"] == shipped["loss"] | {"flat_block_weight": 0.0, "ffl_weight": 0.0, "gpl_weight": 0.0,
                                              "feature_match_weight": 0.0}
    assert gan["loss"] == shipped_gan["loss"] and gan["srgan"] == shipped_gan["srgan"]


def test_tiny_preset_is_small():
    cfg = load_config("tiny")
    assert cfg.model.blocks == 1 and cfg.model.channels == 8
    assert cfg.model.scale == 4  # untouched keys keep the defaults


def test_overrides_are_typed():
    cfg = load_config("tiny", overrides=["model.blocks=3", "srgan.learning_rate=1e-5", "train.bf16=true",
                                         "srresnet.milestones=[10, 20]", "model.norm=none"])
    assert cfg.model.blocks == 3 and cfg.srgan.learning_rate == 1e-5 and cfg.train.bf16 is True
    assert cfg.srresnet.milestones == (10, 20) and cfg.model.norm == "none"


def test_bf16_left_to_the_device_unless_set():
    paper = load_config("paper")
    assert paper.train.bf16 is None
    assert for_device(paper, gpu=False).train.bf16 is cpu_has_bf16() and for_device(paper, gpu=True).train.bf16 is False
    for value in (True, False):
        cfg = load_config("paper", overrides=[f"train.bf16={value}"])
        assert for_device(cfg, gpu=True).train.bf16 is value and for_device(cfg, gpu=False).train.bf16 is value
    assert load_config("tiny", overrides=["train.bf16=null"]).train.bf16 is None


@pytest.mark.parametrize("override, message", [
    ("model.blockz=3", "unknown config key.*model.blockz"),
    ("nope.x=1", "unknown config key.*nope"),
    ("model.blocks=three", "model.blocks: expected int"),
    ("model.blocks=2.5", "model.blocks: expected int"),
    ("train.bf16=1", "train.bf16: expected bool"),
    ("model.norm=group", "model.norm: 'group' is not one of"),
    ("model=3", "model: expected a mapping"),
    ("noequals", "must look like"),
])
def test_bad_overrides_are_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("paper", overrides=[override])


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  blocks: 4\n  channels: 16\nloss:\n  content: mse\n")
    cfg = load_config("tiny", path, ["model.blocks=2"])
    assert (cfg.model.blocks, cfg.model.channels, cfg.loss.content) == (2, 16, "mse")
    path.write_text("model:\n  colour: red\n")
    with pytest.raises(ConfigError, match=r"model\.colour"):
        load_config("tiny", path)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("huge")


def test_dict_round_trip():
    cfg = load_config("tiny", overrides=["srgan.milestones=[3]"])
    assert from_dict(to_dict(cfg)) == cfg
    assert parse_override("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}


def test_learning_rate_follows_the_step_schedule():
    pc = load_config("paper", overrides=["srgan.learning_rate=1e-4", "srgan.milestones=[10, 20]",
                                         "srgan.gamma=0.5"]).srgan
    assert [learning_rate_at(pc, s) for s in (0, 9, 10, 19, 20, 999)] == [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5]


@dataclass(frozen=True)
class Small:
    tile: int = 128
    bf16: bool = False
    rate: float = 1.0
    name: str | None = None


def test_build_parses_strings_from_a_command_line():
    """`serve run pipelines.serve:app tile=64` passes strings; build types them or names the key."""
    assert build(Small, {"tile": "64", "bf16": "true", "rate": "1e-4", "name": "x"}) == Small(64, True, 1e-4, "x")
    for bad, message in (({"tile": "²"}, "tile: expected int"), ({"bf16": "maybe"}, "bf16: expected bool"),
                         ({"colour": 1}, "unknown config key.*colour")):
        with pytest.raises(ConfigError, match=message):
            build(Small, bad)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        Config().model.blocks = 3
