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
    """conv3x3-BN-PReLU-conv3x3-BN with an identity skip; in a conditioned generator, plus an
    adapter of the residual (conv3x3-PReLU-conv1x1) that the condition gates channel by channel."""

    def __init__(self, channels: int, norm: str, adapter: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels, norm),
            nn.PReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels, norm),
        )
        self.adapter = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels),
                                     nn.Conv2d(channels, channels, 1)) if adapter else None

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        y = self.body(x)
        if gate is not None:  # (B, C): 0 for a clean input
            y = y + gate[:, :, None, None] * self.adapter(y)
        return x + y


class Conditioning(nn.Module):
    """What a conditioned generator makes of an input's condition vector (srgan.condition): float32
    (B, k), 0 for a clean input -> a bias of the head's features and a gate per residual block.

    The bias is SRMD's (Zhang et al. 2018) condition maps beside the LR: a convolution of a constant
    map is a constant per channel (away from the border). The gates scale adapters of the residuals,
    as AdaFM (He et al. 2019) and CResMD (He et al. 2020) move one network between degradation
    levels by modulating its features. Measured at step 600 of preset `conditioned` (Set5 / Set14, the
    condition read from the file): conv3x3-PReLU-conv1x1 adapters 28.61 / 26.20 dB on JPEG q75 and
    28.73 / 26.34 on noise 10; AdaFM's depthwise 3x3 (then a 1x1) 28.35 / 26.03 and 28.42 / 26.21.
    The embedding of the clean condition is 0, so a clean input gets bias 0 and gates 0, the
    unconditioned generator's function, whatever the weights; the output layers start at zero, so
    every condition gives that function at step 0.
    """

    def __init__(self, conditions: int, channels: int, blocks: int, hidden: int = 64):
        super().__init__()
        # No biases, and SiLU(0) = 0: the clean condition's embedding is exactly 0
        self.embed = nn.Sequential(nn.Linear(conditions, hidden, bias=False), nn.SiLU(),
                                   nn.Linear(hidden, hidden, bias=False))
        self.bias = nn.Linear(hidden, channels, bias=False)
        self.gates = nn.Linear(hidden, channels * blocks, bias=False)
        nn.init.zeros_(self.bias.weight)
        nn.init.zeros_(self.gates.weight)
        self.blocks = blocks

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        e = self.embed(cond)  # (B, hidden), 0 for the clean condition
        return self.bias(e)[:, :, None, None], list(self.gates(e).chunk(self.blocks, dim=1))


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
    """SRResNet: (B, 3, H, W) LR in [0, 1] -> (B, 3, H*scale, W*scale) SR, about [0, 1].

    With `cfg.conditions`, also told each input's condition: float32 (B, len(conditions)), the
    vectors of srgan.condition (0 for a clean input, which then gets the blind generator's output;
    None: every input clean).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.scale not in (2, 4, 8):
            raise ValueError(f"model.scale must be 2, 4 or 8, got {cfg.scale}")
        c, conditioned = cfg.channels, bool(cfg.conditions)
        self.head = nn.Sequential(nn.Conv2d(3, c, 9, padding=4), nn.PReLU())
        self.blocks = nn.Sequential(*[ResidualBlock(c, cfg.norm, conditioned) for _ in range(cfg.blocks)])
        self.trunk_tail = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), _norm(c, cfg.norm))
        self.upsample = nn.Sequential(*[UpsampleBlock(c, cfg.icnr) for _ in range(int(math.log2(cfg.scale)))])
        self.tail = nn.Conv2d(c, 3, 9, padding=4)
        self.scale, self.conditions = cfg.scale, cfg.conditions
        self.conditioning = Conditioning(len(cfg.conditions), c, cfg.blocks) if conditioned else None

    def features(self, lr: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W): the trunk's output, before upsampling. `cond` None: the clean condition."""
        feat = self.head[0](lr)  # (B, C, H, W)
        gates: list[torch.Tensor | None] = [None] * len(self.blocks)
        if self.conditioning is not None and cond is not None:
            if cond.shape != (len(lr), len(self.conditions)):
                raise ValueError(f"conditions {self.conditions} take a ({len(lr)}, {len(self.conditions)}) "
                                 f"tensor, got {tuple(cond.shape)}")
            bias, gates = self.conditioning(cond)
            feat = feat + bias
        feat = trunk = self.head[1](feat)
        for block, gate in zip(self.blocks, gates):
            trunk = block(trunk, gate)
        return feat + self.trunk_tail(trunk)  # long skip over all residual blocks

    def forward(self, lr: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.tail(self.upsample(self.features(lr, cond)))  # (B, 3, H*s, W*s)


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
        return self.forward_features(x)[0]  # (B,) logits; sigmoid lives in the loss

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B,) logits and the activations after each of the eight LeakyReLUs (feature matching)."""
        feats = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(x)
        return self.classifier(x).squeeze(1), feats


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
        return self.forward_features(x)[0]  # (B, 1, H, W) logits

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 1, H, W) logits and the activations of every conv but the last (feature matching)."""
        act = functools.partial(F.leaky_relu, negative_slope=0.2)
        skips = [act(self.conv0(x))]  # (B, C, H, W), then (B, 2C, H/2, W/2), (B, 4C, H/4, W/4)
        for conv in self.down:
            skips.append(act(conv(skips[-1])))
        feats = list(skips)
        x = skips.pop()  # (B, 8C, H/8, W/8)
        for conv in self.up:
            x = act(conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))) + skips.pop()
            feats.append(x)
        for conv in self.extra:
            x = act(conv(x))
            feats.append(x)
        return self.out(x), feats


def is_conditioning(name: str) -> bool:
    """Whether a generator parameter or buffer belongs to its conditioning (Conditioning, adapters)."""
    return name.startswith("conditioning.") or ".adapter." in name


def load_weights(g: Generator, state: dict[str, torch.Tensor]) -> Generator:
    """Load `state` into `g`; a blind generator's weights load into a conditioned one of the same
    shape, whose conditioning keeps its own (fresh: zero-initialised) weights. Raises RuntimeError
    on any other mismatch."""
    missing, unexpected = g.load_state_dict(state, strict=False)
    wrong = [k for k in missing if not is_conditioning(k)] + list(unexpected)
    if wrong:
        raise RuntimeError(f"weights do not fit the generator: missing or unexpected {', '.join(wrong[:5])}")
    return g


DISCRIMINATORS = {"vgg": Discriminator, "unet": UNetDiscriminator}


def discriminator(cfg: ModelConfig) -> nn.Module:
    """The critic `model.discriminator` names."""
    return DISCRIMINATORS[cfg.discriminator](cfg)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
