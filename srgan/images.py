"""The project's one image loader and writer (NumPy and Pillow only: no torch to import).

Decoding applies EXIF orientation, converts every Pillow mode explicitly to 8-bit RGB (plus an
alpha plane where the source has one), refuses images above a pixel or side limit before decoding
them (decompression bombs, 4,000,000 x 1 strips), opens only the formats in `DECODE_FORMATS`, and
raises `ImageError` naming the input and the problem for anything a decoder raises: a bad file is
the user's input, never a crash. Encoding checks the output format's size limits first
(`check_encodable`), so a refusal comes before any work is spent. Nothing outside this module
opens an image. Beside the pixels, `Decoded` keeps what the file says of its own compression (its
format, a JPEG's quantization tables and chroma subsampling, whether a WebP is lossless): what
`srgan.condition` reads an input's condition from.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from srgan import UserError

DEFAULT_MAX_PIXELS = 50_000_000  # about a 8K x 6K photo; larger is refused as a possible bomb
IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}  # what a folder scan picks up

# Pillow opens only these (its other plugins, EPS through Ghostscript among them, are attack surface
# for no use here): the folder scan's suffixes, plus GIF, which browsers upload (one frame only).
DECODE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
# The largest side each output format can hold: libjpeg's JPEG_MAX_DIMENSION, libwebp's 14-bit
# sizes; PNG stores 31-bit sizes.
MAX_OUTPUT_SIDE = {"png": 2**31 - 1, "jpeg": 65_500, "webp": 16_383}

# Why an image was refused; callers map these to HTTP codes or manifest reasons.
EMPTY, UNREADABLE, NOT_AN_IMAGE, CORRUPT, TOO_MANY_PIXELS, MULTI_FRAME, UNSUPPORTED = (
    "empty", "unreadable", "not_an_image", "corrupt", "too_many_pixels", "multi_frame", "unsupported")
SIDE_TOO_LONG, TOO_LARGE_FOR_FORMAT = "side_too_long", "too_large_for_format"


class ImageError(UserError):
    """An input that cannot be used as an image; `reason` is one of the codes above."""

    def __init__(self, name: str, problem: str, reason: str):
        super().__init__(f"{name}: {problem}")
        self.name, self.problem, self.reason = name, problem, reason


@dataclass(frozen=True)
class JpegInfo:
    """What a JPEG file's header says of its compression.

    `tables`: the quantization tables by table id (0 luma, 1 chroma, ...), each 64 ints (1-255, or up
    to 65535 for 16-bit tables) in natural row-major order, (0,0) first then along the row: the DQT
    segment stores them in zigzag order and Pillow's `img.quantization` gives them de-zigzagged.
    `subsampling`: chroma subsampling as `PIL.JpegImagePlugin.get_sampling` says it: 0 4:4:4,
    1 4:2:2, 2 4:2:0, -1 unknown (grayscale, CMYK, or another layout).
    """

    tables: tuple[tuple[int, ...], ...]
    subsampling: int


@dataclass(frozen=True)
class Decoded:
    """A decoded image: `rgb` uint8 (H, W, 3); `alpha` uint8 (H, W) or None; `grayscale` if the
    source had no colour (its three RGB planes are then equal). `format` is Pillow's name of the
    source's format ("JPEG", "PNG", "WEBP", ...; None for pixels made in memory), `jpeg` a JPEG's
    header (`JpegInfo`), and `webp_lossless` True for a lossless (VP8L) WebP, False for a lossy (VP8)
    one, None for any other format."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    grayscale: bool
    format: str | None = None
    jpeg: JpegInfo | None = None
    webp_lossless: bool | None = None


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


def _jpeg_info(img: Image.Image) -> JpegInfo | None:
    tables = getattr(img, "quantization", None)  # only JPEG files have one
    if not tables:
        return None
    return JpegInfo(tuple(tuple(int(v) for v in tables[k]) for k in sorted(tables)),
                    JpegImagePlugin.get_sampling(img))


def _webp_lossless(data: bytes) -> bool | None:
    """Walk the RIFF chunks to the image bitstream: VP8L is lossless, VP8 lossy (Pillow does not
    say which). None if neither is found."""
    pos = 12  # past "RIFF", the size, "WEBP"
    while pos + 8 <= len(data):
        fourcc, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return None


def _check_size(img: Image.Image, name: str, max_pixels: int, max_side: int | None) -> None:
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(name, f"{w}x{h} = {w * h:,} pixels is over the limit of "
                               f"{max_pixels:,} (possible decompression bomb)", TOO_MANY_PIXELS)
    if max_side is not None and max(w, h) > max_side:
        raise ImageError(name, f"{w}x{h}: a side of {max(w, h):,} px is over the limit of {max_side:,} px",
                         SIDE_TOO_LONG)


def _open(data: bytes, name: str) -> Image.Image:
    if not data:
        raise ImageError(name, "empty file (0 bytes)", EMPTY)
    try:
        return Image.open(io.BytesIO(data), formats=DECODE_FORMATS)
    except UnidentifiedImageError as e:
        raise ImageError(name, f"not an image in a supported format ({', '.join(DECODE_FORMATS)})",
                         NOT_AN_IMAGE) from e
    except Image.DecompressionBombError as e:
        raise ImageError(name, f"possible decompression bomb: {e}", TOO_MANY_PIXELS) from e
    except Exception as e:  # a header Pillow cannot parse, whatever it raises
        raise _corrupt(name, e) from e


