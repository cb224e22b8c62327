"""SRResNet generator and SRGAN discriminator (Ledig et al. 2017, figure 4), and Real-ESRGAN's
spectral-norm U-Net discriminator (Wang et al. 2021) as the alternative critic.

All take and return float32 NCHW tensors. The generator maps an LR image in [0, 1] to an SR
image of `scale` times its size; its output is not clamped, so the pixel loss sees the raw
values (clamp at the image boundary, not inside the graph).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from srgan.config import ModelConfig


def _norm(channels: int, norm: str) -> nn.Module:
    # "none" is the EDSR / MSRResNet variant: no batch statistics, so DDP workers that see
    # different half-batches still compute the same function.
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()


class ResidualBlock(nn.Module):
    """conv3x3-BN-PReLU-conv3x3-BN with an identity skip."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels, norm),
            nn.PReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels, norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def icnr_(conv: nn.Conv2d, factor: int = 2) -> None:
    """ICNR (Aitken et al. 2017): initialise the conv before a PixelShuffle(`factor`) so that the
    `factor`^2 output channels that become one output pixel's sub-pixels share one kernel. The fresh
    sub-pixel conv is then conv + nearest-neighbour upsampling: no checkerboard at the start."""
    out_channels, in_channels, kh, kw = conv.weight.shape
    base = torch.empty(out_channels // factor**2, in_channels, kh, kw)
    nn.init.kaiming_uniform_(base, a=5**0.5)  # nn.Conv2d's own default initialisation
    with torch.no_grad():
        # PixelShuffle takes channel c * factor^2 + k to sub-pixel k of channel c
        conv.weight.copy_(base.repeat_interleave(factor**2, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(conv.bias[::factor**2].repeat_interleave(factor**2))


class UpsampleBlock(nn.Module):
    """Sub-pixel x2: conv3x3 to 4C, PixelShuffle(2), PReLU."""

    def __init__(self, channels: int, icnr: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU()
        if icnr:
            icnr_(self.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))  # (B, C, 2H, 2W)


class Generator(nn.Module):
    """SRResNet: (B, 3, H, W) LR in [0, 1] -> (B, 3, H*scale, W*scale) SR, about [0, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.scale not in (2, 4, 8):
            raise ValueError(f"model.scale must be 2, 4 or 8, got {cfg.scale}")
        c = cfg.channels
        self.head = nn.Sequential(nn.Conv2d(3, c, 9, padding=4), nn.PReLU())
        self.blocks = nn.Sequential(*[ResidualBlock(c, cfg.norm) for _ in range(cfg.blocks)])
        self.trunk_tail = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), _norm(c, cfg.norm))
        self.upsample = nn.Sequential(*[UpsampleBlock(c, cfg.icnr) for _ in range(int(math.log2(cfg.scale)))])
        self.tail = nn.Conv2d(c, 3, 9, padding=4)
        self.scale = cfg.scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        feat = self.head(lr)  # (B, C, H, W)
        feat = feat + self.trunk_tail(self.blocks(feat))  # long skip over all residual blocks
        return self.tail(self.upsample(feat))  # (B, 3, H*s, W*s)


class Discriminator(nn.Module):
    """The paper's VGG-style critic: (B, 3, crop, crop) image in [0, 1] -> (B,) logits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.hr_crop % 16:
            raise ValueError(f"model.hr_crop must be a multiple of 16 for the discriminator, got {cfg.hr_crop}")
        c = cfg.d_channels
        # (in, out, stride) for the eight 3x3 convs: channels double every second conv, stride 2 halves.
        spec = [(3, c, 1), (c, c, 2), (c, 2 * c, 1), (2 * c, 2 * c, 2),
                (2 * c, 4 * c, 1), (4 * c, 4 * c, 2), (4 * c, 8 * c, 1), (8 * c, 8 * c, 2)]
        layers: list[nn.Module] = []
        for i, (cin, cout, stride) in enumerate(spec):
            layers.append(nn.Conv2d(cin, cout, 3, stride=stride, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
        self.features = nn.Sequential(*layers)
        side = cfg.hr_crop // 16
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(8 * c * side * side, cfg.d_dense),
            nn.LeakyReLU(0.2),
            nn.Linear(cfg.d_dense, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)).squeeze(1)  # (B,) logits; sigmoid lives in the loss


class UNetDiscriminator(nn.Module):
    """Real-ESRGAN's U-Net critic with spectral norm: (B, 3, H, W) image in [0, 1] -> (B, 1, H, W)
    logits, one realness score per pixel. H and W must be multiples of 8.

    Three stride-2 4x4 convs down, three bilinear x2 + 3x3 convs up with skips, two 3x3 convs and a
    3x3 conv to one channel; spectral norm on every conv but the first and the last keeps the
    critic Lipschitz, which is what keeps a per-pixel GAN stable.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.d_channels
        self.conv0 = nn.Conv2d(3, c, 3, padding=1)
        self.down = nn.ModuleList(spectral_norm(nn.Conv2d(c * 2**i, c * 2 ** (i + 1), 4, 2, 1, bias=False))
                                  for i in range(3))
        self.up = nn.ModuleList(spectral_norm(nn.Conv2d(c * 2 ** (i + 1), c * 2**i, 3, 1, 1, bias=False))
                                for i in reversed(range(3)))
        self.extra = nn.ModuleList(spectral_norm(nn.Conv2d(c, c, 3, 1, 1, bias=False)) for _ in range(2))
        self.out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = functools.partial(F.leaky_relu, negative_slope=0.2)
        skips = [act(self.conv0(x))]  # (B, C, H, W), then (B, 2C, H/2, W/2), (B, 4C, H/4, W/4)
        for conv in self.down:
            skips.append(act(conv(skips[-1])))
        x = skips.pop()  # (B, 8C, H/8, W/8)
        for conv in self.up:
            x = act(conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))) + skips.pop()
        for conv in self.extra:
            x = act(conv(x))
        return self.out(x)  # (B, 1, H, W) logits


DISCRIMINATORS = {"vgg": Discriminator, "unet": UNetDiscriminator}


def discriminator(cfg: ModelConfig) -> nn.Module:
    """The critic `model.discriminator` names."""
    return DISCRIMINATORS[cfg.discriminator](cfg)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
