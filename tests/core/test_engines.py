"""Inference engines (srgan.engines): each engine against eager fp32 on real images, the int8
round trip through its card, deterministic calibration, the cache, and the eager fallback where a
runtime package is missing."""

import logging
import sys

import numpy as np
import pytest
import torch

from srgan import ASSETS, SHIPPED_MODELS
from srgan.calibration import Calibration, calibration_tiles
from srgan.checkpoint import load_generator
from srgan.config import ModelConfig
from srgan.eager import EagerEngine, fastest_eager
from srgan.engines import EngineError, EngineUnavailable, load_engine
from srgan.graphs import ExportGraph, export_engine, open_engine, set5_psnr
from srgan.images import load_image
from srgan.inference import QUALITY_BOUND_DB, set5_drop
from srgan.models import Generator

SET5_LR = ASSETS / "benchmarks" / "Set5" / "LR_bicubic" / "X4"
IMAGES = ("bird", "butterfly", "head")  # 72x72, 64x64, 70x70: three kinds of content, small enough to be quick

# Fidelity to eager fp32: PSNR (dB) of the engine's uint8 output against eager fp32's, all pixels.
# fp32 runtimes differ from PyTorch only in summation order (~1e-6), which flips the rounding of a
# pixel now and then: measured at most 1 level on 1.5e-4 of the pixels (ONNX Runtime), none
# (OpenVINO). bf16 keeps 8 bits of mantissa: measured 54.3-56.8 dB (eager-bf16, openvino-bf16; at
# most 3 levels) on the five Set5 images. int8 rounds the convolutions' inputs to 256 levels per
# tensor: 49.5-51.4 dB (at most 9 levels). The bounds sit about 3 dB under the lowest measurement
# (46 dB is an RMS error of 1.3 levels); the benchmark PSNR of each engine is in docs/engines.md.
MIN_FIDELITY_DB = {"eager-bf16": 51.0, "openvino-bf16": 51.0, "openvino-int8": 46.0}


