"""Inference engines: the generator behind one callable, run by eager PyTorch or by an exported
graph on a CPU runtime.

    engine(windows) -> srs    windows: uint8 (h, w, 3), all of one shape; srs: uint8 (h*s, w*s, 3)
    engine(windows, cond)     a conditioned generator's: cond float32 (N, k), each window's condition
                              vector (srgan.condition; None: all clean)
    engine.name, engine.scale, engine.card (the export card of a runtime engine, else None),
    engine.conditions (what the generator is told: ModelConfig.conditions; () for a blind one)

    name            runtime        precision
    eager           PyTorch        fp32: the reference
    eager-bf16      PyTorch        bf16 autocast (+ channels_last on the CPU)
    eager-fp16      PyTorch        fp16 autocast, CUDA only
    onnx            ONNX Runtime   fp32
    openvino        OpenVINO       fp32
    openvino-bf16   OpenVINO       bf16 where the CPU has it
    openvino-int8   OpenVINO       int8 convolutions, the layers that cost PSNR in bf16 (srgan.quantize)
    auto            the fastest engine within 0.05 dB of eager fp32 (srgan.inference.auto_engine_names)

A runtime engine is an exported folder: the graph (`model.onnx`, or OpenVINO IR `model.xml` +
`model.bin`) and a card (`engine.json`: source model, precision, runtime version, Set5 PSNR,
calibration). `srgan.graphs.export_engine` writes one; `load_engine` runs one;
`srgan.inference.open_engine(name, g)` exports `g` once into a cache folder keyed by its weights
(int8: half a minute on 2 cores) and loads it from there afterwards. Runtime packages are
imported only when used; where one is missing, `open_engine` logs the pip extra to install and
runs the eager engine instead.

Graphs have dynamic batch, height and width, compiled once: OpenVINO's CPU plugin keeps kernels
per input shape itself. The int8 graph reshaped to one static shape and compiled for it was 1.08x
faster at 128 px and 1.05x at 512 px (tests/benchmarks/bench_engines.py --static, one thread),
within this VM's noise between rounds; not worth a compilation (~1 s) per new shape, which
`evaluate` (a shape per image) would pay on every image.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from srgan import UserError
from srgan.config import read_document

CARD, CARD_FORMAT = "engine.json", "srgan-engine/1"
ONNX_FILE, IR_FILE = "model.onnx", "model.xml"
EXTRAS = {"openvino": "openvino", "nncf": "openvino", "onnx": "onnx", "onnxruntime": "onnx"}  # package -> pip extra


class EngineError(UserError):
    """An engine name or exported folder that cannot work as given."""


class EngineUnavailable(EngineError):
    """A runtime package the engine needs is not installed."""


@dataclass(frozen=True)
class EngineSpec:
    runtime: str  # "torch", "openvino" or "onnxruntime"
    precision: str  # "fp32", "bf16", "fp16" or "int8"
    packages: tuple[str, ...]  # what exporting it from a generator imports
    fallback: str | None  # the eager engine run where a package is missing (None: `fastest_eager`)


ENGINES = {
    "eager": EngineSpec("torch", "fp32", (), "eager"),
    "eager-bf16": EngineSpec("torch", "bf16", (), "eager-bf16"),
    "eager-fp16": EngineSpec("torch", "fp16", (), "eager-fp16"),
    "onnx": EngineSpec("onnxruntime", "fp32", ("onnx", "onnxruntime"), "eager"),
    "openvino": EngineSpec("openvino", "fp32", ("onnx", "openvino"), "eager"),
    "openvino-bf16": EngineSpec("openvino", "bf16", ("onnx", "openvino"), None),
    "openvino-int8": EngineSpec("openvino", "int8", ("onnx", "openvino", "nncf"), None),
}
ENGINE_CHOICES = ("auto", *ENGINES)


class Engine(Protocol):
    """Upscales a batch of same-shaped uint8 windows; see the module docstring."""

    name: str
    scale: int
    card: dict[str, Any] | None
    conditions: tuple[str, ...]

    def __call__(self, windows: list[np.ndarray], cond: np.ndarray | None = None) -> list[np.ndarray]: ...


def _missing(package: str) -> EngineUnavailable:
    return EngineUnavailable(f"the {package} package is not installed (pip install 'srgan-ray[{EXTRAS[package]}]')")


def require(package: str) -> ModuleType:
    """Import a runtime package, or raise EngineUnavailable naming the pip extra that brings it."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise _missing(package) from e


def installed_version(package: str) -> str:
    """A runtime package's version without importing it (NNCF takes 2 s to import and is only needed
    to export); raises EngineUnavailable as `require` does."""
    try:
        if importlib.util.find_spec(package) is None:
            raise _missing(package)
    except ValueError as e:  # sys.modules[package] is None: an import that is known to fail
        raise _missing(package) from e
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def torch_installed() -> bool:
    """Whether PyTorch can be imported here, asked without importing it."""
    try:
        return importlib.util.find_spec("torch") is not None
    except ValueError:  # sys.modules["torch"] is None: an import that is known to fail
        return False


def engine_spec(name: str) -> EngineSpec:
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_CHOICES)}")
    return ENGINES[name]


def check_windows(windows: list[np.ndarray]) -> None:
    """Raise ValueError unless `windows` is a non-empty list of uint8 (h, w, 3) arrays of one shape."""
    if not windows:
        raise ValueError("no windows to upscale")
    shape = windows[0].shape
    for i, w in enumerate(windows):
        if w.dtype != np.uint8 or w.ndim != 3 or w.shape[2] != 3 or w.shape != shape:
            raise ValueError(f"window {i}: expected uint8 {shape if i else '(h, w, 3)'}, got {w.dtype} {w.shape}")


