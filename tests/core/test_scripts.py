"""The scripts that made the shipped models: the core-only training loop and the fp16 shipping step."""

import json
import subprocess
import sys

import numpy as np
import torch

from helpers import BENCHMARKS, ROOT
from srgan.checkpoint import load_generator, read_meta, save_checkpoint
from srgan.config import load_config
from srgan.models import Generator


def test_core_train_runs_both_phases_and_writes_loadable_checkpoints(tmp_path):
    cfg = load_config("tiny")
    save_checkpoint(tmp_path / "init", Generator(cfg.model), cfg, phase="srresnet", step=4)
    (tmp_path / "data").mkdir()
    for name in ("baby", "butterfly"):
        (tmp_path / "data" / f"{name}.png").write_bytes((BENCHMARKS / "Set5" / "HR" / f"{name}.png").read_bytes())
    (tmp_path / "data" / "broken.png").write_bytes(b"not an image")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "core_train.py"), "--data", str(tmp_path / "data"),
                          "--init", str(tmp_path / "init"), "--out", str(tmp_path / "out"),
                          "--val", str(BENCHMARKS / "Set5"), "--srresnet-seconds", "0", "--srgan-seconds", "0",
                          "--batch", "4"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "skipped: " in run.stdout and "broken.png" in run.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tiles"] > 0 and summary["srgan_content"] == "mse"  # no VGG19 weights here
    assert summary["bf16"] is True  # the device default on a CPU, over the tiny preset's off
    assert [e["phase"] for e in summary["log"]] == ["srresnet", "srgan"]  # 100 probe steps each, then done
    srresnet, srgan = read_meta(tmp_path / "out" / "srresnet"), read_meta(tmp_path / "out" / "srgan")
    assert (srresnet["phase"], srresnet["step"], srgan["phase"], srgan["step"]) == ("srresnet", 104, "srgan", 100)
    assert srresnet["config"]["srresnet"]["lr_milestones"] == [54, 79, 94]  # the run's own schedule, after step 4
    for phase in ("srresnet", "srgan"):
        load_generator(tmp_path / "out" / phase)


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
