"""`srgan export` (the exported folder reloads and reproduces its recorded PSNR) and `--engine` on
`srgan upscale` and `srgan evaluate`, including the eager fallback where a runtime is missing."""

import json
import logging
import shutil
import sys

import numpy as np
import openvino
import pytest
import torch

from pipelines.cli import main
from pipelines.commands import ENGINE_HELP
from pipelines.settings import ENGINE_NAMES, ServeSettings
from srgan import ASSETS, UserError
from srgan.checkpoint import load_generator, save_checkpoint
from srgan.config import load_config
from srgan.eager import EagerEngine, fastest_eager
from srgan.engines import ENGINE_CHOICES, ENGINES, read_card
from srgan.images import load_image
from srgan.models import Generator

BIRD = ASSETS / "benchmarks" / "Set5" / "LR_bicubic" / "X4" / "bird.png"


@pytest.fixture
def checkpoint(tmp_path):
    cfg = load_config("tiny")
    torch.manual_seed(0)
    return str(save_checkpoint(tmp_path / "ck", Generator(cfg.model), cfg))


def test_export_round_trip(tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", "--model", "default", "--format", "openvino", "--out", str(out)]) == 0
    assert "Set5 PSNR" in capsys.readouterr().out
    card = read_card(out)
    assert card["engine"] == "openvino" and card["runtime_version"] == openvino.__version__
    assert card["source"]["model"] == "default" and card["source"]["model_config"]["blocks"] == 16
    assert {p.name for p in out.iterdir()} == {"engine.json", "model.xml", "model.bin", "generator.safetensors",
                                              "config.json"}
    # the folder is a checkpoint that brings its graph: evaluate runs it and finds the card's PSNR again
    assert main(["evaluate", "--model", str(out), "--engine", "openvino", "--json", str(tmp_path / "r.json")]) == 0
    assert "engine openvino" in capsys.readouterr().out
    assert abs(json.loads((tmp_path / "r.json").read_text())["Set5"]["psnr"] - card["set5_psnr"]["engine"]) < 1e-3
    assert main(["export", "--model", "default", "--format", "onnx", "--out", str(out)]) == 2  # not empty
    assert "is not empty" in capsys.readouterr().err


def test_upscale_with_an_engine(tmp_path, checkpoint):
    assert main(["upscale", str(BIRD), "-o", str(tmp_path / "out"), "--model", checkpoint, "--engine", "onnx"]) == 0
    eager = EagerEngine(load_generator(checkpoint))([load_image(BIRD)])[0]
    assert np.abs(load_image(tmp_path / "out" / "bird.png").astype(int) - eager).max() <= 1


def test_upscale_falls_back_to_eager_without_the_runtime(tmp_path, checkpoint, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with caplog.at_level(logging.WARNING):
        assert main(["upscale", str(BIRD), "-o", str(tmp_path / "out"), "--model", checkpoint,
                     "--engine", "openvino-int8"]) == 0
    fallback = fastest_eager(torch.device("cpu"))
    assert "pip install 'srgan-ray[openvino]'" in caplog.text and f"running {fallback} instead" in caplog.text
    expected = EagerEngine(load_generator(checkpoint), ENGINES[fallback].precision)([load_image(BIRD)])[0]
    assert np.array_equal(load_image(tmp_path / "out" / "bird.png"), expected)


def test_the_shipped_srgan_generator_runs_through_a_runtime(tmp_path):
    shutil.copy(BIRD, tmp_path / "bird.png")
    assert main(["upscale", str(tmp_path / "bird.png"), "-o", str(tmp_path / "out"), "--model", "srgan",
                 "--engine", "openvino-bf16"]) == 0
    eager = EagerEngine(load_generator(ASSETS / "model-srgan"))([load_image(BIRD)])[0]
    sr = load_image(tmp_path / "out" / "bird.png").astype(float)
    assert 10 * np.log10(255**2 / np.mean((sr - eager) ** 2)) > 51  # measured 55.7 dB; tests/core/test_engines.py


def test_unknown_engine_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["upscale", str(BIRD), "-o", str(tmp_path), "--engine", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    with pytest.raises(UserError, match="unknown engine 'fast'; choose one of auto, eager"):
        ServeSettings.from_args({"engine": "fast"})  # named without torch: the Ingress never imports it
    assert ServeSettings.from_args({"engine": "openvino-int8"}).engine == "openvino-int8"


def test_the_cli_offers_the_core_engines():
    assert ENGINE_NAMES == ENGINE_CHOICES
    assert all(name in ENGINE_HELP for name in ENGINE_NAMES)