def to_batch(windows: list[np.ndarray]) -> np.ndarray:
    """uint8 windows (h, w, 3) -> float32 (N, 3, h, w) in [0, 1]: a graph's input."""
    check_windows(windows)
    return np.stack(windows).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)


def cond_batch(cond: np.ndarray | None, n: int, conditions: tuple[str, ...]) -> np.ndarray:
    """The (n, k) float32 condition vectors a conditioned graph takes: `cond`, or zeros (clean)."""
    if cond is None:
        return np.zeros((n, len(conditions)), np.float32)
    cond = np.asarray(cond, np.float32)
    if cond.shape != (n, len(conditions)):
        raise ValueError(f"conditions {conditions}: expected ({n}, {len(conditions)}) vectors, got {cond.shape}")
    return cond


def from_batch(sr: np.ndarray) -> list[np.ndarray]:
    """float32 (N, 3, H, W), about [0, 1] -> uint8 (H, W, 3) each, clamped and rounded as eager does."""
    return list(np.rint(np.clip(sr, 0, 1) * np.float32(255)).astype(np.uint8).transpose(0, 2, 3, 1))


def graph_inputs(windows: list[np.ndarray], cond: np.ndarray | None, conditions: tuple[str, ...]
                 ) -> dict[str, np.ndarray]:
    """An exported graph's inputs by name: "lr" (N, 3, h, w), and "cond" (N, k) if it is conditioned."""
    x = to_batch(windows)
    return {"lr": x, "cond": cond_batch(cond, len(x), conditions)} if conditions else {"lr": x}


def cache_home() -> Path:
    """$SRGAN_CACHE, else ~/.cache/srgan."""
    return Path(os.environ.get("SRGAN_CACHE") or Path.home() / ".cache" / "srgan")


def cache_root() -> Path:
    """Where engines exported from generators are kept (srgan.graphs.open_engine): cache_home()/engines."""
    return cache_home() / "engines"


def _compiled_cache() -> dict[str, str]:
    """OpenVINO's cache of compiled models (cache_home()/openvino), where it can be written: a graph
    compiled once loads in 0.1 s instead of 0.45 s (int8, this project's 2-core VM), a third of what
    a one-image `srgan upscale` took. OpenVINO keys it by graph, device and settings itself."""
    folder = cache_home() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return {}
    return {"CACHE_DIR": str(folder)} if os.access(folder, os.W_OK) else {}


def _threads(threads: int | None) -> int:
    """`threads`, else the process's share: OMP_NUM_THREADS where set (Ray sets it to a replica's
    num_cpus), else the CPUs it may run on."""
    return threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or len(os.sched_getaffinity(0))


class OpenVINOEngine:
    """An exported OpenVINO IR compiled for the CPU: fp32, bf16, or int8 (FakeQuantize) with its
    other layers in bf16 where the CPU has bf16 (OpenVINO runs them in fp32 where it has not)."""

    def __init__(self, folder: Path, card: dict[str, Any], threads: int | None = None):
        ov = require("openvino")
        core = ov.Core()
        hint = "f32" if engine_spec(card["engine"]).precision == "fp32" else "bf16"
        compiled = core.compile_model(str(folder / IR_FILE), "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": _threads(threads),
            "PERFORMANCE_HINT": "LATENCY", **_compiled_cache()})
        self.request = compiled.create_infer_request()
        self.lock = threading.Lock()  # one infer request: its output buffer is reused by the next call
        self.name, self.scale, self.card, self.folder = card["engine"], card["scale"], card, folder
        self.conditions = tuple(card.get("conditions", ()))

    def __call__(self, windows: list[np.ndarray], cond: np.ndarray | None = None) -> list[np.ndarray]:
        inputs = graph_inputs(windows, cond, self.conditions)
        with self.lock:
            return from_batch(self.request.infer(inputs)[0])


class OnnxEngine:
    """An exported ONNX graph run by ONNX Runtime's CPU provider (fp32)."""

    def __init__(self, folder: Path, card: dict[str, Any], threads: int | None = None):
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = _threads(threads), 1
        self.session = ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        self.name, self.scale, self.card, self.folder = card["engine"], card["scale"], card, folder
        self.conditions = tuple(card.get("conditions", ()))

    def __call__(self, windows: list[np.ndarray], cond: np.ndarray | None = None) -> list[np.ndarray]:
        return from_batch(self.session.run(None, graph_inputs(windows, cond, self.conditions))[0])


RUNTIME_ENGINES = {"openvino": OpenVINOEngine, "onnxruntime": OnnxEngine}


def read_card(folder: str | Path) -> dict[str, Any]:
    """An exported folder's engine.json; raises EngineError naming the folder."""
    path = Path(folder) / CARD
    return read_document(path.read_bytes, str(path), CARD_FORMAT, EngineError,
                         f"not an exported engine (no {CARD}; `srgan export` writes one)")


def load_engine(folder: str | Path, threads: int | None = None) -> Engine:
    """Run an exported folder (see `export_engine`). Raises EngineUnavailable if its runtime is missing."""
    card = read_card(folder)
    runtime = engine_spec(card["engine"]).runtime
    if runtime not in RUNTIME_ENGINES:
        raise EngineError(f"{folder}: engine {card['engine']} has no exported graph to run")
    return RUNTIME_ENGINES[runtime](Path(folder), card, threads)
