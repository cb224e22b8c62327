"""`srgan train` refuses bad inputs on the driver, before any worker starts (no Ray needed)."""

import json

import pytest
import torch

from pipelines import shards
from pipelines.cli import main
from srgan.checkpoint import save_checkpoint
from srgan.config import load_config
from srgan.models import Generator


@pytest.fixture
def fake_shards(tmp_path):
    """A manifest alone: the checks read nothing else."""
    def make(scale=4, tile=64, train=100):
        folder = tmp_path / f"shards_{scale}_{tile}_{train}"
        folder.mkdir()
        manifest = {"format": shards.FORMAT, "params": {"scale": scale, "tile": tile},
                    "tiles": {"train": train, "val": 0}, "shards": []}
        (folder / shards.MANIFEST).write_text(json.dumps(manifest))
        return str(folder)
    return make


@pytest.fixture
def tiny_checkpoint(tmp_path):
    cfg = load_config("tiny")
    return str(save_checkpoint(tmp_path / "ck", Generator(cfg.model), cfg))


def train(*args):
    return main(["train", "--preset", "tiny", *args])


@pytest.mark.parametrize("args, message", [
    (["--phase", "srresnet", "--data", "/nonexistent/shards"], "manifest.json: missing"),
    (["--phase", "srresnet", "--set", "model.scale=2"], "holds x4 tiles but model.scale is 2"),
    (["--phase", "srresnet", "--set", "model.hr_crop=96"], "64 px tiles, smaller than model.hr_crop 96"),
    (["--phase", "srresnet", "--set", "train.sync_bn=true"], "SyncBatchNorm refuses CPU tensors"),
    (["--phase", "srresnet", "--workers", "3"], "does not split over 3 workers"),
    (["--phase", "srgan", "--set", "loss.content=mse"], "pass --init"),
    (["--phase", "srresnet", "--val", "/nonexistent/val"], "no such folder"),
])
def test_bad_job_is_a_one_line_error(fake_shards, capsys, args, message):
    if "--data" not in args:
        args = [*args, "--data", fake_shards()]
    assert train(*args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_empty_shards(fake_shards, capsys):
    assert train("--phase", "srresnet", "--data", fake_shards(train=0)) == 2
    assert "0 training tiles, fewer than one batch" in capsys.readouterr().err


def test_missing_vgg_weights(fake_shards, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert train("--phase", "srgan", "--data", fake_shards(), "--init", tiny_checkpoint) == 2
    assert "ImageNet VGG19 weights are not in torchvision's cache" in capsys.readouterr().err


def test_init_of_another_architecture(fake_shards, tiny_checkpoint, capsys):
    assert train("--phase", "srgan", "--data", fake_shards(), "--init", tiny_checkpoint,
                 "--set", "loss.content=mse", "--set", "model.blocks=2", "--set", "model.norm=none") == 2
    err = capsys.readouterr().err
    assert "another architecture" in err and "blocks 1 vs 2" in err and "norm batch vs none" in err
