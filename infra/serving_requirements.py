"""The serving image's pip requirements (infra/Dockerfile, target `serve`), one per line, from
pyproject.toml: the package's dependencies without what only training, evaluation and exporting
import, Ray with its serve extra alone, MLflow's client without its server (mlflow-skinny: a
replica fetches a registered model), and OpenVINO's runtime without NNCF and ONNX (int8
calibration and export, done where torch is).

    python infra/serving_requirements.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# torch and torchvision: the generator in PyTorch (training, eager engines, export); scikit-image:
# SSIM in `srgan evaluate` (and SciPy with it); safetensors: the weights, read only to export
TRAINING_ONLY = {"torch", "torchvision", "scikit-image", "safetensors"}
RENAMED = {"mlflow": "mlflow-skinny"}  # same version, the client alone
RUNTIME = "openvino"  # of the openvino extra: the runtime


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()


def requirements(pyproject: Path = PYPROJECT) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    out = []
    for requirement in project["dependencies"]:
        name = _name(requirement)
        if name in TRAINING_ONLY:
            continue
        if name == "ray":
            requirement = re.sub(r"\[[^\]]*\]", "[serve]", requirement)
        out.append(RENAMED[name] + requirement[len(name):] if name in RENAMED else requirement)
    return out + [r for r in project["optional-dependencies"]["openvino"] if _name(r) == RUNTIME]


if __name__ == "__main__":
    sys.stdout.write("".join(f"{r}\n" for r in requirements()))
