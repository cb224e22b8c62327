"""Shared test fixtures: paths to ../shared data and small images made on the fly."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout; SRGAN_SHARED where a clone lives elsewhere.
_CANDIDATES = [Path(os.environ["SRGAN_SHARED"])] if "SRGAN_SHARED" in os.environ else []
SHARED = next((p for p in [*_CANDIDATES, ROOT.parent / "shared", Path("/work/shared")] if p.is_dir()),
              ROOT.parent / "shared")
DATA = SHARED / "data"
BENCHMARKS = DATA / "benchmarks"


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    data = bytearray(encode(Image.new("L", (8, 8))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29], data[29:33] = ihdr, struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def checkpoint_registered(run_dir: Path) -> bool:
    """True once Ray Train's controller has recorded a checkpoint (a restart then resumes from it)."""
    try:
        return bool(json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())["checkpoint_results"])
    except (OSError, ValueError, KeyError):  # not written yet, or caught mid-write
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    if not BENCHMARKS.is_dir():
        pytest.fail(f"benchmark data not found at {BENCHMARKS}; set SRGAN_SHARED to the shared folder")
    return BENCHMARKS


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (2 CPUs, no dashboard), shut down at the end."""
    import ray

    from pipelines.cluster import LOCAL_RUNTIME_ENV

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")  # report() costs ~2 s otherwise
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
             runtime_env=LOCAL_RUNTIME_ENV)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_shards(ray_session, tmp_path_factory) -> str:
    """Shards of Set5 + Set14 in 64 px tiles: enough for the tiny preset's 32 px crops."""
    from pipelines.prepare import PrepareParams, run_prepare

    out = tmp_path_factory.mktemp("tiny") / "shards"
    run_prepare([str(BENCHMARKS / "Set5" / "HR"), str(BENCHMARKS / "Set14" / "HR")], str(out),
                PrepareParams(tile=64, stride=64, val_fraction=0.0, images_per_shard=8))
    return str(out)


@pytest.fixture(autouse=True)
def _autograd_left_on():
    """Code run in-process (the CLI) must not switch autograd off for the process: later tests train."""
    import torch

    yield
    assert torch.is_grad_enabled(), "this test left autograd disabled for the whole process"
