"""The `srgan` commands, one module each with `add_parser(sub)` and `run(args)`.

A command parses its flags and calls the module that does the work: pipelines/prepare.py,
train.py (train_worker.py, train_local.py) and serve.py, or the core for evaluate and upscale.
Commands import Ray, MLflow and torch inside `run`, only where they use them, so `srgan --help`
and a plain `srgan upscale` start fast.
"""

import argparse

from pipelines import UsageError
from srgan import DIAL_PAIRS, dial_pair

PAIRS = ", ".join(" and ".join(pair) for pair in DIAL_PAIRS)  # "default and srgan, realworld and realworld-gan, .."
MODEL_HELP = ("a shipped model by name, in pairs of a PSNR model and its GAN: 'auto' and 'auto-gan' for real "
              "photos, told each input's JPEG quality and noise as its file says them (upscale's --jpeg-quality "
              "and --noise set them); 'default' and 'srgan' for clean bicubic LR; 'realworld' and "
              "'realworld-gan' for real photos, blind to what each went through; or a checkpoint folder or "
              "URI, or models:/NAME@ALIAS (default: %(default)s)")
ENGINE_HELP = ("inference engine (srgan.engines): auto (the fastest within 0.05 dB of fp32: openvino-int8 on CPU, "
               "eager-fp16 on CUDA), eager (PyTorch fp32, the reference), eager-bf16, eager-fp16 (CUDA), onnx, "
               "openvino, openvino-bf16, openvino-int8; a runtime engine is exported once into ~/.cache/srgan "
               "($SRGAN_CACHE), or read from a --model folder written by `srgan export` (default: %(default)s)")
ALPHA_HELP = ("perception-distortion dial: the --model's shipped pair, its PSNR model (0, fidelity) and its GAN "
              f"(1, texture), interpolated weight by weight: {PAIRS}")


def alpha(text: str) -> float:
    """An --alpha value: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def check_alpha(model: str, alpha: float | None) -> None:
    """--alpha applies to the shipped pairs only."""
    if alpha is not None and dial_pair(model) is None:
        raise UsageError(f"--alpha interpolates a shipped pair ({PAIRS}); it does not apply to --model {model}")
