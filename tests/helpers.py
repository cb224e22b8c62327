"""Helpers the tests share (paths to ../shared, small images made on the fly, ports, Ray Train
state); fixtures live in conftest.py. Test modules import this as `helpers`."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import zlib
from pathlib import Path

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
