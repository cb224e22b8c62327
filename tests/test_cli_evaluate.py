"""`srgan evaluate` end to end on the shipped Set5 and on a folder without LR files."""

import json
import shutil

import pytest

from pipelines.cli import main
from srgan.checkpoint import save_checkpoint
from srgan.config import load_config
from srgan.models import Generator


def test_bicubic_on_shipped_set5(tmp_path, capsys):
    assert main(["evaluate", "--model", "bicubic", "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["Set5"]["images"] == 5
    assert abs(result["Set5"]["psnr"] - 28.42) <= 0.02
    assert "Set5" in capsys.readouterr().out


def test_shipped_generator_is_the_default_and_beats_bicubic(tmp_path):
    assert main(["evaluate", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["Set5"]["psnr"] > 28.42 + 0.9


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
