"""Real-photo degradations: Real-ESRGAN's high-order pipeline (Wang et al., ICCVW 2021), and the
named, seeded specs that make degraded test sets from the benchmarks' own LR files.

The training pipeline, from one HR crop to its LR (`degrade`), every draw from the `rng` it is given:

    HR crop, float32 (H, W, 3) in [0, 1]
      round 1   blur (kernel1) -> resize (up / down / keep; area, bilinear or bicubic)
                -> noise (Gaussian or Poisson; colour or grey) -> JPEG
      round 2   blur (kernel2) -> resize (relative to the LR size) -> noise -> JPEG
                (each round, and each step of it but the resize, with a probability of the config)
      final     in random order: [resize to H/s x W/s, sinc filter (with a probability)] and [JPEG]
    LR, uint8 (H/s, W/s, 3)

Kernels are pure functions of their parameters (`gaussian_kernel`, `generalized_gaussian_kernel`,
`plateau_kernel`, `sinc_kernel`); `random_kernel` draws those parameters. Sizes are odd, every
kernel sums to 1; `theta` turns a kernel's x axis (its `sigma_x`) from the image's columns
towards its rows. Noise levels are on the 0-255 scale. JPEG is Pillow's encoder (4:2:0 chroma, as
most files people upload went through it); resizing is Pillow's (antialiased when shrinking).

Test-set specs (`parse_spec`, `degrade_lr_file`): `jpeg:Q`, `noise:SIGMA`, `blur:SIGMA` joined by
`+` and applied in order to an LR image (the file a JPEG where the last op is `jpeg`), or
`realworld:SEED`, one draw per HR image of the training pipeline's Real-ESRGAN rounds (`degrade`;
not the photo round, nothing left clean). Every random draw is seeded by (spec, image name): a spec
gives the same bytes every time. `spec_condition` is a spec's own condition (srgan.condition).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import special
from scipy.signal import fftconvolve

from srgan import UserError
from srgan.condition import Condition
from srgan.config import DegradeConfig, DegradeRound

KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = {"area": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR,
                "bicubic": Image.Resampling.BICUBIC}
FINAL_SINC_SIZE = 21


# ---------------------------------------------------------------- kernels: pure functions

def _grid(size: int) -> np.ndarray:
    """(size, size, 2) offsets (x, y) from the centre of an odd `size` kernel; y grows down the rows."""
    if size % 2 == 0 or size < 1:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    ax = np.arange(size, dtype=np.float64) - size // 2
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def _mahalanobis(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """(size, size) squared distance d^T S^-1 d, S the covariance of sigmas (sigma_x, sigma_y) whose
    x axis is turned by `theta` radians from the columns towards the rows."""
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    d = _grid(size)
    return np.einsum("...i,ij,...j->...", d, np.linalg.inv(cov), d)


def _normalised(k: np.ndarray) -> np.ndarray:
    return (k / k.sum()).astype(np.float32)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """Bivariate Gaussian, float32 (size, size), summing to 1; isotropic when `sigma_y` is None."""
    return _normalised(np.exp(-0.5 * _mahalanobis(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """exp(-0.5 (d^T S^-1 d)^beta): beta 1 is the Gaussian, < 1 a sharper peak and longer tails,
    > 1 flatter top and shorter tails. float32 (size, size), summing to 1."""
    return _normalised(np.exp(-0.5 * _mahalanobis(size, sigma_x, sigma_y, theta) ** beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """1 / (1 + (d^T S^-1 d)^beta): a flat top with heavy tails. float32 (size, size), summing to 1."""
    return _normalised(1 / (1 + _mahalanobis(size, sigma_x, sigma_y, theta) ** beta))


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """The ideal circular low-pass filter of `cutoff` radians/px (< pi), cut to size x size: its
    ripples make the ringing and overshoot seen around edges in resized and sharpened photos.
    float32 (size, size), summing to 1."""
    r = np.hypot(*np.moveaxis(_grid(size), -1, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    k[size // 2, size // 2] = cutoff**2 / (4 * np.pi)  # the limit at r = 0
    return _normalised(k)


# ---------------------------------------------------------------- drawing the parameters

def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def random_kernel(rng: np.random.Generator, r: DegradeRound) -> np.ndarray:
    """One blur kernel of a round: a sinc with probability `r.sinc_prob`, else one of KERNELS drawn
    with `r.kernel_probs`; the size is drawn from `r.kernel_sizes`."""
    size = int(rng.choice(r.kernel_sizes))
    if rng.random() < r.sinc_prob:  # small kernels cannot hold a low cutoff's ripples
        return sinc_kernel(size, _uniform(rng, (math.pi / 3 if size < 13 else math.pi / 5, math.pi)))
    kind = KERNELS[rng.choice(len(KERNELS), p=np.asarray(r.kernel_probs) / sum(r.kernel_probs))]
    sx = _uniform(rng, r.sigma)
    sy, theta = (_uniform(rng, r.sigma), _uniform(rng, (-math.pi, math.pi))) if "aniso" in kind else (sx, 0.0)
    if kind.startswith("generalized"):
        return generalized_gaussian_kernel(size, sx, sy, theta, _uniform(rng, r.beta_gaussian))
    if kind.startswith("plateau"):
        return plateau_kernel(size, sx, sy, theta, _uniform(rng, r.beta_plateau))
    return gaussian_kernel(size, sx, sy, theta)


# ---------------------------------------------------------------- operations on float32 (H, W, 3) in [0, 1]

def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """`img` filtered by `kernel`, borders reflected (as Real-ESRGAN's filter2D)."""
    p = kernel.shape[0] // 2
    mode = "reflect" if min(img.shape[:2]) > p else "symmetric"  # reflect needs more pixels than the pad
    padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode=mode)
    return fftconvolve(padded, kernel[:, :, None], mode="valid", axes=(0, 1)).astype(np.float32)


