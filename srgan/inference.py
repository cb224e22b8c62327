"""Inference: which engine runs a generator (`open_engine`, `auto`, the cache of exported
engines), and running one on uint8 images: whole, or tile by tile into a canvas.

    open_engine(name, g) -> engine (srgan.engines)      upscale(engine, rgb) / upscale_image(engine, image, tile, pad)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from srgan.calibration import Calibration
from srgan.canvas import Canvas
from srgan.condition import Condition, condition_vectors
from srgan.engines import (
    CARD,
    ENGINES,
    EagerEngine,
    Engine,
    EngineUnavailable,
    as_engine,
    engine_spec,
    fastest_eager,
    installed_version,
    load_engine,
    read_card,
    weights_digest,
)
from srgan.graphs import export_engine
from srgan.images import Decoded
from srgan.tiling import core, cut, plan_tiles

log = logging.getLogger(__name__)

QUALITY_BOUND_DB = 0.05  # the most Set5 PSNR `auto` lets an engine lose against eager fp32
RECIPE = 2  # bump when the export or quantization recipe changes: cached engines are then rebuilt


def autocast(device: torch.device | str, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA when `enabled`, otherwise a no-op."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


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

def auto_engine_names(device: torch.device) -> tuple[str, ...]:
    """What `auto` tries on `device`, fastest first; it runs the first within QUALITY_BOUND_DB of
    eager fp32 on Set5 for this model (the export card's measurement), else eager fp32.

    CPU: openvino-int8, then openvino-bf16: measured on this project's 2-core AVX-512 VM
    (tests/benchmarks/bench_engines.py and `srgan evaluate` on Set5, Set14, BSD100;
    docs/engines.md). Both shipped generators get int8 (-0.007 and -0.031 dB on Set5); a GAN
    generator whose texture int8 costs more (the one shipped before: -0.064 dB) gets bf16. CUDA:
    eager-fp16, unmeasured (no GPU where this was written): tensor cores take fp16 on every CUDA
    GPU, bf16 only from Ampere on.
    """
    return ("eager-fp16",) if device.type == "cuda" else ("openvino-int8", "openvino-bf16")


def cache_root() -> Path:
    """Where engines exported from generators are kept: $SRGAN_CACHE, else ~/.cache/srgan, + /engines."""
    return Path(os.environ.get("SRGAN_CACHE") or Path.home() / ".cache" / "srgan") / "engines"


def _cache_key(name: str, g: nn.Module, calibration: Calibration) -> str:
    spec = engine_spec(name)
    versions = {p: installed_version(p) for p in spec.packages}
    parts = [weights_digest(g), name, RECIPE, torch.__version__, versions,
             asdict(calibration) if spec.precision == "int8" else None]
    return f"{name}-{hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]}"


def _cached(name: str, g: nn.Module, calibration: Calibration, cache_dir: Path | None,
            source: dict[str, Any] | None) -> Path:
    """The folder of `name` exported from `g` in the cache, exported there first if it is not."""
    folder = (cache_dir or cache_root()) / _cache_key(name, g, calibration)
    if (folder / CARD).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        log.info("exporting %s into the cache %s (once per model)", name, folder)
        export_engine(g, tmp, name, calibration=calibration, source=source)
        os.replace(tmp, folder)  # atomic; a replica that got there first keeps its copy
    except OSError:
        if not (folder / CARD).is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _runtime_engine(name: str, g: nn.Module, exported: Path | None, cache_dir: Path | None,
                    threads: int | None, source: dict[str, Any] | None) -> Engine:
    if exported is not None and (exported / CARD).is_file() and read_card(exported)["engine"] == name:
        return load_engine(exported, threads)
    for package in engine_spec(name).packages:
        installed_version(package)  # raises where one is missing: the eager fallback, before any work
    return load_engine(_cached(name, g, Calibration(scale=g.scale), cache_dir, source), threads)


def open_engine(name: str, g: nn.Module, *, exported: Path | None = None, cache_dir: Path | None = None,
                threads: int | None = None, source: dict[str, Any] | None = None) -> Engine:
    """The engine `name` (one of ENGINE_CHOICES) for generator `g` (eval mode).

    A runtime engine comes from `exported` (a folder `srgan export` wrote, whose card names this
    engine), else from the cache (`cache_dir`, default `cache_root()`), exported there from `g`
    first. Where its runtime package is missing, logs the pip extra and returns the eager engine
    of `ENGINES[name].fallback` (or `fastest_eager`). `threads` defaults to torch's; `source` describes `g` in a card.
    """
    if name == "auto":
        return _auto(g, exported, cache_dir, threads, source)
    spec = engine_spec(name)
    if spec.runtime == "torch":
        return EagerEngine(g, spec.precision)
    try:
        return _runtime_engine(name, g, exported, cache_dir, threads, source)
    except EngineUnavailable as e:
        fallback = spec.fallback or fastest_eager(next(g.parameters()).device)
        log.warning("engine %s: %s; running %s instead", name, e, fallback)
        return EagerEngine(g, ENGINES[fallback].precision)


def set5_drop(card: dict[str, Any] | None) -> float:
    """dB of Set5 PSNR an exported engine loses against eager fp32 (0 for an eager engine)."""
    return 0.0 if card is None else card["set5_psnr"]["eager_fp32"] - card["set5_psnr"]["engine"]


def _auto(g: nn.Module, exported: Path | None, cache_dir: Path | None, threads: int | None,
          source: dict[str, Any] | None) -> Engine:
    """The first of `auto_engine_names` that keeps this model within QUALITY_BOUND_DB on Set5."""
    for name in auto_engine_names(next(g.parameters()).device):
        engine = open_engine(name, g, exported=exported, cache_dir=cache_dir, threads=threads, source=source)
        if set5_drop(engine.card) <= QUALITY_BOUND_DB:
            log.info("engine auto: %s", engine.name)
            return engine
        log.warning("engine %s loses %.3f dB of Set5 PSNR on this model (bound %.2f dB): not used by auto",
                    name, set5_drop(engine.card), QUALITY_BOUND_DB)
    return EagerEngine(g)
