"""Losses: pixel (MSE / L1), VGG19 content (phi 2,2 / phi 5,4), adversarial (with logits).

All take float32 NCHW images in [0, 1]. The adversarial losses take raw discriminator logits and
use `binary_cross_entropy_with_logits`, which is the paper's -log D(.) computed stably.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from srgan import UserError
from srgan.config import LossConfig

# vgg19.features index just after the ReLU of conv2_2 / conv5_4 (slice end, exclusive).
_VGG_LAYERS = {"vgg22": 9, "vgg54": 36}
_TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1 weights
VGG_RESCALE = 1 / 12.75  # the paper's feature rescaling, to bring the loss to MSE's scale

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class VGGWeightsError(UserError):
    """ImageNet VGG19 weights were asked for and are not available."""


def vgg_weights_path(weights: str) -> Path | None:
    """The file `loss.vgg_weights` names (None for "random", tests only); VGGWeightsError if absent."""
    if weights == "random":
        return None
    if weights == "torchvision":
        path = Path(torch.hub.get_dir()) / "checkpoints" / _TORCHVISION_FILE
        if not path.is_file():
            raise VGGWeightsError(
                f"ImageNet VGG19 weights are not in torchvision's cache ({path}). On a machine with internet, "
                "run: python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\"; "
                "on an air-gapped cluster, copy that file and pass --set loss.vgg_weights=/path/to/vgg19.pth; "
                "or train with --set loss.content=mse (SRGAN-MSE, no VGG needed).")
        return path
    path = Path(weights)
    if not path.is_file():
        raise VGGWeightsError(f"loss.vgg_weights: no file at {path}")
    return path


def _vgg19_state(weights: str) -> dict[str, torch.Tensor] | None:
    path = vgg_weights_path(weights)
    if path is None:
        return None
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and safetensors each raise their own kinds
        raise VGGWeightsError(f"{path}: not a readable VGG19 state dict ({e})") from e


class VGGFeatures(nn.Module):
    """Frozen VGG19 up to the ReLU after conv2_2 or conv5_4, on ImageNet-normalised input.

    (B, 3, H, W) in [0, 1] -> (B, 128 or 512, H/2 or H/16, ...) features times 1/12.75.
    """

    def __init__(self, layer: str, weights: str):
        super().__init__()
        state = _vgg19_state(weights)  # first: a missing file fails before any work
        from torchvision.models import vgg  # 1.6 s to import: only where a VGG loss is asked for

        # Only the convolutional part: torchvision's own layer list for VGG19 ("E"), no classifier.
        features = vgg.make_layers(vgg.cfgs["E"], batch_norm=False)
        if state is not None:
            try:
                features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                                          if k.startswith("features.")})
            except RuntimeError as e:
                raise VGGWeightsError(f"loss.vgg_weights={weights}: not VGG19 weights ({e})") from e
        self.features = features[: _VGG_LAYERS[layer]].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> VGGFeatures:
        return super().train(False)  # always in eval mode: a fixed feature extractor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std) * VGG_RESCALE


def pixel_loss(kind: str) -> LossFn:
    return {"mse": F.mse_loss, "l1": F.l1_loss}[kind]


def content_loss(cfg: LossConfig) -> LossFn:
    """The SRGAN phase's content loss: pixel MSE, or MSE between VGG19 feature maps."""
    if cfg.content == "mse":
        return F.mse_loss
    vgg = VGGFeatures(cfg.content, cfg.vgg_weights)

    def vgg_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        vgg.to(sr.device)
        with torch.no_grad():
            target = vgg(hr)
        return F.mse_loss(vgg(sr), target)

    vgg_loss.vgg = vgg  # type: ignore[attr-defined]  # so callers can move or inspect it
    return vgg_loss


def adversarial_bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean BCE of raw logits against all-real (-log D) or all-fake (-log(1 - D)) labels."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(G(lr)), averaged: the non-saturating generator loss."""
    return adversarial_bce(fake_logits, real=True)
