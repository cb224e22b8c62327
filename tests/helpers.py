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
from typing import Any

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


# ---------------------------------------------------------------- local Serve processes and their memory

def serve_processes(app: str = "srgan") -> dict[str, Any]:
    """The local Serve processes of `app` by role: its deployments by name (Ray titles a replica
    `ray::ServeReplica:APP:DEPLOYMENT`) and "proxy" (`ray::ProxyActor`); psutil.Process each."""
    import psutil

    found = {}
    for p in psutil.process_iter(["cmdline"]):
        title = " ".join(p.info["cmdline"] or [])
        prefix = f"ray::ServeReplica:{app}:"
        if title.startswith(prefix):
            found[title[len(prefix):].split()[0]] = p
        elif title.startswith("ray::ProxyActor"):
            found["proxy"] = p
    return found


def reset_peak_rss(pid: int) -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) of a process we own (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(pid: int) -> int:
    """Peak resident bytes of a process since it started or since `reset_peak_rss` (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


# ---------------------------------------------------------------- bad inputs that once crashed a decoder

def mangled_tiff() -> bytes:
    """A TIFF whose first IFD's entry count is wrong: Pillow's frame count raises TypeError."""
    data = bytearray(encode(Image.new("RGB", (8, 8), (1, 2, 3)), "TIFF"))
    data[8] = 16
    return bytes(data)


def broken_exif_webp() -> bytes:
    """A WebP whose EXIF block declares a rational tag with type 0: exif_transpose raises struct.error."""
    exif = Image.Exif()
    exif[0x0112], exif[0x011A], exif[0x0131] = 6, (72, 1), "srgan"  # orientation, XResolution, Software
    raw = bytearray(exif.tobytes())
    raw[29] = 0  # XResolution's type: RATIONAL (5) -> 0
    return encode(Image.new("RGB", (8, 8)), "WEBP", exif=bytes(raw))


def strip_png(width: int, height: int) -> bytes:
    """A real (not header-forged) 1-bit PNG of width x height: long strips compress to almost nothing."""
    return encode(Image.new("1", (width, height)))


def conditioned_checkpoint(folder: Path, blocks: int = 1) -> tuple[Any, Path]:
    """A tiny conditioned generator (conditions jpeg and noise) whose conditioning is perturbed, as
    training moves it, so that what it is told changes its output; and its checkpoint in `folder`."""
    import torch

    from srgan.checkpoint import save_checkpoint
    from srgan.config import load_config
    from srgan.models import Generator

    cfg = load_config("tiny", overrides=[f"model.blocks={blocks}", "model.norm=none", "model.conditions=[jpeg,noise]"])
    torch.manual_seed(1)
    g = Generator(cfg.model).eval()
    with torch.no_grad():
        for p in g.conditioning.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return g, save_checkpoint(folder, g, cfg)


# What the serving image does not install (infra/serving_requirements.py): importing any of these fails there
NOT_IN_SERVING_IMAGE = ("torch", "torchvision", "scipy", "skimage", "pyarrow", "nncf", "onnx", "safetensors")


def serving_image_python(folder: Path) -> Path:
    """`folder`, now holding a sitecustomize.py that makes importing NOT_IN_SERVING_IMAGE fail in any
    Python started with `folder` on its PYTHONPATH, as it fails in the serving image."""
    (folder / "sitecustomize.py").write_text(
        f"import sys\nfor name in {NOT_IN_SERVING_IMAGE!r}:\n    sys.modules[name] = None\n")
    return folder
