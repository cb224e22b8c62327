"""Imports follow use: `srgan upscale` and `srgan evaluate` (local or shipped models) load neither
Ray, MLflow nor torchvision, and `srgan --help` loads not even torch. Each runs in a fresh process."""

import json
import subprocess
import sys

import pytest

from helpers import BENCHMARKS

HEAVY = {"ray", "mlflow", "torchvision"}
RUN = """
import json, sys
from pipelines.cli import main
try:
    rc = main(sys.argv[2:])
except SystemExit as e:  # --help exits
    rc = e.code
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "modules": sorted(sys.modules)}, f)
"""


def loaded(tmp_path, *argv: str) -> set[str]:
    """Top-level packages loaded by `srgan ARGV` in a new interpreter (which must succeed)."""
    out = tmp_path / "modules.json"
    subprocess.run([sys.executable, "-c", RUN, str(out), *argv], check=True, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["rc"] == 0, result
    return {m.split(".")[0] for m in result["modules"]}


def test_upscale_loads_no_ray_mlflow_or_torchvision(tmp_path, shipped_int8):
    image = BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "bird.png"
    # the default engine (auto: openvino-int8, from the session's cache that shipped_int8 filled)
    modules = loaded(tmp_path, "upscale", str(image), "-o", str(tmp_path / "out"), "--model", "default")
    assert {"torch", "openvino"} <= modules and not modules & HEAVY, modules & HEAVY
    assert (tmp_path / "out" / "bird.png").is_file()


@pytest.mark.parametrize("model", ["default", "bicubic"])
def test_evaluate_loads_no_ray_mlflow_or_torchvision(tmp_path, model):
    modules = loaded(tmp_path, "evaluate", "--model", model)
    assert not modules & HEAVY, modules & HEAVY


@pytest.mark.parametrize("command", [[], ["prepare"], ["train"], ["evaluate"], ["export"], ["serve"], ["upscale"],
                                     ["submit"], ["demo"]])
def test_help_loads_neither_torch_nor_ray(tmp_path, command):
    modules = loaded(tmp_path, *command, "--help")
    assert not modules & (HEAVY | {"torch"}), modules & (HEAVY | {"torch"})


def test_help_names_every_shipped_model_and_pair():
    from pipelines.commands import ALPHA_HELP, MODEL_HELP
    from srgan import DIAL_PAIRS, SHIPPED_MODELS

    assert all(f"'{name}'" in MODEL_HELP for name in SHIPPED_MODELS), MODEL_HELP
    assert all(f"{psnr} and {gan}" in ALPHA_HELP for psnr, gan in DIAL_PAIRS), ALPHA_HELP