def fidelity(sr: np.ndarray, ref: np.ndarray) -> float:
    mse = np.mean((sr.astype(np.float64) - ref.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def shipped() -> Generator:
    return load_generator(SHIPPED_MODELS["default"])


@pytest.fixture(scope="module")
def reference(shipped) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (LR uint8 image, eager fp32 SR)."""
    lrs = {name: load_image(SET5_LR / f"{name}.png") for name in IMAGES}
    return {name: (lr, EagerEngine(shipped)([lr])[0]) for name, lr in lrs.items()}


@pytest.fixture
def tiny() -> Generator:
    torch.manual_seed(0)
    return Generator(ModelConfig(channels=8, blocks=1)).eval()


@pytest.mark.parametrize("name", ["onnx", "openvino", "eager-bf16", "openvino-bf16", "openvino-int8"])
def test_engine_matches_eager_fp32_on_real_images(name, shipped, reference, shipped_int8):
    engine = shipped_int8 if name == "openvino-int8" else open_engine(name, shipped)
    assert engine.name == name and engine.scale == 4
    for image, (lr, ref) in reference.items():
        sr = engine([lr])[0]
        assert sr.dtype == np.uint8 and sr.shape == ref.shape, image
        diff = np.abs(sr.astype(int) - ref.astype(int))
        if name in MIN_FIDELITY_DB:
            assert fidelity(sr, ref) >= MIN_FIDELITY_DB[name], (image, fidelity(sr, ref))
        else:
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (image, diff.max(), (diff > 0).mean())


def test_batches_of_windows_equal_single_windows(shipped_int8, reference):
    lr = reference["bird"][0]
    windows = [lr[:40, :40], lr[20:60, 10:50], lr[32:, 32:]]
    batched = shipped_int8(windows)
    for w, sr in zip(windows, batched):
        assert np.abs(sr.astype(int) - shipped_int8([w])[0].astype(int)).max() <= 1


def test_int8_round_trip_reproduces_its_card(shipped_int8):
    card = shipped_int8.card
    assert card["calibration"]["tiles"] > 0 and len(card["calibration"]["digest"]) == 64
    assert card["kept_in_higher_precision"][:2] == ["/tail/Conv/WithoutBiases", "/blocks.0/Add"]
    assert set5_drop(card) <= QUALITY_BOUND_DB, card["set5_psnr"]
    reloaded = load_engine(shipped_int8.folder)
    assert abs(set5_psnr(reloaded) - card["set5_psnr"]["engine"]) < 1e-3


def test_auto_is_int8_on_cpu_for_the_shipped_model(shipped, shipped_int8):
    engine = open_engine("auto", shipped, shipped="default")
    assert engine.name == "openvino-int8" and engine.folder == shipped_int8.folder  # from the cache


def test_a_shipped_models_engine_is_found_without_torch(shipped_int8):
    from srgan.inference import shipped_engine

    for name in ("auto", "openvino-int8"):
        assert shipped_engine("default", name).folder == shipped_int8.folder
    assert shipped_engine("default", "openvino-bf16") is None  # not exported: torch must export it
    assert shipped_engine("default", "eager") is None  # runs in PyTorch


def test_auto_gives_way_where_an_engine_costs_too_much(tiny, monkeypatch):
    # (the SRGAN shipped before the photoreal one was such a model: -0.064 dB on Set5 in int8, docs/engines.md)
    monkeypatch.setattr("srgan.graphs.set5_drop", lambda card: 1.0 if card and "int8" in card["engine"] else 0.0)
    assert open_engine("auto", tiny).name == "openvino-bf16"
    monkeypatch.setattr("srgan.graphs.set5_drop", lambda card: 0.0 if card is None else 1.0)
    assert open_engine("auto", tiny).name == "eager"


@pytest.mark.parametrize("scale, norm, slopes", [(2, "none", 1), (4, "batch", 1), (8, "none", 1), (4, "none", 8)])
def test_the_exported_graph_computes_the_generator(scale, norm, slopes):
    torch.manual_seed(0)
    g = Generator(ModelConfig(channels=8, blocks=2, scale=scale, norm=norm)).eval()
    g.upsample[-1].act = torch.nn.PReLU(slopes)
    torch.nn.init.uniform_(g.upsample[-1].act.weight, -0.5, 0.5)
    x = torch.rand(2, 3, 13, 17)
    with torch.no_grad():
        assert torch.allclose(ExportGraph(g)(x), g(x), atol=1e-5)  # the tail moved before the last shuffle


def test_calibration_is_deterministic():
    tiles, info = calibration_tiles(Calibration(count=20))
    again, info_again = calibration_tiles(Calibration(count=20))
    _, info_other = calibration_tiles(Calibration(count=20, seed=1))
    assert len(tiles) == 20 and tiles[0].shape == (48, 48, 3) and tiles[0].dtype == np.uint8
    assert info == info_again and all(np.array_equal(a, b) for a, b in zip(tiles, again))
    assert info_other["digest"] != info["digest"]


def test_cache_exports_once_per_weights(tiny, engine_cache):
    first = open_engine("onnx", tiny)
    assert open_engine("onnx", tiny).folder == first.folder
    with torch.no_grad():
        tiny.tail.bias.add_(0.01)
    assert open_engine("onnx", tiny).folder != first.folder


def test_missing_runtime_falls_back_to_eager(tiny, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now raises ImportError
    with caplog.at_level(logging.WARNING, logger="srgan.inference"):
        engine = open_engine("openvino-int8", tiny)
    assert isinstance(engine, EagerEngine) and engine.name == fastest_eager(torch.device("cpu"))
    assert "openvino package is not installed (pip install 'srgan-ray[openvino]')" in caplog.text
    assert engine([np.zeros((8, 8, 3), np.uint8)])[0].shape == (32, 32, 3)


def test_exported_folder_without_its_runtime_says_what_to_install(tiny, tmp_path, monkeypatch):
    export_engine(tiny, tmp_path, "onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(EngineUnavailable, match=r"pip install 'srgan-ray\[onnx\]'"):
        load_engine(tmp_path)


@pytest.mark.parametrize("call, message", [
    (lambda g: open_engine("fast", g), "unknown engine 'fast'; choose one of auto, eager"),
    (lambda g: open_engine("eager-fp16", g), "eager-fp16 runs on CUDA only"),
    (lambda g: export_engine(g, "/nonexistent", "eager"), "nothing to export"),
    (lambda g: EagerEngine(g)([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)]), "window 1"),
])
def test_bad_requests_are_clear_errors(tiny, call, message):
    with pytest.raises((EngineError, ValueError), match=message):
        call(tiny)


def test_not_an_exported_folder(tmp_path):
    with pytest.raises(EngineError, match="not an exported engine"):
        load_engine(tmp_path)


@pytest.mark.parametrize("name", ["onnx", "openvino", "openvino-int8"])
def test_a_conditioned_generator_exports_with_its_condition_input(name, tmp_path):
    """The exported graph takes the condition vectors beside the LR ("cond", (N, k)); each window of
    a batch is told its own, and no condition is the clean one."""
    from srgan.calibration import Calibration
    from srgan.condition import Condition, condition_vectors
    from srgan.models import load_weights

    torch.manual_seed(0)
    blind = Generator(ModelConfig(channels=8, blocks=2, norm="none")).eval()
    g = load_weights(Generator(ModelConfig(channels=8, blocks=2, norm="none", conditions=("jpeg", "noise"))),
                     blind.state_dict()).eval()
    with torch.no_grad():
        for p in g.conditioning.parameters():
            p.add_(0.1 * torch.randn_like(p))
    card = export_engine(g, tmp_path, name, calibration=Calibration(count=20))
    engine = load_engine(tmp_path)
    assert card["conditions"] == ["jpeg", "noise"] and engine.conditions == ("jpeg", "noise")
    lr = load_image(SET5_LR / "bird.png")[:32, :32]
    cond = condition_vectors([Condition(40), Condition(noise_sigma=8.0), Condition()], engine.conditions)
    eager = EagerEngine(g)([lr] * 3, cond)
    for sr, ref in zip(engine([lr] * 3, cond), eager):
        assert fidelity(sr, ref) >= (40.0 if name == "openvino-int8" else 60.0)
    assert np.abs(eager[0].astype(int) - eager[1].astype(int)).mean() > 0.5  # two conditions, two outputs
    assert fidelity(engine([lr])[0], EagerEngine(blind)([lr])[0]) >= (40.0 if name == "openvino-int8" else 60.0)
