"""Typed, frozen configuration with named presets, YAML files and `a.b=c` overrides.

Every value is checked against its field's type on the way in: an unknown key, a wrong type or a
value outside a field's choices is an error that names the key. The resolved config is a plain
nested dict (`to_dict`) for logging and for storing beside every checkpoint.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from srgan import UserError


class ConfigError(UserError):
    """A config key or value that does not fit the schema."""


PHASES = ("srresnet", "srgan")  # SRResNet (pixel loss), then SRGAN (content + adversarial) from it


@dataclass(frozen=True)
class ModelConfig:
    scale: int = 4
    channels: int = 64  # generator feature maps (C)
    blocks: int = 16  # residual blocks (B)
    norm: Literal["batch", "none"] = "batch"  # "none": BN-free generator (EDSR / MSRResNet)
    hr_crop: int = 96  # HR training crop; the VGG-style discriminator's dense layer depends on it
    # Initialise the sub-pixel convs with ICNR (Aitken et al. 2017): a fresh upsampler is then nearest-
    # neighbour, with no checkerboard to unlearn. Initialisation only: not part of the architecture.
    icnr: bool = False
    # "vgg": the paper's VGG-style critic, one logit per image; "unet": Real-ESRGAN's spectral-norm
    # U-Net, one logit per pixel (local realness, so local artifacts are seen as such).
    discriminator: Literal["vgg", "unet"] = "vgg"
    d_channels: int = 64  # discriminator's first conv width (VGG: doubles up to 8x; U-Net: its base width)
    d_dense: int = 1024  # VGG-style only
    # What the generator is told of each input's degradation (srgan.condition.CONDITIONS: "jpeg" its
    # JPEG quality, "noise" its noise sigma), in this order; () the paper's blind generator.
    conditions: tuple[Literal["jpeg", "noise"], ...] = ()


@dataclass(frozen=True)
class LossConfig:
    pixel: Literal["mse", "l1"] = "mse"  # phase srresnet
    content: Literal["vgg54", "vgg22", "mse", "l1"] = "vgg54"  # phase srgan; "mse" is SRGAN-MSE
    adversarial_weight: float = 1e-3
    # "vanilla": the paper's -log D; "ragan": ESRGAN's relativistic average GAN (is real more real than
    # the average fake, and fake less real than the average real).
    gan: Literal["vanilla", "ragan"] = "vanilla"
    # LDL (Liang et al. 2022): L1 on pixels whose residual is locally noisy and where the EMA generator
    # is closer to HR than the trained one; needs train.ema_decay > 0. 0 = off.
    ldl_weight: float = 0.0
    # srgan.losses.grid_loss: the residual's pattern locked to the 4 px output grid (the checkerboard
    # of sub-pixel convolutions under a GAN loss), penalised apart from the pixel loss. 0 = off.
    grid_weight: float = 0.0
    # srgan.losses.block_loss: the residual's steps across the edges of the LR's 8 px JPEG blocks,
    # upscaled (a GAN sharpens them into a grid of blotches), penalised apart from the pixel loss. 0 = off.
    block_weight: float = 0.0
    # srgan.losses.flat_block_loss: the block measure itself as a loss (steps across the block edges over
    # their neighbours', beyond HR's, where the image is flat). 0 = off.
    flat_block_weight: float = 0.0
    # Perceptual signals that need no download, added to the content loss in phase srgan; 0 = off.
    # srgan.losses.focal_frequency_loss: the spectrum's distance, weighted to the frequencies still wrong.
    ffl_weight: float = 0.0
    # Generic Perceptual Loss: L1 between the features of a randomly initialised VGG19 (seeded by
    # train.seed; srgan.losses.RandomFeatures) on SR and on HR.
    gpl_weight: float = 0.0
    # pix2pixHD's feature matching: L1 between the discriminator's own features on SR and on HR.
    feature_match_weight: float = 0.0
    # "torchvision" (its cache), a path to a VGG19 state dict, or "random" (tests only: never a real run)
    vgg_weights: str = "torchvision"


@dataclass(frozen=True)
class PhaseConfig:
    steps: int = 1000
    learning_rate: float = 1e-4
    milestones: tuple[int, ...] = ()  # steps at which the learning rate is multiplied by gamma
    gamma: float = 0.1


def learning_rate_at(pc: PhaseConfig, step: int) -> float:
    """The step schedule: learning_rate * gamma^(milestones passed). A function of the step alone, so
    a resumed run follows the schedule of its current config."""
    return pc.learning_rate * pc.gamma ** bisect.bisect_right(sorted(pc.milestones), step)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16  # global: split evenly across workers
    beta1: float = 0.9
    beta2: float = 0.999
    # bf16 autocast of convs/matmuls (weights and optimizer stay fp32). None: decided by each worker
    # for its device (`for_device`): on for CPUs with native bf16 (3x faster with AMX), off for the
    # others (15x slower on an AVX2 CPU) and for GPUs (slower on an H100: tests/benchmarks/bench_step.py).
    bf16: bool | None = None
    channels_last: bool = True  # faster on both
    sync_bn: bool = False  # SyncBatchNorm across DDP workers (CUDA only)
    log_every: int = 50
    val_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    seed: int = 0
    # Exponential moving average of the generator's weights (e.g. 0.999): what is validated, exported
    # and served, and LDL's reference. 0 = off.
    ema_decay: float = 0.0
    # Train only the generator's conditioning (srgan.models.Conditioning); the rest stays the model it
    # started from, which the clean condition then reproduces exactly, however long the training.
    condition_only: bool = False


@dataclass(frozen=True)
class DegradeRound:
    """One round of Real-ESRGAN's degradations (srgan.degradations): blur, resize, noise, JPEG. The
    defaults are Real-ESRGAN's first round; each range is (low, high), drawn uniformly."""

    prob: float = 1.0  # that the round happens at all (Real-ESRGAN: always)
    blur_prob: float = 1.0
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    # iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso (srgan.degradations.KERNELS)
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sigma: tuple[float, float] = (0.2, 3.0)  # px of the image the round starts from
    beta_gaussian: tuple[float, float] = (0.5, 4.0)
    beta_plateau: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)  # factor: round 1 of HR's size, round 2 of LR's
    noise_prob: float = 1.0
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_sigma: tuple[float, float] = (1.0, 30.0)  # grey levels (0-255)
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_prob: float = 1.0
    jpeg_quality: tuple[int, int] = (30, 95)


