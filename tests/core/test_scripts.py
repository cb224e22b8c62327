"""The script that ships a model: weights as float16, output kept."""

import subprocess
import sys

import numpy as np
import torch

from helpers import ROOT
from srgan.checkpoint import load_generator, read_meta, save_checkpoint
from srgan.config import load_config
from srgan.models import Generator


def test_ship_model_halves_the_weights_and_keeps_the_output(tmp_path):
    cfg = load_config("tiny")
    g = Generator(cfg.model).eval()
    save_checkpoint(tmp_path / "ck", g, cfg, phase="srresnet", step=7)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_model.py"), str(tmp_path / "ck"),
                    str(tmp_path / "shipped")], check=True, capture_output=True)
    assert read_meta(tmp_path / "shipped")["weights_dtype"] == "float16"
    assert read_meta(tmp_path / "shipped")["step"] == 7
    size = (tmp_path / "shipped" / "generator.safetensors").stat().st_size
    assert size < 0.6 * (tmp_path / "ck" / "generator.safetensors").stat().st_size
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(load_generator(tmp_path / "shipped")(x), g(x), atol=2e-2)
