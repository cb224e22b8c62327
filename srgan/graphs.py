"""Exported graphs of a generator for a CPU runtime: an ONNX graph, an OpenVINO IR, an int8 IR.

    generator (fp32) --torch.onnx--> model.onnx (dynamic N, h, w)           engine "onnx"
                                     --openvino.convert_model--> model.xml  "openvino", "openvino-bf16"
                                     --nncf.quantize(calibration)--> model.xml (int8)  "openvino-int8"
    + engine.json: the card (source, precision, runtime version, Set5 PSNR, calibration)

    open_engine(name, g) -> engine (srgan.engines)   the engine `name` of a generator in memory: an
                                                     eager one, or a graph exported once into the cache

Graph I/O, whatever the runtime: input "lr" float32 (N, 3, h, w) in [0, 1] (and for a conditioned
generator "cond" float32 (N, k), the condition vectors of srgan.condition); output "sr" float32
(N, 3, h*s, w*s), about [0, 1] and not clamped (clamp, x255 and round to get the image).

The exported graph computes the generator's function with one change of form (`ExportGraph`):
the 9x9 tail convolution runs before the last pixel shuffle instead of after it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srgan import ASSETS, __version__
from srgan.benchmarks import evaluate_set
from srgan.calibration import Calibration, calibration_tiles
from srgan.eager import EagerEngine, fastest_eager, weights_digest
from srgan.engines import (
    CARD,
    CARD_FORMAT,
    ENGINES,
    IR_FILE,
    ONNX_FILE,
    Engine,
    EngineError,
    EngineUnavailable,
    engine_spec,
    installed_version,
    load_engine,
    read_card,
    require,
)
from srgan.inference import QUALITY_BOUND_DB, RECIPE, auto_engine_names, cache_root, set5_drop, shipped_key
from srgan.quantize import quantize_openvino

log = logging.getLogger(__name__)

BF16 = "bf16 where the CPU has it (OpenVINO's INFERENCE_PRECISION_HINT), else fp32"
SET5 = ASSETS / "benchmarks" / "Set5"  # shipped, so every card can carry a measured PSNR


def subpixel_weight(w: torch.Tensor, r: int) -> tuple[torch.Tensor, int]:
    """A convolution on a pixel-shuffled input, as a convolution before the shuffle.

    For w (O, C, k, k), k odd, and y (N, C*r*r, h, w):
        conv2d(pixel_shuffle(y, r), w, padding=k//2) == pixel_shuffle(conv2d(y, w2, padding=pad), r)
    with w2 (O*r*r, C*r*r, k2, k2). Why: output pixel r*p + a reads input pixels r*p + a + u,
    |u| <= k//2, which are pixel p + (a + u) // r of sub-pixel plane (a + u) % r before the shuffle;
    so tap u of output phase a is tap (a + u) // r of input phase (a + u) % r. Zero padding agrees:
    a pixel after the shuffle is outside the image exactly when its pixel before it is.

    Returns:
        w2 (a tap that no phase reads is zero) and its padding.
    """
    out_ch, in_ch, k, _ = w.shape
    h = k // 2
    lo, hi = -h // r, (r - 1 + h) // r  # the taps, before the shuffle, that some phase reads
    w2 = w.new_zeros(out_ch * r * r, in_ch * r * r, hi - lo + 1, hi - lo + 1)
    for a in range(r * r):  # output phase (row a // r, column a % r)
        for b in range(r * r):  # input phase
            for dy in range(lo, hi + 1):
                u = r * dy + b // r - a // r
                for dx in range(lo, hi + 1):
                    v = r * dx + b % r - a % r
                    if -h <= u <= h and -h <= v <= h:  # channel c*r*r + phase, as pixel_shuffle orders them
                        w2[a::r * r, b::r * r, dy - lo, dx - lo] = w[:, :, u + h, v + h]
    return w2, -lo


class ExportGraph(nn.Module):
    """The generator's function as exported: its tail convolution before the last pixel shuffle.

    At the output size the 9x9 tail is a 64 -> 3 convolution, which fills 3 of the 16 lanes of
    an AVX-512 register; before the shuffle it is 256 -> 12 (5x5) on a quarter of the pixels:
    23% more multiply-adds, 4x fewer wasted lanes. Measured on 128 px, one thread: openvino-int8
    1.67x faster (the tail stays in bf16 there), openvino-bf16 1.19x; same PSNR. The last PReLU
    moves before the shuffle with it (per-channel slopes repeated for each sub-pixel plane).
    """

    def __init__(self, g: nn.Module):
        super().__init__()
        self.g, last, r = g, g.upsample[-1], 2
        self.conv = last.conv
        slopes = last.act.weight.detach()
        self.act = nn.PReLU(slopes.numel() * (r * r if slopes.numel() > 1 else 1))
        self.act.weight.data = slopes.repeat_interleave(r * r) if slopes.numel() > 1 else slopes.clone()
        w2, pad = subpixel_weight(g.tail.weight.detach(), r)
        self.tail = nn.Conv2d(w2.shape[1], w2.shape[0], w2.shape[2], padding=pad)
        self.tail.weight.data, self.tail.bias.data = w2, g.tail.bias.detach().repeat_interleave(r * r)

    def forward(self, lr: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        g = self.g
        feat = g.features(lr, cond)  # as Generator.forward up to the last upsampling block
        for block in g.upsample[:-1]:
            feat = block(feat)
        return F.pixel_shuffle(self.tail(self.act(self.conv(feat))), 2)  # (B, 3, H*s, W*s)


def export_onnx(g: nn.Module, path: Path) -> None:
    """Write generator `g` (any device) as an ONNX graph of `ExportGraph(g)`, with dynamic batch,
    height and width (opset 17); a conditioned generator's graph also takes "cond" (N, k)."""
    require("onnx")
    conditions = tuple(g.conditions)
    g = ExportGraph(copy.deepcopy(g).float().cpu()).eval()
    inputs, names, axes = (torch.rand(1, 3, 32, 32),), ["lr"], {"lr": {0: "n", 2: "h", 3: "w"}}
    if conditions:
        inputs, names = (*inputs, torch.full((1, len(conditions)), 0.5)), [*names, "cond"]
        axes["cond"] = {0: "n"}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export's, which needs onnxscript,
        # one more dependency; this one writes the convolutions and pixel shuffles of the generator.
        warnings.simplefilter("ignore")
        torch.onnx.export(g, inputs, str(path), dynamo=False, opset_version=17, input_names=names,
                          output_names=["sr"], dynamic_axes={**axes, "sr": {0: "n", 2: "H", 3: "W"}})


def set5_psnr(engine: Any) -> float:
    """Mean PSNR (dB, paper protocol) of `engine` on the shipped Set5, whole images."""
    return evaluate_set(lambda lr: engine([lr])[0], SET5, engine.scale)["psnr"]


_EAGER_SET5: dict[str, float] = {}  # weights digest -> eager fp32 Set5 PSNR: one measurement per model


def _eager_set5(g: nn.Module, digest: str) -> float:
    if digest not in _EAGER_SET5:
        _EAGER_SET5[digest] = set5_psnr(EagerEngine(copy.deepcopy(g).float().cpu()))
    return _EAGER_SET5[digest]


def _write_card(folder: Path, card: dict[str, Any]) -> None:
    (folder / CARD).write_text(json.dumps(card, indent=2))


def _artifacts(g: nn.Module, folder: Path, name: str, calibration: Calibration) -> dict[str, Any]:
    """Write the graph of engine `name` into `folder`; what the card says about it."""
    onnx_path = folder / ONNX_FILE
    export_onnx(g, onnx_path)
    spec = engine_spec(name)
    if spec.runtime == "onnxruntime":
        return {"files": [ONNX_FILE], "runtime_version": require("onnxruntime").__version__,
                "precision": "fp32"}
    ov = require("openvino")
    model = ov.convert_model(str(onnx_path))
    about: dict[str, Any] = {"runtime_version": ov.__version__, "files": [IR_FILE, IR_FILE.replace(".xml", ".bin")],
                             "precision": "fp32" if spec.precision == "fp32" else BF16}
    if spec.precision == "int8":
        tiles, info = calibration_tiles(calibration)
        start = time.perf_counter()
        model, kept = quantize_openvino(model, tiles, tuple(g.conditions))
        info["seconds"] = round(time.perf_counter() - start, 1)
        about |= {"precision": "int8 convolutions (weights per channel, activations per tensor); the layers in "
                               "kept_in_higher_precision in bf16 where the CPU has it, else fp32",
                  "kept_in_higher_precision": kept, "nncf_version": require("nncf").__version__,
                  "calibration": {**asdict(calibration), **info}}
    ov.save_model(model, str(folder / IR_FILE), compress_to_fp16=False)
    onnx_path.unlink()
    return about


def export_engine(g: nn.Module, folder: str | Path, name: str, *, calibration: Calibration | None = None,
                  source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export generator `g` (eval mode) as engine `name` into `folder` (created; files in it are
    replaced) with its card, measure Set5 PSNR against eager fp32, and return the card.

    int8 is calibrated on `calibration` (default: the shipped training images). `source`
    (the model spec, its config...) is copied into the card.
    """
    spec = engine_spec(name)
    if spec.runtime == "torch":
        raise EngineError(f"engine {name} runs the PyTorch model itself: there is nothing to export")
    for package in spec.packages:
        require(package)
    folder, digest = Path(folder), weights_digest(g)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    card: dict[str, Any] = {"format": CARD_FORMAT, "engine": name, "runtime": spec.runtime, "scale": g.scale,
                            "conditions": list(g.conditions),
                            **_artifacts(g, folder, name, calibration or Calibration(scale=g.scale)),
                            "input": {"name": "lr", "dtype": "float32", "layout": "NCHW", "range": [0, 1],
                                      "shape": ["N", 3, "h", "w"]},
                            "output": {"name": "sr", "dtype": "float32", "layout": "NCHW",
                                       "shape": ["N", 3, f"{g.scale}h", f"{g.scale}w"],
                                       "range": "about [0, 1], not clamped: clamp, x255, round"},
                            "source": {**(source or {}), "weights_sha256": digest},
                            "export_seconds": None, "code_version": __version__}
    card["export_seconds"] = round(time.perf_counter() - start, 1)
    _write_card(folder, card)
    card["set5_psnr"] = {"engine": round(set5_psnr(load_engine(folder)), 4),
                         "eager_fp32": round(_eager_set5(g, digest), 4),
                         "protocol": "Y of YCbCr, 4 px border cropped, shipped Set5 MATLAB-bicubic LR, whole images"}
    _write_card(folder, card)
    log.info("exported %s to %s in %.1f s; Set5 PSNR %.3f dB (eager fp32 %.3f)", name, folder,
             card["export_seconds"], card["set5_psnr"]["engine"], card["set5_psnr"]["eager_fp32"])
    return card


# ---------------------------------------------------------------- the cache of exported engines

def _cache_key(name: str, g: nn.Module, calibration: Calibration) -> str:
    spec = engine_spec(name)
    versions = {p: installed_version(p) for p in spec.packages}
    parts = [weights_digest(g), name, RECIPE, torch.__version__, versions,
             asdict(calibration) if spec.precision == "int8" else None]
    return f"{name}-{hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]}"


def _cached(name: str, g: nn.Module, calibration: Calibration, cache_dir: Path | None,
            source: dict[str, Any] | None, shipped: str | None) -> Path:
    """The folder of `name` exported from `g` in the cache, exported there first if it is not. A
    shipped model's folder is named so that a process without torch finds it (inference.shipped_key)."""
    key = shipped_key(shipped, name) if shipped else _cache_key(name, g, calibration)
    folder = (cache_dir or cache_root()) / key
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
                    threads: int | None, source: dict[str, Any] | None, shipped: str | None) -> Engine:
    if exported is not None and (exported / CARD).is_file() and read_card(exported)["engine"] == name:
        return load_engine(exported, threads)
    for package in engine_spec(name).packages:
        installed_version(package)  # raises where one is missing: the eager fallback, before any work
    return load_engine(_cached(name, g, Calibration(scale=g.scale), cache_dir, source, shipped), threads)


def open_engine(name: str, g: nn.Module, *, exported: Path | None = None, cache_dir: Path | None = None,
                threads: int | None = None, source: dict[str, Any] | None = None,
                shipped: str | None = None) -> Engine:
    """The engine `name` (one of ENGINE_CHOICES) for generator `g` (eval mode).

    A runtime engine comes from `exported` (a folder `srgan export` wrote, whose card names this
    engine), else from the cache (`cache_dir`, default `cache_root()`), exported there from `g`
    first; `g` is the shipped model `shipped` if given (its export is then found without torch,
    srgan.inference.shipped_engine). Where its runtime package is missing, logs the pip extra and
    returns the eager engine of `ENGINES[name].fallback` (or `fastest_eager`). `threads` defaults
    to the process's share of the CPUs; `source` describes `g` in a card.
    """
    if name == "auto":
        return _auto(g, exported, cache_dir, threads, source, shipped)
    spec = engine_spec(name)
    if spec.runtime == "torch":
        return EagerEngine(g, spec.precision)
    try:
        return _runtime_engine(name, g, exported, cache_dir, threads, source, shipped)
    except EngineUnavailable as e:
        fallback = spec.fallback or fastest_eager(next(g.parameters()).device)
        log.warning("engine %s: %s; running %s instead", name, e, fallback)
        return EagerEngine(g, ENGINES[fallback].precision)


def _auto(g: nn.Module, exported: Path | None, cache_dir: Path | None, threads: int | None,
          source: dict[str, Any] | None, shipped: str | None) -> Engine:
    """The first of `auto_engine_names` that keeps this model within QUALITY_BOUND_DB on Set5."""
    for name in auto_engine_names(next(g.parameters()).device.type):
        engine = open_engine(name, g, exported=exported, cache_dir=cache_dir, threads=threads, source=source,
                             shipped=shipped)
        if set5_drop(engine.card) <= QUALITY_BOUND_DB:
            log.info("engine auto: %s", engine.name)
            return engine
        log.warning("engine %s loses %.3f dB of Set5 PSNR on this model (bound %.2f dB): not used by auto",
                    name, set5_drop(engine.card), QUALITY_BOUND_DB)
    return EagerEngine(g)
