"""The project's one image loader and writer (NumPy and Pillow only: no torch to import).

Decoding applies EXIF orientation, converts every Pillow mode explicitly to 8-bit RGB (plus an
alpha plane where the source has one), refuses images above a pixel limit before decoding them
(decompression bombs) and raises `ImageError` naming the input and the problem. Nothing outside
this module opens an image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from srgan import UserError

DEFAULT_MAX_PIXELS = 50_000_000  # about a 8K x 6K photo; larger is refused as a possible bomb
IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}  # what a folder scan picks up

# Why an image was refused; callers map these to HTTP codes or manifest reasons.
EMPTY, UNREADABLE, NOT_AN_IMAGE, CORRUPT, TOO_MANY_PIXELS, MULTI_FRAME, UNSUPPORTED = (
    "empty", "unreadable", "not_an_image", "corrupt", "too_many_pixels", "multi_frame", "unsupported")


class ImageError(UserError):
    """An input that cannot be used as an image; `reason` is one of the codes above."""

    def __init__(self, name: str, problem: str, reason: str):
        super().__init__(f"{name}: {problem}")
        self.name, self.problem, self.reason = name, problem, reason


@dataclass(frozen=True)
class Decoded:
    """A decoded image: `rgb` uint8 (H, W, 3); `alpha` uint8 (H, W) or None; `grayscale` if the
    source had no colour (its three RGB planes are then equal)."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    grayscale: bool


_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def _to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit and float single-channel modes to L: 16-bit maps 65535 -> 255."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        arr = arr * 255.0 if arr.max(initial=0) <= 1.0 else arr
    else:
        arr = arr / 257.0
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "L")


def _convert(img: Image.Image, name: str) -> Decoded:
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    alpha = np.asarray(img.getchannel("A")) if img.mode in _ALPHA_MODES else None
    if img.mode in {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}:
        img = _to_8bit(img)
    try:
        rgb = np.asarray(img.convert("RGB"))  # L, 1, LA, RGBA, CMYK, YCbCr, LAB, HSV -> RGB
    except (ValueError, OSError) as e:
        raise ImageError(name, f"unsupported image mode {mode}: {e}", UNSUPPORTED) from e
    return Decoded(rgb=np.ascontiguousarray(rgb), alpha=alpha, grayscale=mode in _GRAY_MODES)


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Decode encoded image bytes (any Pillow format) into a `Decoded`.

    Raises:
        ImageError: empty, not an image, truncated/corrupt, animated or multi-page, or more
            than `max_pixels` pixels (checked from the header, before decoding).
    """
    if not data:
        raise ImageError(name, "empty file (0 bytes)", EMPTY)
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(name, f"{w}x{h} = {w * h:,} pixels is over the limit of "
                                       f"{max_pixels:,} (possible decompression bomb)", TOO_MANY_PIXELS)
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                raise ImageError(name, f"animated or multi-page image ({frames} frames) is not supported",
                                 MULTI_FRAME)
            img.load()
            return _convert(ImageOps.exif_transpose(img), name)
    except Image.DecompressionBombError as e:
        raise ImageError(name, f"possible decompression bomb: {e}", TOO_MANY_PIXELS) from e
    except UnidentifiedImageError as e:
        raise ImageError(name, "not a recognised image format", NOT_AN_IMAGE) from e
    except (OSError, SyntaxError, EOFError, ValueError) as e:
        if isinstance(e, ImageError):
            raise
        raise ImageError(name, f"truncated or corrupt image data ({e})", CORRUPT) from e


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(str(path), f"cannot read file ({e.strerror or e})", UNREADABLE) from e


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); alpha is dropped. Raises ImageError."""
    return decode_image(read_bytes(path), str(path), max_pixels).rgb


def encode_image(rgb: np.ndarray, fmt: str = "png", quality: int = 95,
                 alpha: np.ndarray | None = None, grayscale: bool = False) -> bytes:
    """Encode uint8 RGB (H, W, 3) [+ alpha (H, W)] as png, jpeg or webp bytes (jpeg drops alpha;
    webp has no grayscale mode, so grayscale with alpha goes out as RGBA)."""
    keep_gray = grayscale and not (alpha is not None and fmt == "webp")
    img = Image.fromarray(rgb[..., 0], "L") if keep_gray else Image.fromarray(rgb, "RGB")
    if alpha is not None and fmt != "jpeg":
        img.putalpha(Image.fromarray(alpha, "L"))
    buf = io.BytesIO()
    img.save(buf, format=fmt.upper(), quality=quality)
    return buf.getvalue()


def save_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write uint8 RGB (H, W, 3); the format follows the file's extension."""
    Image.fromarray(rgb, "RGB").save(path)
