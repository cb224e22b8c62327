"""`srgan evaluate` end to end on the shipped Set5 and on a folder without LR files."""

import json
import shutil

import numpy as np
import pytest

from pipelines.cli import main
from srgan import ASSETS, SHIPPED_MODELS
from srgan.benchmarks import load_pair, set_layout
from srgan.checkpoint import load_generator, save_checkpoint
from srgan.config import load_config
from srgan.inference import upscale
from srgan.metrics import rgb_to_y
from srgan.models import Generator


def test_bicubic_on_shipped_set5(tmp_path, capsys):
    assert main(["evaluate", "--model", "bicubic", "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["Set5"]["images"] == 5
    assert abs(result["Set5"]["psnr"] - 28.42) <= 0.02
    assert "Set5" in capsys.readouterr().out


def test_shipped_generator_is_the_default_and_reaches_srcnn_level(tmp_path):
    assert main(["evaluate", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["Set5"]["psnr"] >= 30.5  # SRCNN: 30.48 dB


def _detail(rgb: np.ndarray) -> float:
    """Mean absolute Laplacian of Y: how much fine detail an image has."""
    y = rgb_to_y(rgb).astype(np.float64)
    return float(np.abs(4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]).mean())


def test_shipped_srgan_trades_psnr_for_detail(tmp_path):
    assert main(["evaluate", "--model", "srgan", "--json", str(tmp_path / "r.json")]) == 0
    assert 27.0 < json.loads((tmp_path / "r.json").read_text())["Set5"]["psnr"] < 30.5
    srresnet, srgan = load_generator(SHIPPED_MODELS["default"]), load_generator(SHIPPED_MODELS["srgan"])
    files, lr_dir = set_layout(ASSETS / "benchmarks" / "Set5", 4)
    for path in files:
        lr, hr, _ = load_pair(path, lr_dir, 4)
        # the GAN's output has at least half the HR image's fine detail; the PSNR model's less than the GAN's
        assert _detail(upscale(srgan, lr)) > max(0.5 * _detail(hr), _detail(upscale(srresnet, lr))), path.name


def test_checkpoint_on_folder_without_lr(tmp_path, benchmarks):
    (tmp_path / "mine" / "HR").mkdir(parents=True)
    for name in ("bird.png", "head.png"):
        shutil.copy(benchmarks / "Set5" / "HR" / name, tmp_path / "mine" / "HR" / name)
    cfg = load_config("tiny")
    save_checkpoint(tmp_path / "ck", Generator(cfg.model), cfg)
    rc = main(["evaluate", "--model", str(tmp_path / "ck"), "--data", str(tmp_path), "--sets", "mine",
               "--json", str(tmp_path / "r.json"), "--per-image", "--save-images", str(tmp_path / "out")])
    assert rc == 0
    result = json.loads((tmp_path / "r.json").read_text())["mine"]
    assert result["images"] == 2 and set(result["per_image"]) == {"bird", "head"}
    assert (tmp_path / "out" / "mine" / "bird.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--model", "/no/such/ckpt"], "no such checkpoint"),
    (["--sets", "Set99"], "Set99: no such folder"),
])
def test_bad_arguments_are_one_line_errors(args, message, capsys):
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
