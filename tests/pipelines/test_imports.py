"""Imports follow use: `srgan upscale` and `srgan evaluate` (local or shipped models) load neither
Ray, MLflow nor torchvision, `srgan --help` loads not even torch, and `srgan upscale` of a shipped
model whose engine is exported runs where importing torch fails (the serving image). Each runs in
a fresh process."""

import json
import subprocess
import sys

import pytest

from helpers import BENCHMARKS, NOT_IN_SERVING_IMAGE

HEAVY = {"ray", "mlflow", "torchvision"}
RUN = """
import json, sys
for name in sys.argv[2].split(","):  # packages this run must do without
    if name:
        sys.modules[name] = None  # importing it raises ImportError
from pipelines.cli import main
try:
    rc = main(sys.argv[3:])
except SystemExit as e:  # --help exits
    rc = e.code
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "modules": sorted(sys.modules)}, f)
"""


def loaded(tmp_path, *argv: str, without: tuple[str, ...] = ()) -> set[str]:
    """Top-level packages loaded by `srgan ARGV` in a new interpreter (which must succeed), where
    importing any of `without` fails."""
    out = tmp_path / "modules.json"
    subprocess.run([sys.executable, "-c", RUN, str(out), ",".join(without), *argv], check=True, capture_output=True,
                   timeout=300)
    result = json.loads(out.read_text())
    assert result["rc"] == 0, result
    return {m.split(".")[0] for m in result["modules"]}


def test_upscale_of_an_exported_shipped_model_loads_neither_torch_nor_scipy(tmp_path, shipped_int8):
    image = BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "bird.png"
    # the default engine (auto: openvino-int8, from the session's cache that shipped_int8 filled)
    modules = loaded(tmp_path, "upscale", str(image), "-o", str(tmp_path / "out"), "--model", "default")
    assert "openvino" in modules and not modules & (HEAVY | {"torch", "scipy"}), modules & (HEAVY | {"torch", "scipy"})
    assert (tmp_path / "out" / "bird.png").is_file()


def test_upscale_runs_where_torch_cannot_be_imported(tmp_path, shipped_int8):
    from srgan.images import load_image
    from srgan.inference import upscale

    image = BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "bird.png"
    loaded(tmp_path, "upscale", str(image), "-o", str(tmp_path / "out"), "--model", "default",
           without=NOT_IN_SERVING_IMAGE)
    # the whole image is one window (128 px tiles): the same pixels as the engine in this process
    assert (load_image(tmp_path / "out" / "bird.png") == upscale(shipped_int8, load_image(image))).all()


def test_without_torch_what_needs_it_says_so(tmp_path):
    image = BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "bird.png"
    from srgan import DEFAULT_MODEL

    # a checkpoint folder with no exported graph: torch must export it
    run = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "m.json"), ",".join(NOT_IN_SERVING_IMAGE),
                          "upscale", str(image), "-o", str(tmp_path / "out"), "--model", str(DEFAULT_MODEL)],
                         capture_output=True, text=True, timeout=300)
    assert json.loads((tmp_path / "m.json").read_text())["rc"] == 2, run.stderr
    assert "needs PyTorch, which is not installed here" in run.stderr and "srgan export --model" in run.stderr, \
        run.stderr


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
