"""int8 post-training quantization of the generator's OpenVINO graph (NNCF), and which layers
stay in higher precision.

Measured on the shipped SRResNet (Set5 / Set14 PSNR change against fp32, 300 calibration tiles of
48 px from ../shared/data/train; 128 px time against OpenVINO bf16, same run; this 2-core VM):

    | kept in bf16 (NNCF ignored_scope)                  | ranges  | Set5    | Set14   | time  |
    | nothing (NNCF's defaults)                          | mean    | -0.49   | -0.47   | 0.50x |
    | head + tail convs                                  | mean    | -0.13   | -0.14   | 0.66x |
    | head + tail + upsampling convs                     | mean    | -0.11   | -0.13   | 0.84x |
    | head + tail convs                                  | min/max | -0.11   | -0.07   |       |
    | residual additions                                 | min/max | -0.19   | -0.08   | 0.61x |
    | residual additions + head + tail convs             | min/max | -0.023  | -0.020  | 0.80x |

What costs PSNR is (1) the residual stream: by default NNCF quantizes both inputs of every
residual addition, so the stream that carries the image through 16 blocks is rounded to 8 bits
16 times; (2) the 9x9 head and tail convolutions, whose input (the image) and output (the image)
have no redundancy to average rounding away; (3) the per-tensor activation ranges: NNCF's default
(mean of the per-sample min and max) clips the few large activations that edges produce, the
plain min/max over the calibration set keeps them. NNCF's other options (no overflow fix, mixed
preset, full bias correction) moved the PSNR by less than 0.03 dB.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from srgan.engines import require


def _is_constant(port: Any) -> bool:
    return port.get_source_output().get_node().get_type_name() == "Constant"


def kept_layers(model: Any) -> list[str]:
    """Names of the layers of an OpenVINO model of the generator to keep out of int8: the first
    and last convolutions and every addition of two activations (the residual skips), found by the
    graph's structure so that any depth, width or scale works."""
    ops = model.get_ordered_ops()
    convs = [op.get_friendly_name() for op in ops if op.get_type_name() == "Convolution"]
    adds = [op.get_friendly_name() for op in ops
            if op.get_type_name() == "Add" and not any(_is_constant(port) for port in op.inputs())]
    return [convs[0], convs[-1], *adds]


def quantize_openvino(model: Any, tiles: list[np.ndarray]) -> tuple[Any, list[str]]:
    """int8 quantization of an OpenVINO model of the generator, calibrated on `tiles`.

    Args:
        model: openvino.Model, input float32 (N, 3, h, w) in [0, 1].
        tiles: uint8 (t, t, 3) LR tiles (srgan.calibration), each one calibration sample.

    Returns:
        The quantized openvino.Model (FakeQuantize ops; weights per-channel, activations
        per-tensor), and the names of the layers kept in higher precision.
    """
    nncf = require("nncf")
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    nncf.set_log_level(logging.ERROR)  # its progress bars and notes go to stdout
    kept = kept_layers(model)
    dataset = nncf.Dataset(tiles, lambda t: t.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255))
    quantized = nncf.quantize(
        model, dataset, subset_size=len(tiles), ignored_scope=nncf.IgnoredScope(names=kept),
        advanced_parameters=nncf.AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX))
    return quantized, kept