@dataclass(frozen=True)
class DegradeConfig:
    """Real-photo degradations of the training crops (srgan.degradations.degrade); off by default:
    then LR is the MATLAB-bicubic LR of the shards, as in the paper."""

    enabled: bool = False
    clean_prob: float = 0.0  # share of crops left clean (bicubic LR): keeps the model good on clean inputs
    first: DegradeRound = field(default_factory=DegradeRound)
    second: DegradeRound = field(default_factory=lambda: DegradeRound(
        blur_prob=0.8, sigma=(0.2, 1.5), resize_probs=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
        noise_sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5)))
    final_sinc_prob: float = 0.8
    final_jpeg_prob: float = 1.0
    final_jpeg_quality: tuple[int, int] = (30, 95)
    # Share of the degraded crops made instead by one round on their clean LR, at LR scale: a photo
    # downsized by a phone or browser, then blurred, noisy or saved as JPEG, the commonest upload.
    # The rounds above, working at HR scale and shrinking last, seldom make that case.
    photo_prob: float = 0.0
    photo: DegradeRound = field(default_factory=lambda: DegradeRound(
        blur_prob=0.3, kernel_sizes=(13,), sigma=(0.2, 2.0), resize_probs=(0.0, 0.0, 1.0), noise_prob=0.4,
        noise_sigma=(1.0, 20.0), poisson_scale=(0.05, 2.0), jpeg_prob=0.8))


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    srresnet: PhaseConfig = field(default_factory=lambda: PhaseConfig(steps=1_000_000))
    srgan: PhaseConfig = field(default_factory=lambda: PhaseConfig(steps=200_000, milestones=(100_000,)))


# The Real-ESRGAN rounds of the real-photo presets (`realworld`, `conditioned`), milder than its paper's
_REALWORLD_ROUNDS: dict[str, Any] = {
    "final_sinc_prob": 0.5, "final_jpeg_prob": 0.8,
    "first": {"noise_prob": 0.3, "noise_sigma": [1, 15], "poisson_scale": [0.05, 1.5], "jpeg_prob": 0.3,
              "jpeg_quality": [50, 95]},
    "second": {"prob": 0.5, "sigma": [0.2, 2.5], "noise_prob": 0.5, "noise_sigma": [1, 15],
               "poisson_scale": [0.05, 1.5], "jpeg_prob": 0.3, "jpeg_quality": [50, 95]},
}

# What the conditioned presets share: every crop degraded (a clean crop gives the conditioning no
# gradient), 70% of them by the photo round on their clean LR (blur in LR px; Gaussian noise, whose sigma
# is the condition; JPEG, whose quality is), the others by the `realworld` preset's Real-ESRGAN rounds
# (their final JPEG when it is the last step, round 2's noise sigma); the conditioning alone trained.
_CONDITIONED_TRAIN: dict[str, Any] = {"ema_decay": 0.99, "checkpoint_every": 200, "keep_checkpoints": 3,
                                      "condition_only": True}
