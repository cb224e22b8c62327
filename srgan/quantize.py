"""int8 post-training quantization of the generator's OpenVINO graph (NNCF), and which layers
stay in higher precision.

Measured on the shipped SRResNet: PSNR change against eager fp32 (dB) and time of a 128 px input
against OpenVINO bf16 in the same run (interleaved rounds, medians), NNCF 3.4 / OpenVINO 2026.4 on
this project's 2-core AVX-512 VM; 300 calibration tiles of 48 px from ../shared/data/train.
Layers outside int8 run in bf16 (rows marked * in fp32, which lost up to 0.005 dB less):

    | kept out of int8 (ignored_scope)  | activations           | Set5   | Set14  | BSD100 | time       |
    | nothing (NNCF's defaults)         | symmetric, mean range | -0.49* | -0.47* |        | 0.50-0.60x |
    | head + tail convs                 | symmetric, mean range | -0.13* | -0.14* |        | 0.74x      |
    | head + tail + upsampling convs    | symmetric, mean range | -0.11* | -0.13* |        | 0.84x      |
    | head + tail convs                 | symmetric, min/max    | -0.11* | -0.07* |        |            |
    | residual additions                | symmetric, min/max    | -0.19* | -0.08* |        | 0.61x      |
    | residual additions + head conv    | symmetric, min/max    | -0.16* | -0.07* |        | 0.64x      |
    | residual additions + tail conv    | symmetric, min/max    | -0.029 | -0.019 | -0.018 | 0.79x      |
    | residual additions + head + tail  | symmetric, min/max    | -0.029 | -0.019 |        | 0.83x      |
    | residual additions                | asymmetric, min/max   | -0.064 | -0.038 |        | 0.46x      |
    |   + full bias correction          |                       | -0.038 | -0.026 | -0.024 | 0.63x      |
    | residual additions + tail conv    | asymmetric, min/max   | -0.007 | -0.012 | -0.009 | 0.82x      |  <- used

What costs PSNR: (1) the residual stream. By default NNCF quantizes both inputs of every residual
addition (one quantizer on a block's output feeds both the next convolution and the next skip),
so the stream that carries the image through 16 blocks is rounded to 8 bits 16 times; ignoring
the additions leaves the skips in bf16 and quantizes only the convolutions' inputs. (2) The 9x9
tail convolution, which writes the image: its rounding lands on the pixels (keeping the head conv
out of int8 changed nothing). (3) The per-tensor activation ranges: NNCF's default (the mean over
samples of each sample's min and max) clips the rare large activations at edges, the plain min/max
keeps them; asymmetric ranges (the "mixed" preset) fit the PReLU outputs, mostly positive, better.
With the residual stream still quantized, the overflow fix off, the mixed preset and full bias
correction each moved the PSNR by under 0.03 dB.

(These times are of the graph before the tail convolution moved before the last pixel shuffle,
srgan.graphs.ExportGraph; with it the row used became 1.67x faster at the same PSNR.) The row used
is 3% slower than its symmetric twin for a quarter of the loss. The fastest row
within 0.05 dB (tail in int8, full bias correction) is 1.3x faster, but keeps only 0.012 dB of
margin on Set5 and its bias correction took 12 minutes on the busy 2 cores (fast bias correction:
about a minute), too long for a replica's first start.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from srgan.calibration import conditioned_tiles
from srgan.condition import Condition, condition_vectors
from srgan.engines import require


def _is_constant(port: Any) -> bool:
    return port.get_source_output().get_node().get_type_name() == "Constant"


def kept_layers(model: Any) -> list[str]:
    """Names of the layers of an OpenVINO model of the generator to keep out of int8: the last
    convolution (the 9x9 tail), every addition of two activations (the residual skips; in a
    conditioned generator, the gated adapters' too) and every matrix product (a conditioned
    generator's condition embedding: a few hundred multiply-adds), found by the graph's structure so
    that any depth, width or scale works."""
    ops = model.get_ordered_ops()
    convs = [op.get_friendly_name() for op in ops if op.get_type_name() == "Convolution"]
    adds = [op.get_friendly_name() for op in ops
            if op.get_type_name() == "Add" and not any(_is_constant(port) for port in op.inputs())]
    matmuls = [op.get_friendly_name() for op in ops if op.get_type_name() == "MatMul"]
    return [convs[-1], *adds, *matmuls]


def quantize_openvino(model: Any, tiles: list[np.ndarray], conditions: tuple[str, ...] = ()) -> tuple[Any, list[str]]:
    """int8 quantization of an OpenVINO model of the generator, calibrated on `tiles`.

    Args:
        model: openvino.Model, input float32 (N, 3, h, w) in [0, 1] (and "cond" (N, k) when
            `conditions` are given: the generator's, ModelConfig.conditions).
        tiles: uint8 (t, t, 3) LR tiles (srgan.calibration), each one calibration sample; for a
            conditioned generator each made to have gone through a condition of its own
            (srgan.calibration.conditioned_tiles).

    Returns:
        The quantized openvino.Model (FakeQuantize ops; weights int8 per-channel symmetric,
        activations uint8 per-tensor asymmetric over the calibration min/max), and the names of
        the layers kept in higher precision.
    """
    nncf = require("nncf")
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    nncf.set_log_level(logging.ERROR)  # its progress bars and notes go to stdout
    kept = kept_layers(model)
    samples = conditioned_tiles(tiles) if conditions else [(t, None) for t in tiles]

    def transform(sample: tuple[np.ndarray, Condition | None]) -> Any:
        tile, condition = sample
        x = tile.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
        return {"lr": x, "cond": condition_vectors([condition], conditions)} if conditions else x
    quantized = nncf.quantize(
        model, nncf.Dataset(samples, transform), subset_size=len(samples), ignored_scope=nncf.IgnoredScope(names=kept),
        preset=nncf.QuantizationPreset.MIXED,  # symmetric weights, asymmetric activations
        advanced_parameters=nncf.AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX))
    return quantized, kept
