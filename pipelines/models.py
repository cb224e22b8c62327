"""Where a generator comes from: a model spec on the command line -> a loaded Generator."""

from __future__ import annotations

from pathlib import Path

from srgan.checkpoint import load_generator
from srgan.models import Generator


def load_model(spec: str) -> Generator:
    """Load the generator named by `spec`: a checkpoint folder (more sources in later releases)."""
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"--model {spec}: no such checkpoint folder")
    return load_generator(path)
