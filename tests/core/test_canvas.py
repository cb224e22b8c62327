"""The output canvas: bicubic by tiles is exactly MATLAB imresize of the whole image, alpha and
grayscale are kept in the mode each format writes, and SR cores land where their tiles say."""

import numpy as np
import pytest

from srgan.bicubic import imresize
from srgan.canvas import BICUBIC_TILE, Canvas, bicubic_tiles
from srgan.images import Decoded
from srgan.metrics import rgb_to_gray
from srgan.tiling import core, cut, plan_tiles


@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (BICUBIC_TILE + 9, 2 * BICUBIC_TILE + 3), (301, 257)])
def test_bicubic_by_tiles_equals_the_whole_image(rng, shape):
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, shape, dtype=np.uint8)
    canvas = Canvas(Decoded(rgb, alpha, False), 4, "png")
    canvas.paste_bicubic()
    out = np.asarray(canvas.finish())
    assert out.shape == (shape[0] * 4, shape[1] * 4, 4)
    assert np.array_equal(out[..., :3], imresize(rgb, 4))
    assert np.array_equal(out[..., 3], imresize(alpha, 4))


def test_bicubic_tiles_stop_when_told(rng):
    import threading

    stop = threading.Event()
    tiles = bicubic_tiles(rng.integers(0, 256, (300, 300), dtype=np.uint8), 4, stop)
    next(tiles)
    stop.set()
    assert list(tiles) == []


@pytest.mark.parametrize("fmt, alpha, gray, mode", [
    ("png", False, False, "RGB"), ("png", True, False, "RGBA"), ("png", False, True, "L"), ("png", True, True, "LA"),
    ("jpeg", True, False, "RGB"), ("jpeg", True, True, "L"), ("webp", True, True, "RGBA"), ("webp", False, True, "RGB"),
])
def test_canvas_mode_is_the_one_the_format_writes(rng, fmt, alpha, gray, mode):
    plane = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    rgb = np.repeat(plane[..., None], 3, axis=2) if gray else rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    canvas = Canvas(Decoded(rgb, plane if alpha else None, gray), 2, fmt)
    canvas.paste_bicubic()
    assert canvas.finish().mode == mode


def test_sr_cores_are_pasted_where_their_tiles_say(rng):
    lr = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    canvas = Canvas(Decoded(lr, None, True), 4, "png")  # a gray source: cores made gray as they land
    fake_sr = imresize(lr, 4)  # any "model" will do: the canvas only places its output
    for t in reversed(plan_tiles(37, 50, 16, 4)):  # in any order
        canvas.paste(t, core(imresize(cut(lr, t), 4), t, 4))
    assert np.array_equal(np.asarray(canvas.finish()), rgb_to_gray(fake_sr))
