"""Orchestration: Ray Data, Ray Train, Ray Serve, MLflow and the `srgan` CLI around the core."""

from __future__ import annotations

import subprocess
from pathlib import Path

import srgan
from srgan import UserError


class UsageError(UserError):
    """A command line that cannot work as given; the CLI prints it as one line."""


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return srgan.__version__
    return f"{srgan.__version__}+g{sha}"