def resize(img: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """`img` resized to (height, width) by Pillow's `mode` filter (area, bilinear or bicubic)."""
    if img.shape[:2] == (height, width):
        return img
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c]), "F").resize(
        (width, height), RESIZE_MODES[mode])) for c in range(img.shape[2])]
    return np.stack(planes, axis=-1)


def gaussian_noise(img: np.ndarray, sigma: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of `sigma` (0-255 scale), one plane for all channels when `gray`."""
    shape = (*img.shape[:2], 1) if gray else img.shape
    return img + rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma / 255)


def poisson_noise(img: np.ndarray, scale: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Shot noise (Real-ESRGAN's): counts ~ Poisson(intensity x levels), levels the image's distinct
    grey levels rounded up to a power of two; the noise is scaled by `scale`. `gray`: drawn on the
    luma, the same for all channels."""
    base = img @ np.float32([0.299, 0.587, 0.114]) if gray else img
    quantised = np.clip(np.round(base * 255), 0, 255)
    levels = 2 ** math.ceil(math.log2(max(np.count_nonzero(np.bincount(quantised.astype(np.int64).ravel())), 2)))
    noise = (rng.poisson(quantised / 255 * levels) / levels - quantised / 255).astype(np.float32)
    return img + scale * (noise[..., None] if gray else noise)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """float32 (H, W, 3) in [0, 1] saved as a JPEG of `quality` (1-100) by Pillow: the file's bytes."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, "JPEG", quality=int(quality))
    return buf.getvalue()


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Saved as a JPEG of `quality` (1-100) by Pillow, and decoded again (float32 in [0, 1])."""
    return np.asarray(Image.open(io.BytesIO(encode_jpeg(img, quality))).convert("RGB"), dtype=np.float32) / 255


# ---------------------------------------------------------------- the training pipeline

def _noise(img: np.ndarray, r: DegradeRound, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Noise of the round, and its sigma if Gaussian (shot noise, whose level follows the
    intensity, has no one sigma: 0)."""
    gray = rng.random() < r.gray_noise_prob
    if rng.random() < r.gaussian_noise_prob:
        sigma = _uniform(rng, r.noise_sigma)
        return gaussian_noise(img, sigma, gray, rng), sigma
    return poisson_noise(img, _uniform(rng, r.poisson_scale), gray, rng), 0.0


def _random_resize(img: np.ndarray, r: DegradeRound, base: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Resize to `base` (H, W) times a factor drawn as up (1 to max), down (min to 1) or kept (1)."""
    kind = rng.choice(3, p=np.asarray(r.resize_probs) / sum(r.resize_probs))  # up, down, keep
    factor = (_uniform(rng, (1, r.resize_range[1])), _uniform(rng, (r.resize_range[0], 1)), 1.0)[kind]
    mode = str(rng.choice(list(RESIZE_MODES)))
    return resize(img, max(int(base[0] * factor), 1), max(int(base[1] * factor), 1), mode)


def _round(img: np.ndarray, r: DegradeRound, base: tuple[int, int], rng: np.random.Generator
           ) -> tuple[np.ndarray, Condition]:
    """One round, and the condition it leaves: its Gaussian noise sigma and, JPEG being its last
    step, its JPEG quality."""
    sigma, quality = 0.0, None
    if rng.random() >= r.prob:
        return img, Condition()
    if rng.random() < r.blur_prob:
        img = blur(img, random_kernel(rng, r))
    img = _random_resize(img, r, base, rng)
    if rng.random() < r.noise_prob:
        img, sigma = _noise(img, r, rng)
    if rng.random() < r.jpeg_prob:
        quality = int(rng.integers(*r.jpeg_quality, endpoint=True))
        img = jpeg(np.clip(img, 0, 1), quality)
    return img, Condition(quality, round(sigma, 1))


def degrade(hr: np.ndarray, cfg: DegradeConfig, scale: int, rng: np.random.Generator
            ) -> tuple[np.ndarray, Condition]:
    """One draw of the high-order pipeline (module docstring) from an HR crop to its LR.

    Args:
        hr: uint8 (H, W, 3), H and W multiples of `scale`.
        cfg: the ranges and probabilities of each round.
        rng: every draw comes from it: the same state gives the same LR.

    Returns:
        uint8 (H/scale, W/scale, 3), and its condition from the draws: the final JPEG's quality
        where the JPEG is the last step (a JPEG shrunk afterwards leaves no 8 px blocks: no JPEG),
        and the Gaussian noise sigma of round 2, drawn near LR size (round 1's is at HR size, and
        the shrink to LR averages it away).
    """
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    img, _ = _round(hr.astype(np.float32) / 255, cfg.first, hr.shape[:2], rng)
    img, second = _round(img, cfg.second, (h, w), rng)
    sinc = (sinc_kernel(FINAL_SINC_SIZE, _uniform(rng, (math.pi / 3, math.pi)))
            if rng.random() < cfg.final_sinc_prob else None)
    mode, quality = str(rng.choice(list(RESIZE_MODES))), int(rng.integers(*cfg.final_jpeg_quality, endpoint=True))

    def shrink(x: np.ndarray) -> np.ndarray:
        x = resize(x, h, w, mode)
        return blur(x, sinc) if sinc is not None else x
    noise = Condition(noise_sigma=second.noise_sigma)
    if rng.random() >= cfg.final_jpeg_prob:
        return to_uint8(shrink(img)), noise
    if rng.random() < 0.5:
        return to_uint8(jpeg(np.clip(shrink(img), 0, 1), quality)), Condition(quality, noise.noise_sigma)
    return to_uint8(shrink(jpeg(img, quality))), noise


def photo_round(lr: np.ndarray, r: DegradeRound, rng: np.random.Generator) -> tuple[np.ndarray, Condition]:
    """One round of `r` on a clean uint8 LR (h, w, 3) at its own scale (blur sigmas in LR px;
    `r.resize_probs` should keep the size): the LR of a downsized photo, then blurred, noisy or saved
    as JPEG. uint8 (h, w, 3), and its condition: the round's Gaussian noise sigma and JPEG quality."""
    img, condition = _round(lr.astype(np.float32) / 255, r, lr.shape[:2], rng)
    return to_uint8(img), condition


# ---------------------------------------------------------------- degraded test sets

class SpecError(UserError):
    """A --degrade spec that cannot be read."""


@dataclass(frozen=True)
class Spec:
    """A parsed --degrade spec: `ops` [(name, value)] applied in order to the LR image, or a
    `realworld` seed (the training pipeline applied to the HR image)."""

    text: str
    ops: tuple[tuple[str, float], ...] = ()
    realworld: int | None = None


_OPS = {"jpeg": (1, 100), "noise": (0, 255), "blur": (0.1, 20)}  # name -> allowed value range


def parse_spec(text: str) -> Spec:
    """`jpeg:75`, `noise:10`, `blur:1.5+jpeg:60` or `realworld:0`; raises SpecError naming the part."""
    m = re.fullmatch(r"realworld:(\d+)", text.strip())
    if m:
        return Spec(text.strip(), realworld=int(m.group(1)))
    ops = []
    for part in text.strip().split("+"):
        name, _, value = part.partition(":")
        if name not in _OPS:
            raise SpecError(f"--degrade {text}: {part!r} is not one of jpeg:Q, noise:SIGMA, blur:SIGMA, realworld:SEED")
        lo, hi = _OPS[name]
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not lo <= number <= hi or (name == "jpeg" and not number.is_integer()):
            raise SpecError(f"--degrade {text}: {name} takes a {'whole ' if name == 'jpeg' else ''}number from "
                            f"{lo:g} to {hi:g}, got {value!r}")
        ops.append((name, number))
    return Spec(text.strip(), tuple(ops))


def spec_rng(spec: Spec, name: str) -> np.random.Generator:
    """The random stream of `spec` for the image called `name`: the same every run, on every machine."""
    digest = hashlib.sha256(f"{spec.text}\0{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def degrade_lr_file(lr: np.ndarray, spec: Spec, name: str) -> bytes:
    """A benchmark's uint8 LR (h, w, 3) degraded by `spec`'s ops in order (not `realworld`: see
    `degrade`), as the file a user would have: the JPEG itself where the last op saves one, else a
    PNG. `blur:SIGMA` is an isotropic Gaussian of SIGMA LR px (kernel 2 ceil(3 SIGMA) + 1),
    `noise:SIGMA` Gaussian colour noise of SIGMA grey levels, `jpeg:Q` Pillow's JPEG at quality Q."""
    rng, img = spec_rng(spec, name), lr.astype(np.float32) / 255
    for i, (op, value) in enumerate(spec.ops):
        if op == "blur":
            img = blur(img, gaussian_kernel(2 * math.ceil(3 * value) + 1, value))
        elif op == "noise":
            img = gaussian_noise(img, value, False, rng)
        elif i == len(spec.ops) - 1:
            return encode_jpeg(img, int(value))
        else:
            img = jpeg(np.clip(img, 0, 1), int(value))
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, "PNG")
    return buf.getvalue()


def degrade_lr(lr: np.ndarray, spec: Spec, name: str) -> np.ndarray:
    """The pixels of `degrade_lr_file`: uint8 (h, w, 3)."""
    return np.asarray(Image.open(io.BytesIO(degrade_lr_file(lr, spec, name))).convert("RGB"))


def spec_condition(spec: Spec) -> Condition:
    """The condition `spec`'s ops leave (not `realworld`: its draws tell theirs, see `degrade`): the
    quality of its last JPEG, and its noise (sigmas added in quadrature); blur is not a condition."""
    qualities = [int(v) for op, v in spec.ops if op == "jpeg"]
    sigma = math.sqrt(sum(v * v for op, v in spec.ops if op == "noise"))
    return Condition(qualities[-1] if qualities else None, round(sigma, 1))
