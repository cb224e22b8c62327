"""Inference: running an engine on uint8 images, whole or tile by tile into a canvas, and finding
an exported engine to run, all without importing torch.

    upscale(engine, rgb) / upscale_image(engine, image, tile, pad)
    exported_engine(folder, name)    the graph `srgan export` wrote into a folder, if it is engine `name`
    shipped_engine(model, name)      a shipped model's engine, exported once into the cache
                                     (`srgan export --shipped`, or the first run where torch is)
Either returns None where the engine is not there yet: srgan.graphs.open_engine exports it
(from the generator in PyTorch) or runs an eager engine.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from srgan import SHIPPED_MODELS
from srgan.canvas import Canvas
from srgan.checkpoint import CONFIG, G_WEIGHTS
from srgan.condition import Condition, condition_vectors
from srgan.engines import CARD, Engine, cache_root, engine_spec, load_engine, read_card
from srgan.images import Decoded
from srgan.tiling import core, cut, plan_tiles

if TYPE_CHECKING:
    from torch import nn

QUALITY_BOUND_DB = 0.05  # the most Set5 PSNR `auto` lets an engine lose against eager fp32
RECIPE = 2  # bump when the export or quantization recipe changes: cached engines are then rebuilt


def as_engine(model: Engine | nn.Module) -> Engine:
    """An engine as is; a generator (torch nn.Module, eval mode) as the eager fp32 engine. (A
    process that never imported torch holds no generator: nothing to check there.)"""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        from srgan.eager import EagerEngine

        return EagerEngine(model)
    return model


def cond_for(engine: Engine, condition: Condition | None, n: int) -> np.ndarray | None:
    """The (n, k) condition vectors of `n` windows of one input for `engine` (None: a blind engine,
    or no condition given: clean)."""
    if not engine.conditions or condition is None:
        return None
    return np.repeat(condition_vectors([condition], engine.conditions), n, axis=0)


def upscale(model: Engine | nn.Module, rgb: np.ndarray, condition: Condition | None = None) -> np.ndarray:
    """Upscale a whole uint8 RGB (H, W, 3) image in one pass -> uint8 (H*s, W*s, 3).

    `model` is an engine (srgan.engines) or a generator (eval mode), run as the eager fp32 engine.
    `condition`: what the input went through (srgan.condition), for a conditioned generator.
    """
    engine = as_engine(model)
    return engine([rgb], cond_for(engine, condition, 1))[0]


def upscale_image(model: Engine | nn.Module, image: Decoded, tile: int, pad: int, batch: int = 4,
                  fmt: str = "png", condition: Condition | None = None) -> Image.Image:
    """Upscale a decoded image tile by tile, the offline path: SR windows run `batch` at a time
    through `model` (as in `upscale`, told `condition`) and their cores go straight into a `Canvas`
    (memory: the output's one copy plus a batch of windows). Returns the Pillow image `write_image`
    encodes as `fmt` (see `Canvas` for its mode)."""
    engine = as_engine(model)
    canvas = Canvas(image, engine.scale, fmt)
    tiles = plan_tiles(image.rgb.shape[0], image.rgb.shape[1], tile, pad)
    for i in range(0, len(tiles), batch):
        group = tiles[i:i + batch]
        for t, sr in zip(group, engine([cut(image.rgb, t) for t in group], cond_for(engine, condition, len(group)))):
            canvas.paste(t, core(sr, t, engine.scale))
    return canvas.finish()


# ---------------------------------------------------------------- choosing an engine

def auto_engine_names(device_type: str) -> tuple[str, ...]:
    """What `auto` tries on a device of `device_type` ("cpu", "cuda"), fastest first; it runs the
    first within QUALITY_BOUND_DB of eager fp32 on Set5 for this model (the export card's measurement), else eager fp32.

    CPU: openvino-int8, then openvino-bf16: measured on this project's 2-core AVX-512 VM
    (tests/benchmarks/bench_engines.py and `srgan evaluate` on Set5, Set14, BSD100;
    docs/engines.md). Both shipped generators get int8 (-0.007 and -0.031 dB on Set5); a GAN
    generator whose texture int8 costs more (the one shipped before: -0.064 dB) gets bf16. CUDA:
    eager-fp16, unmeasured (no GPU where this was written): tensor cores take fp16 on every CUDA
    GPU, bf16 only from Ampere on.
    """
    return ("eager-fp16",) if device_type == "cuda" else ("openvino-int8", "openvino-bf16")


def gpu_visible() -> bool:
    """Whether this process may have a CUDA GPU, asked without importing torch: the NVIDIA driver
    lists a GPU and CUDA_VISIBLE_DEVICES does not hide them all (Ray sets it empty for an actor
    given no GPU). Only then does `auto` ask torch (srgan.graphs.open_engine) rather than run an
    exported CPU engine."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def set5_drop(card: dict[str, Any] | None) -> float:
    """dB of Set5 PSNR an exported engine loses against eager fp32 (0 for an eager engine)."""
    return 0.0 if card is None else card["set5_psnr"]["eager_fp32"] - card["set5_psnr"]["engine"]


def _cpu_names(name: str) -> tuple[str, ...] | None:
    """The runtime engines `name` may run from an export: itself, or auto's CPU choices where no GPU
    is visible; None where it runs in PyTorch (an eager engine, or auto with a GPU)."""
    if name == "auto":
        return None if gpu_visible() else auto_engine_names("cpu")
    return None if engine_spec(name).runtime == "torch" else (name,)


def exported_engine(folder: str | Path, name: str, threads: int | None = None) -> Engine | None:
    """The graph `srgan export` wrote into `folder`, loaded, if it is engine `name` (for auto: one of
    its CPU choices within QUALITY_BOUND_DB); else None."""
    names = _cpu_names(name)
    if names is None or not (Path(folder) / CARD).is_file():
        return None
    card = read_card(folder)
    if card["engine"] in names and (name != "auto" or set5_drop(card) <= QUALITY_BOUND_DB):
        return load_engine(folder, threads)
    return None


def shipped_key(model: str, name: str) -> str:
    """The cache folder of engine `name` of shipped model `model`: named by the model, the engine,
    the export recipe and a digest of the model's files, so that a process without torch finds it
    and a changed model is exported anew."""
    h = hashlib.sha256()
    for file in (CONFIG, G_WEIGHTS):
        h.update((SHIPPED_MODELS[model] / file).read_bytes())
    return f"{model}-{name}-r{RECIPE}-{h.hexdigest()[:12]}"


def shipped_engine(model: str, name: str, threads: int | None = None) -> Engine | None:
    """Engine `name` of shipped model `model` from the cache (cache_root()), exported there before
    (srgan.graphs.open_engine with `shipped`); None where it is not there yet, or `name`
    runs in PyTorch. auto takes its first CPU choice within QUALITY_BOUND_DB, as open_engine does."""
    for candidate in _cpu_names(name) or ():
        folder = cache_root() / shipped_key(model, candidate)
        if not (folder / CARD).is_file():
            return None  # auto's next choice only once this one is known to lose too much
        engine = load_engine(folder, threads)
        if name != "auto" or set5_drop(engine.card) <= QUALITY_BOUND_DB:
            return engine
    return None
