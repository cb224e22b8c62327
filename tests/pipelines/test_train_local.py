"""`srgan train --local`: the core loop in one process, no Ray: both phases, an image folder as
data, and a resume that ends with the weights of an uninterrupted run."""

import json
import shutil

import pytest
import torch

from pipelines.cli import main
from srgan.checkpoint import load_generator, read_meta


@pytest.fixture(scope="module")
def images(tmp_path_factory, benchmarks):
    folder = tmp_path_factory.mktemp("images")
    for name in ("baby", "butterfly"):
        shutil.copy(benchmarks / "Set5" / "HR" / f"{name}.png", folder / f"{name}.png")
    (folder / "broken.png").write_bytes(b"not an image")  # logged and skipped
    return folder


def train(images, storage, name, *extra, phase="srresnet"):
    return main(["train", "--local", "--phase", phase, "--preset", "tiny", "--data", str(images),
                 "--storage", str(storage), "--name", name, *extra])


def weights(folder):
    return torch.cat([p.flatten() for p in load_generator(folder).state_dict().values()])


def test_interrupted_and_resumed_equals_uninterrupted(images, tmp_path, capsys):
    assert train(images, tmp_path, "straight", "--set", "srresnet.steps=6") == 0
    assert train(images, tmp_path, "resumed", "--set", "srresnet.steps=4") == 0
    assert train(images, tmp_path, "resumed", "--set", "srresnet.steps=6") == 0
    assert "checkpoint_00000006" in capsys.readouterr().out
    straight, resumed = tmp_path / "straight" / "checkpoint_00000006", tmp_path / "resumed" / "checkpoint_00000006"
    assert torch.equal(weights(straight), weights(resumed))
    # tiny checkpoints every 2 steps and keeps the newest 3
    assert sorted(p.name for p in (tmp_path / "resumed").glob("checkpoint_*")) == [
        "checkpoint_00000002", "checkpoint_00000004", "checkpoint_00000006"]
    lines = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "train/g_loss" in x] == [1, 2, 3, 4, 5, 6]
    assert not any("val/psnr" in x for x in lines)  # no --val given


def test_gan_phase_from_the_srresnet_with_validation(images, tmp_path, benchmarks):
    assert train(images, tmp_path, "pre", "--set", "srresnet.steps=2") == 0
    assert train(images, tmp_path, "gan", "--init", str(tmp_path / "pre" / "checkpoint_00000002"),
                 "--set", "loss.content=mse", "--val", str(benchmarks / "Set5"), phase="srgan") == 0
    meta = read_meta(tmp_path / "gan" / "checkpoint_00000004")
    assert meta["phase"] == "srgan" and meta["step"] == 4
    assert (tmp_path / "gan" / "checkpoint_00000004" / "discriminator.safetensors").is_file()
    lines = [json.loads(x) for x in (tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert {"val/psnr", "val/ssim"} <= set(lines[-1]) and (tmp_path / "gan" / "val" / "grid_00000004.png").is_file()
    assert "train/d_loss" in lines[0]


def test_local_is_one_process(images, tmp_path, capsys):
    assert train(images, tmp_path, "x", "--workers", "2") == 2
    assert "--local trains in this one process" in capsys.readouterr().err