def _kind(e: Exception) -> str:
    """The exception's name as a reader knows it: ValueError, struct.error."""
    module = type(e).__module__
    return type(e).__qualname__ if module == "builtins" else f"{module}.{type(e).__qualname__}"


def _corrupt(name: str, e: Exception) -> ImageError:
    return ImageError(name, f"truncated or corrupt image data ({_kind(e)}: {e})", CORRUPT)


def image_size(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS,
               max_side: int | None = None) -> tuple[int, int]:
    """(width, height) from the header alone, with the checks `decode_image` makes before decoding;
    lets a caller budget memory before the pixels exist. Raises ImageError."""
    with _open(data, name) as img:
        _check_size(img, name, max_pixels, max_side)
        return img.size


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_side: int | None = None) -> Decoded:
    """Decode encoded image bytes (one of `DECODE_FORMATS`) into a `Decoded`.

    Raises:
        ImageError: empty, not an image, truncated/corrupt (anything the decoder raises), animated
            or multi-page, more than `max_pixels` pixels or a side over `max_side` px (both checked
            from the header, before decoding).
    """
    with _open(data, name) as img:
        _check_size(img, name, max_pixels, max_side)
        try:
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                raise ImageError(name, f"animated or multi-page image ({frames} frames) is not supported",
                                 MULTI_FRAME)
            img.load()
            try:
                upright = ImageOps.exif_transpose(img)
            except Exception as e:  # struct.error, TypeError, ... from a broken EXIF block
                raise ImageError(name, f"unreadable EXIF metadata ({_kind(e)}: {e})", CORRUPT) from e
            decoded = _convert(upright, name)
            lossless = _webp_lossless(data) if img.format == "WEBP" else None
            return replace(decoded, format=img.format, jpeg=_jpeg_info(img), webp_lossless=lossless)
        except (ImageError, MemoryError):
            raise
        except Image.DecompressionBombError as e:
            raise ImageError(name, f"possible decompression bomb: {e}", TOO_MANY_PIXELS) from e
        except Exception as e:  # TypeError from a mangled TIFF's frame count, OSError, SyntaxError, ...
            raise _corrupt(name, e) from e


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(str(path), f"cannot read file ({e.strerror or e})", UNREADABLE) from e


def find_images(folder: str | Path) -> list[Path]:
    """The image files under `folder` (recursive, IMAGE_SUFFIXES), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); alpha is dropped. Raises ImageError."""
    return decode_image(read_bytes(path), str(path), max_pixels).rgb


def check_encodable(width: int, height: int, fmt: str, name: str = "output") -> None:
    """Raise ImageError (TOO_LARGE_FOR_FORMAT) if `fmt` cannot hold a width x height image; callers
    check before spending work on an image they could not write."""
    limit = MAX_OUTPUT_SIDE[fmt]
    if max(width, height) > limit:
        raise ImageError(name, f"a {width}x{height} image is over the {fmt} limit of {limit:,} px per side; "
                               "ask for png, or send a smaller image", TOO_LARGE_FOR_FORMAT)


def to_pil(rgb: np.ndarray, fmt: str = "png", alpha: np.ndarray | None = None,
           grayscale: bool = False) -> Image.Image:
    """The Pillow image `write_image` writes for uint8 RGB (H, W, 3) [+ alpha (H, W)] in `fmt`: jpeg
    drops alpha; webp has no grayscale mode, so grayscale with alpha goes out as RGBA."""
    keep_gray = grayscale and not (alpha is not None and fmt == "webp")
    img = Image.fromarray(rgb[..., 0], "L") if keep_gray else Image.fromarray(rgb, "RGB")
    if alpha is not None and fmt != "jpeg":
        img.putalpha(Image.fromarray(alpha, "L"))
    return img


def write_image(fp: BinaryIO, img: Image.Image, fmt: str = "png", quality: int = 95, name: str = "output") -> None:
    """Encode a Pillow image as png, jpeg or webp into the binary file `fp`, as the encoder produces
    it (png and jpeg write as they go: a file or a stream never holds the whole encoding twice).
    Raises ImageError if the format cannot hold the image."""
    check_encodable(*img.size, fmt, name)
    img.save(fp, format=fmt.upper(), quality=quality)


def encode_image(rgb: np.ndarray, fmt: str = "png", quality: int = 95,
                 alpha: np.ndarray | None = None, grayscale: bool = False) -> bytes:
    """Encode uint8 RGB (H, W, 3) [+ alpha (H, W)] as png, jpeg or webp bytes (see `to_pil`)."""
    buf = io.BytesIO()
    write_image(buf, to_pil(rgb, fmt, alpha, grayscale), fmt, quality)
    return buf.getvalue()


def save_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write uint8 RGB (H, W, 3); the format follows the file's extension."""
    Image.fromarray(rgb, "RGB").save(path)