_CONDITIONED_DEGRADE: dict[str, Any] = {
    "enabled": True, "clean_prob": 0.0, "photo_prob": 0.7,
    **_REALWORLD_ROUNDS,
    "photo": {"blur_prob": 0.3, "kernel_sizes": [13], "sigma": [0.2, 2.0], "resize_probs": [0, 0, 1],
              "noise_prob": 0.5, "gaussian_noise_prob": 1.0, "noise_sigma": [1, 20], "jpeg_prob": 0.6,
              "jpeg_quality": [30, 95]},
}

PRESETS: dict[str, dict[str, Any]] = {
    # The published recipe: 1e6 SRResNet steps at 1e-4; SRGAN 1e5 steps at 1e-4 then 1e5 at 1e-5.
    "paper": {},
    # Photo-realism without ImageNet weights (the GAN ablation in docs/results.md): a BN-free generator,
    # SRResNet on L1; SRGAN-MSE with an EMA generator, LDL and the grid loss against the checkerboard.
    # The shipped `srgan` model is this recipe's srgan phase from the shipped SRResNet, its checkpoints
    # at steps 1,800 and 2,000 averaged (scripts/ship_model.py).
    "photoreal": {
        "model": {"norm": "none"},
        "loss": {"pixel": "l1", "content": "mse", "ldl_weight": 1.0, "grid_weight": 30.0},
        "train": {"ema_decay": 0.99, "checkpoint_every": 200, "keep_checkpoints": 3},
        "srgan": {"steps": 2000, "learning_rate": 1e-4, "milestones": [1400], "gamma": 0.5},
    },
    # Real photos (JPEG, noise, blur, resizing): the photoreal recipe on crops degraded by Real-ESRGAN's
    # pipeline (srgan.degradations) with milder ranges than its paper's (each round's noise and JPEG
    # half the time or less, the second round half the time): the paper's ranges cost 1.2 dB on clean
    # LR after 500 steps and gained nothing on JPEG inputs over the clean-trained SRResNet. A fifth of
    # the crops stay clean; half of the others take the photo round on their clean LR instead (blur in
    # LR px, noise, JPEG: +0.2 to +0.4 dB on JPEG, noise and blur inputs; docs/real-photos.md). Phase
    # srresnet fine-tunes the shipped SRResNet with L1 (`realworld`); phase srgan trains the GAN from it.
    "realworld": {
        "model": {"norm": "none"},
        "loss": {"pixel": "l1", "content": "mse", "ldl_weight": 1.0, "grid_weight": 30.0},
        "train": {"ema_decay": 0.99, "checkpoint_every": 200, "keep_checkpoints": 3},
        "degrade": {
            "enabled": True, "clean_prob": 0.2, "photo_prob": 0.5,
            **_REALWORLD_ROUNDS,
        },
        "srresnet": {"steps": 3000, "learning_rate": 2e-4, "milestones": [2000], "gamma": 0.5},
        "srgan": {"steps": 2000, "learning_rate": 1e-4, "milestones": [1400], "gamma": 0.5},
    },
    # Real photos, told what each went through (srgan.condition): the generator takes the JPEG quality
    # and the noise sigma of its input, and phase srresnet trains only its conditioning from `default`
    # (`train.condition_only`), so a clean input gets `default`'s output exactly; the crops are
    # _CONDITIONED_DEGRADE's. The shipped `auto` is phase srresnet from `default` (MODEL_CARD.md).
    "conditioned": {
        "model": {"norm": "none", "conditions": ["jpeg", "noise"]},
        "loss": {"pixel": "l1", "content": "mse"},
        "train": _CONDITIONED_TRAIN,
        "degrade": _CONDITIONED_DEGRADE,
        "srresnet": {"steps": 2400, "learning_rate": 5e-4, "milestones": [2000], "gamma": 0.5},
    },
    # The GAN side of the conditioned pair: `conditioned`'s crops, and again its conditioning alone
    # trained, now from the shipped `srgan` (a clean input gets `srgan`'s output exactly): SRGAN-MSE
    # with LDL, the grid loss, the block measure as a loss (`loss.flat_block_weight`), which
    # `block_loss` did not bring down, and Generic Perceptual Loss, which kept texture and fidelity on
    # JPEG q40. What each tried term did: model card, "The conditioned GAN".
    "conditioned-gan": {
        "model": {"norm": "none", "conditions": ["jpeg", "noise"]},
        "loss": {"pixel": "l1", "content": "mse", "ldl_weight": 1.0, "grid_weight": 100.0, "flat_block_weight": 20.0,
                 "gpl_weight": 1.0},
        "train": _CONDITIONED_TRAIN,
        "degrade": _CONDITIONED_DEGRADE,
        "srgan": {"steps": 200, "learning_rate": 2e-4},
    },
    # A few channels and one block: for tests and smoke runs on a CPU.
    "tiny": {
        "model": {"channels": 8, "blocks": 1, "hr_crop": 32, "d_channels": 8, "d_dense": 16},
        "train": {"batch_size": 4, "log_every": 1, "val_every": 2, "checkpoint_every": 2,
                  "bf16": False, "channels_last": False},
        "srresnet": {"steps": 4},
        "srgan": {"steps": 4, "milestones": [2]},
    },
}


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Return `value` as type `typ`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(typ)
    if origin is types.UnionType:  # `T | None`
        return None if value is None else _coerce(value, typing.get_args(typ)[0], key)
    if origin is Literal:
        if value not in typing.get_args(typ):
            raise ConfigError(f"{key}: {value!r} is not one of {list(typing.get_args(typ))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(v, typing.get_args(typ)[0], key) for v in value)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in (int, float, bool) and isinstance(value, str):
        # `serve run pipelines.serve:app tile=64` passes every value as a string; YAML 1.1 reads "1e-4" as one
        value = _parse_scalar(value, typ, key)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {typ.__name__}, got {value!r}")
    return value


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _parse_scalar(text: str, typ: type, key: str) -> Any:
    try:
        return _BOOLS[text.strip().lower()] if typ is bool else typ(text.strip())
    except (KeyError, ValueError):
        raise ConfigError(f"{key}: expected {typ.__name__}, got {text!r}") from None


def build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Build the dataclass `cls` from its defaults updated by the nested dict `values`, each value
    checked against its field's type: the one way settings are made (train config, prepare
    parameters, serve settings). Raises ConfigError naming `prefix` + the key."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"known under {prefix or 'top level'}: {', '.join(sorted(names))}")
    base = cls()
    kwargs = {}
    for name, value in values.items():
        typ, key = hints[name], prefix + name
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a mapping, got {value!r}")
            merged = {**to_dict(getattr(base, name)), **value}
            kwargs[name] = build(typ, merged, key + ".")
        else:
            kwargs[name] = _coerce(value, typ, key)
    return dataclasses.replace(base, **kwargs)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> dict[str, Any]:
    """`"a.b=c"` -> `{"a": {"b": c}}` with `c` parsed as a YAML scalar or list."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    import yaml

    value: Any = yaml.safe_load(raw) if raw.strip() else ""
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a plain nested dict (tuples become lists), JSON- and YAML-safe."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = to_dict(v) if dataclasses.is_dataclass(v) else (list(v) if isinstance(v, tuple) else v)
    return out


def read_document(read: Callable[[], bytes], name: str, fmt: str, error: type[UserError],
                  missing: str) -> dict[str, Any]:
    """Read one of the project's JSON documents (a checkpoint's config.json, a shard folder's
    manifest.json) and check its "format". `read()` returns the bytes; a missing file (`missing`
    says what that means), bad JSON or another format raises `error` naming `name`."""
    try:
        doc = json.loads(read())
    except FileNotFoundError as e:
        raise error(f"{name}: {missing}") from e
    except (OSError, ValueError) as e:
        raise error(f"{name}: unreadable ({e})") from e
    found = doc.get("format") if isinstance(doc, dict) else None
    if found != fmt:
        raise error(f"{name}: format {found!r}, expected {fmt}")
    return doc


def from_dict(values: dict[str, Any]) -> Config:
    return build(Config, values)


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively; without, PyTorch emulates them, far slower
    than float32. oneDNN's own check says yes for any AVX-512 CPU, where it emulates bf16 unless the
    CPU has AVX512_BF16 or AMX: a training step of the default generator took 3.4x as long in bf16
    as in fp32 on an AVX-512 Xeon without them (2 cores), 15x on an AVX2 CPU. On x86 Linux the
    CPU's flags decide."""
    import platform

    import torch

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    if platform.machine() not in ("x86_64", "AMD64") or not Path("/proc/cpuinfo").is_file():
        return True
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", Path("/proc/cpuinfo").read_text()))


def for_device(cfg: Config, gpu: bool) -> Config:
    """`cfg` with the settings left to the device (None) decided for this process's device."""
    if cfg.train.bf16 is not None:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, bf16=not gpu and cpu_has_bf16()))


def load_config(preset: str = "paper", file: str | Path | None = None,
                overrides: typing.Sequence[str] = ()) -> Config:
    """Preset, then YAML file, then `a.b=c` overrides, each layer checked against the schema."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = PRESETS[preset]
    if file is not None:
        import yaml

        loaded = yaml.safe_load(Path(file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: expected a mapping of config sections at top level")
        values = _deep_merge(values, loaded)
    for text in overrides:
        values = _deep_merge(values, parse_override(text))
    return from_dict(values)
