"""Losses: pixel (MSE / L1), VGG19 content (phi 2,2 / phi 5,4), adversarial (the paper's, or
ESRGAN's relativistic average), LDL's artifact loss and the grid loss (the 4 px checkerboard).

All take float32 NCHW images in [0, 1]. The adversarial losses take raw discriminator logits (one
per image, or one per pixel from a U-Net critic) and use `binary_cross_entropy_with_logits`, which
is the paper's -log D(.) computed stably.
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
from srgan.metrics import Y_COEFFS

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


PIXEL_LOSSES: dict[str, LossFn] = {"mse": F.mse_loss, "l1": F.l1_loss}


def pixel_loss(kind: str) -> LossFn:
    return PIXEL_LOSSES[kind]


def content_loss(cfg: LossConfig) -> LossFn:
    """The SRGAN phase's content loss: a pixel loss (MSE is SRGAN-MSE; L1), or MSE between VGG19
    feature maps."""
    if cfg.content in PIXEL_LOSSES:
        return PIXEL_LOSSES[cfg.content]
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


def generator_gan_loss(kind: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """G's adversarial loss from D's logits on the SR batch (`fake`, carrying G's gradient).

    "vanilla": -log D(G(lr)), the paper's non-saturating loss. "ragan" (ESRGAN): with
    D_Ra(a, b) = sigmoid(a - mean(b)) and the detached logits on the HR batch (`real`),
    -(log(1 - D_Ra(real, fake)) + log D_Ra(fake, real)) / 2: G also gains from making the real
    images look less real than its own, so it gets gradient from both halves.
    """
    if kind == "vanilla":
        return adversarial_bce(fake, real=True)
    return (adversarial_bce(real - fake.mean(), real=False) + adversarial_bce(fake - real.mean(), real=True)) / 2


def discriminator_gan_loss(kind: str, logits: torch.Tensor, other: torch.Tensor, real: bool) -> torch.Tensor:
    """D's loss on one half of its step: `logits` on the real (`real=True`) or the SR batch, and
    the detached logits of the other half (`other`, which RaGAN compares against).

    "vanilla": BCE against all-real or all-fake labels (the two halves sum to the paper's loss).
    "ragan": -log D_Ra(real, fake) / 2 and -log(1 - D_Ra(fake, real)) / 2, as ESRGAN.
    """
    if kind == "vanilla":
        return adversarial_bce(logits, real)
    return adversarial_bce(logits - other.mean(), real) / 2


def ldl_artifact_map(sr: torch.Tensor, sr_ema: torch.Tensor, hr: torch.Tensor, window: int = 7) -> torch.Tensor:
    """LDL's refined artifact map (Liang et al., CVPR 2022): (B, 1, H, W), >= 0.

    The residual |HR - SR| (summed over channels) is locally noisy where a GAN invents artifacts and
    smooth where it is merely blurred, so the map is the residual's variance in a `window` x
    `window` neighbourhood times the image's whole-residual variance ^ 1/5 (a patch-level scale).
    It is zero where the trained generator is closer to HR than its EMA: there the change is
    probably a real detail being learned; where the stable EMA is closer, the difference is
    probably an artifact, and is penalised. Computed without gradient (a weighting, not a target).
    """
    with torch.no_grad():
        residual = (hr - sr).abs().sum(1, keepdim=True)
        residual_ema = (hr - sr_ema).abs().sum(1, keepdim=True)
        padded = F.pad(residual, [window // 2] * 4, mode="reflect")
        mean = F.avg_pool2d(padded, window, stride=1)
        n = window * window  # unbiased, as torch.var: the paper's code takes var() over unfolded windows
        local_var = ((F.avg_pool2d(padded * padded, window, stride=1) - mean * mean) * n / (n - 1)).clamp_min_(0)
        patch = residual.var(dim=(1, 2, 3), keepdim=True) ** (1 / 5)
        return torch.where(residual < residual_ema, torch.zeros_like(local_var), patch * local_var)


def ldl_loss(sr: torch.Tensor, sr_ema: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """L1 between SR and HR weighted by `ldl_artifact_map`; gradient to SR only."""
    weight = ldl_artifact_map(sr.detach(), sr_ema, hr)
    return F.l1_loss(weight * sr, weight * hr)


def block_loss(sr: torch.Tensor, hr: torch.Tensor, period: int = 32, phase: int = 4) -> torch.Tensor:
    """How much more the residual SR - HR steps across the lines every `period` px from the top-left
    (the edges of a JPEG's 8 px blocks in an LR crop, upscaled: 8 x scale) than across the other
    lines of the same `phase` (the scale: a sub-pixel grid pattern counts on both alike).

    A JPEG codes its 8x8 blocks apart, and at low quality each block edge is a small step. A GAN
    takes the steps for detail and sharpens them (srgan.artifacts.block_artifacts measures it); the
    pixel loss penalises a step there no more than anywhere, so the adversarial gradient wins. This
    loss penalises only the excess: per image, the mean square step across the edges less that
    across the other lines (detached: nothing is gained by roughening them), floored at 0, for
    columns and rows. HR's own steps cancel in the residual. (B, C, H, W) -> scalar: a step of `a`
    across every edge and none elsewhere gives a^2.
    """
    if min(sr.shape[-2:]) <= period:
        raise ValueError(f"block_loss needs images over {period} px a side, got {tuple(sr.shape)}")
    e, every = sr - hr, period // phase

    def excess(steps: torch.Tensor) -> torch.Tensor:  # (B, C, lines, n) steps -> (B,)
        lines = steps[:, :, phase - 1::phase].square()  # steps from the last px of each phase cell
        edges = lines[:, :, every - 1::every].mean(dim=(1, 2, 3))
        mask = torch.ones(lines.shape[2], dtype=torch.bool, device=lines.device)
        mask[every - 1::every] = False
        return (edges - lines[:, :, mask].mean(dim=(1, 2, 3)).detach()).clamp(min=0)

    across_columns = (e[..., 1:] - e[..., :-1]).transpose(-1, -2)  # (B, C, W-1, H)
    across_rows = e[..., 1:, :] - e[..., :-1, :]  # (B, C, H-1, W)
    return ((excess(across_columns) + excess(across_rows)) / 2).mean()


def _edge_excess(y: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """srgan.artifacts.block_artifacts' sums for the vertical lines of luma `y` (B, H, W), in grey
    levels: per stretch of one upscaled block's height and per block edge, the mean step across the
    edge less the mean step across the lines of the same sub-pixel phase within one block either
    side (detached: nothing may be gained by roughening them, as a 4 px grid would), and that
    reference step. Both (B, stretches, edges)."""
    period = 8 * scale
    steps = (y[..., 1:] - y[..., :-1]).abs()  # (B, H, W - 1): line j lies between columns j - 1 and j
    rows = steps.shape[1] // period * period
    per_stretch = steps[:, :rows].unflatten(1, (rows // period, period)).mean(dim=2)  # (B, S, W - 1)
    j = torch.arange(1, steps.shape[-1] + 1, device=y.device)
    reference = ((j % scale == 0) & (j % period != 0)).to(y.dtype)
    sums = F.pad(torch.cumsum(per_stretch * reference, dim=-1), (1, 0))
    counts = F.pad(torch.cumsum(reference, dim=0), (1, 0))
    edges = torch.nonzero(j % period == 0).squeeze(1)  # indices of the edge lines
    lo, hi = (edges - period).clamp(min=0), (edges + period + 1).clamp(max=len(reference))
    ref = (sums[..., hi] - sums[..., lo]) / (counts[hi] - counts[lo])
    return per_stretch[..., edges] - ref.detach(), ref


def flat_block_loss(sr: torch.Tensor, hr: torch.Tensor, scale: int = 4, flat_step: float = 2.0) -> torch.Tensor:
    """The JPEG-block measure (srgan.artifacts.block_artifacts) as a loss: where SR steps more across
    an upscaled 8 px block edge, over its neighbouring lines, than HR does there, weighted as the
    measure weights it, 1 / (1 + (reference step / `flat_step` grey levels)^2) from SR's own
    neighbours (detached): flat places, where blocks show, count; textured ones hardly. `block_loss`
    penalises the squared steps of the residual, which textured places dominate, and left the
    measure at 1.3 on JPEG q75 (docs/real-photos.md). (B, 3, H, W) in [0, 1] -> scalar, in grey
    levels / 255: the weighted mean excess step."""
    if min(sr.shape[-2:]) <= 8 * scale:
        raise ValueError(f"flat_block_loss needs images over {8 * scale} px a side, got {tuple(sr.shape)}")
    coeffs = sr.new_tensor(Y_COEFFS).view(1, 3, 1, 1)  # Y less its offset of 16: only steps matter
    y_sr, y_hr = (sr.float() * coeffs).sum(1), (hr.float() * coeffs).sum(1)  # (B, H, W) grey levels
    total = weight_sum = 0.0
    for a, b in ((y_sr, y_hr), (y_sr.transpose(-1, -2), y_hr.transpose(-1, -2))):  # vertical, horizontal lines
        excess, ref = _edge_excess(a, scale)
        with torch.no_grad():
            w = 1 / (1 + (ref / flat_step) ** 2)
            floor = _edge_excess(b, scale)[0].clamp(min=0)  # HR's own excess is no artifact
        total = total + (w * (excess - floor).clamp(min=0)).sum()
        weight_sum = weight_sum + w.sum()
    return total / weight_sum / 255


def grid_loss(sr: torch.Tensor, hr: torch.Tensor, period: int = 4, tile: int = 16) -> torch.Tensor:
    """Mean square of the part of SR - HR locked to the output pixel grid: the checkerboard.

    Two PixelShuffle x2 steps make every output pixel one of 4x4 sub-pixel phases, and GAN training
    pushes the phases apart into a period-4 pattern (srgan.artifacts measures it). The pixel loss
    penalises it only as much as any other error, so the adversarial gradient wins there. This loss
    isolates it: the residual minus its 4x4 box average (the box has zeros at every multiple of
    1/4 cycle/px, so the pattern passes whole while shading and ramps cancel), then per `tile` x
    `tile` block the mean of each of the period x period phases, less their average. A +-a
    pattern on the residual gives a^2; a generator free to invent texture at every other frequency
    is kept from the grid ones. (B, C, H, W) -> scalar.
    """
    e = sr - hr
    e = e[..., : e.shape[-2] - period + 1, : e.shape[-1] - period + 1] - F.avg_pool2d(e, period, stride=1)
    b, c, h, w = e.shape
    h, w = h - h % tile, w - w % tile
    if not h or not w:
        raise ValueError(f"grid_loss needs images of at least {tile + period - 1} px a side, got {tuple(sr.shape)}")
    blocks = e[..., :h, :w].reshape(b, c, h // tile, tile // period, period, w // tile, tile // period, period)
    phases = blocks.mean(dim=(3, 6))  # (B, C, H/tile, period, W/tile, period)
    return (phases - phases.mean(dim=(3, 5), keepdim=True)).square().mean()


# ---------------------------------------------------------------- perceptual signals without a download

def focal_frequency_loss(sr: torch.Tensor, hr: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Focal Frequency Loss (Jiang et al., ICCV 2021): the squared distance between SR's and HR's 2D
    spectra (orthonormal FFT, per image and channel), each frequency weighted by its own distance ^
    `alpha`, normalised to 1 at the image's worst frequency and detached. A pixel loss is dominated by
    the low frequencies that are easy to get right; this one spends its weight on the ones that are
    still wrong, the fine detail a pixel-loss generator smooths away. (B, C, H, W) -> scalar, 0 when
    SR = HR; computed in float32 (no bf16 FFT)."""
    dist = (torch.fft.fft2(sr.float(), norm="ortho") - torch.fft.fft2(hr.float(), norm="ortho")).abs().square()
    with torch.no_grad():
        weight = dist.sqrt().pow(alpha)
        weight = weight / weight.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return (weight * dist).mean()


class RandomFeatures(nn.Module):
    """A randomly initialised VGG19 up to the ReLU after conv3_4 as a fixed feature space: Generic
    Perceptual Loss (Liu et al., CVPR 2021), where the structure of a deep network, not ImageNet
    training, gives the loss its sense of texture. He-normal weights from `seed` (the same network
    every run and on every rank), zero biases, frozen.

    (B, 3, H, W) in [0, 1] -> the activations after relu1_2, relu2_2 and relu3_4: (B, 64, H, W),
    (B, 128, H/2, W/2), (B, 256, H/4, W/4).
    """

    _TAPS = (3, 8, 17)  # vgg.make_layers(cfgs["E"]) indices of relu1_2, relu2_2, relu3_4

    def __init__(self, seed: int = 0):
        super().__init__()
        from torchvision.models import vgg

        with torch.random.fork_rng(devices=[]):  # nn.Conv2d's own initialisation draws from the global RNG
            self.layers = vgg.make_layers(vgg.cfgs["E"], batch_norm=False)[: self._TAPS[-1] + 1]
        gen = torch.Generator().manual_seed(seed)
        for m in self.layers:
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                with torch.no_grad():
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                    m.bias.zero_()
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> RandomFeatures:
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], x - 0.5
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self._TAPS:
                feats.append(x)
        return feats


def feature_loss(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of L1 between feature maps of SR (`fake`, carrying G's gradient) and of HR
    (`real`), each layer divided by the mean magnitude of HR's features there so that every layer
    counts alike whatever its scale: the form of Generic Perceptual Loss and of pix2pixHD's
    discriminator feature matching."""
    terms = [F.l1_loss(f.float(), r.float()) / r.float().abs().mean().clamp_min(1e-6) for f, r in zip(fake, real)]
    return torch.stack(terms).mean()
