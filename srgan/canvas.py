"""The output of one upscale, assembled tile by tile in Pillow's own pixel storage.

A 4 MP input becomes a 64 MP output: 192 MB as a uint8 NumPy array, and Pillow keeps RGB in 4
bytes a pixel, so an output built in NumPy and then handed to the encoder costs both (448 MB),
plus every full-size float copy on the way (bicubic, alpha, grayscale: 2.78 GB measured for a
1 MP input before this module). The canvas is the output's only full-size copy:

    Canvas(source, scale, fmt)   a Pillow image in the output's final mode: L, LA or RGB
    .paste(tile, sr_core)        one SR core (uint8 (h*s, w*s, 3)) as it finishes; gray for a gray source
    .paste_bicubic(stop)         the bicubic upscale of the source, tile by tile (`method=bicubic`)
    .finish(stop)                the alpha plane, bicubic tile by tile, put in place (RGB -> RGBA
                                 reuses the same 4-byte storage); returns the image to encode

Bicubic by tiles is exact: MATLAB's x4 cubic kernel reads 2 px either side of a sample, so a
window with `BICUBIC_PAD` px of context upscales its core exactly as the whole image would
(tests/core/test_canvas.py). Peak memory per tile is imresize's float64 work on one window.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
from PIL import Image

from srgan.bicubic import imresize
from srgan.images import Decoded
from srgan.metrics import rgb_to_gray
from srgan.tiling import Tile, core, cut, plan_tiles

BICUBIC_TILE = 64  # LR px per bicubic core: imresize's work on a 72 px window is ~20 MB at x4
BICUBIC_PAD = 4  # LR px of context: the kernel's 2 px reach, with a margin


def bytes_per_input_pixel(scale: int) -> int:
    """Peak bytes a canvas costs per input pixel: the image (Pillow stores L in 1 byte a pixel and
    LA, RGB, RGBA in 4) plus the alpha plane (1 byte) while it is put in place."""
    return 5 * scale * scale


def bicubic_work_bytes(scale: int) -> int:
    """Peak bytes of imresize's float64 work on one bicubic window, whatever the image's size: its
    second pass gathers 6 taps for every output value (6 x 8 B x 3 channels) and writes a few
    full-window float64 arrays (4 more): ~20 MB at x4 for a 72 px window, ~77 MB for 136 px."""
    side = (BICUBIC_TILE + 2 * BICUBIC_PAD) * scale
    return (6 + 4) * 8 * 3 * side * side


def bicubic_tiles(plane: np.ndarray, scale: int, stop: threading.Event | None = None
                  ) -> Iterator[tuple[Tile, np.ndarray]]:
    """(tile, its upscaled core) covering uint8 `plane` (H, W) or (H, W, C), in raster order; the
    cores tile the output of `imresize(plane, scale)` exactly. Ends early once `stop` is set."""
    for t in plan_tiles(plane.shape[0], plane.shape[1], BICUBIC_TILE, BICUBIC_PAD):
        if stop is not None and stop.is_set():
            return
        yield t, core(imresize(cut(plane, t), scale), t, scale)


class Canvas:
    """The output image of one upscale of `source` by `scale`, to be written as `fmt`.

    Its mode is the one the encoder writes, so encoding copies nothing: L for a grayscale
    source (LA with alpha), RGB otherwise (RGBA once `finish` puts the alpha in). jpeg drops
    alpha, so no alpha is upscaled for it; webp has no grayscale mode, so gray goes out as RGB.
    Not thread-safe: one request fills one canvas.
    """

    def __init__(self, source: Decoded, scale: int, fmt: str):
        self.source, self.scale = source, scale
        self.gray_out = source.grayscale and fmt != "webp"
        self.alpha = source.alpha if fmt != "jpeg" else None
        h, w = source.rgb.shape[:2]
        mode = ("LA" if self.alpha is not None else "L") if self.gray_out else "RGB"
        self.image = Image.new(mode, (w * scale, h * scale))

    def paste(self, t: Tile, sr_core: np.ndarray) -> None:
        """Put the upscaled core of tile `t` (uint8 (core_h*s, core_w*s, 3)) in place."""
        px = sr_core
        if self.source.grayscale:  # back to one plane: the SR planes of a gray source differ slightly
            gray = rgb_to_gray(sr_core)
            px = gray if self.gray_out else np.repeat(gray[..., None], 3, axis=2)
        self._put(self.image, t, px)

    def _put(self, image: Image.Image, t: Tile, px: np.ndarray) -> None:
        image.paste(Image.fromarray(np.ascontiguousarray(px)), (t.core_x * self.scale, t.core_y * self.scale))

    def paste_bicubic(self, stop: threading.Event | None = None) -> None:
        """Fill the canvas with the bicubic upscale of the source (MATLAB imresize), tile by tile."""
        for t, c in bicubic_tiles(self.source.rgb, self.scale, stop):
            self.paste(t, c)

    def finish(self, stop: threading.Event | None = None) -> Image.Image:
        """Add the source's alpha plane, bicubic-upscaled tile by tile; the image to encode."""
        if self.alpha is not None:
            plane = Image.new("L", self.image.size)
            for t, c in bicubic_tiles(self.alpha, self.scale, stop):
                self._put(plane, t, c)
            self.image.putalpha(plane)  # RGB -> RGBA in place: Pillow stores both in 4 bytes a pixel
        return self.image
