"""The one image loader: every bad input gets its documented outcome, named by file."""

import io

import numpy as np
import pytest
from PIL import Image

from helpers import bomb_png, broken_exif_webp, encode, mangled_tiff, strip_png
from srgan import images
from srgan.images import ImageError, check_encodable, decode_image, encode_image, image_size, load_image


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, reason", [
    ("empty.png", b"", images.EMPTY),
    ("text.png", b"hello, I am not an image\n" * 4, images.NOT_AN_IMAGE),
    ("truncated.png", encode(Image.effect_noise((64, 64), 50))[:300], images.CORRUPT),
    ("bomb.png", bomb_png(30000, 30000), images.TOO_MANY_PIXELS),
    ("mangled.tif", mangled_tiff(), images.CORRUPT),  # TypeError from Pillow's frame count
    ("exif.webp", broken_exif_webp(), images.CORRUPT),  # struct.error from exif_transpose
    ("icon.png", encode(Image.new("RGB", (8, 8)), "ICO"), images.NOT_AN_IMAGE),  # a format Pillow may not open
])
def test_bad_files_raise_naming_the_file(tmp_path, name, data, reason):
    path = write(tmp_path, name, data)
    with pytest.raises(ImageError) as err:
        load_image(path)
    assert err.value.reason == reason
    assert str(path) in str(err.value)


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(ImageError, match="cannot read") as err:
        load_image(tmp_path / "nope.png")
    assert err.value.reason == images.UNREADABLE


def test_pixel_limit_is_configurable():
    data = encode(Image.new("RGB", (100, 100)))
    assert decode_image(data, max_pixels=10_000).rgb.shape == (100, 100, 3)
    with pytest.raises(ImageError, match="over the limit"):
        decode_image(data, max_pixels=9_999)


def test_animated_gif_is_refused():
    frames = [Image.new("RGB", (8, 8), (80 * i, 0, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="3 frames") as err:
        decode_image(buf.getvalue(), "anim.gif")
    assert err.value.reason == images.MULTI_FRAME


def test_16bit_png_is_reduced_to_8bit():
    arr = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    out = decode_image(encode(Image.fromarray(arr)))
    assert out.grayscale and out.rgb.dtype == np.uint8
    assert out.rgb[0, :, 0].tolist() == [0, 100, 255]
    assert (out.rgb[..., 0] == out.rgb[..., 2]).all()


def test_cmyk_jpeg_is_converted_to_rgb():
    buf = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(buf, format="JPEG", quality=95)
    out = decode_image(buf.getvalue())
    assert out.rgb.shape == (16, 16, 3)
    r, g, b = out.rgb[8, 8].astype(int)
    assert r > 240 and g < 15 and b < 15  # pure red


def test_palette_with_transparency_keeps_alpha():
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.info["transparency"] = 0
    out = decode_image(encode(img))
    assert out.alpha is not None and out.alpha[0, 0] == 0 and out.alpha[1, 1] == 255
    assert out.rgb[1, 1].tolist() == [255, 0, 0]


def test_la_is_grayscale_with_alpha():
    img = Image.merge("LA", [Image.new("L", (4, 4), 90), Image.new("L", (4, 4), 30)])
    out = decode_image(encode(img))
    assert out.grayscale and out.rgb[0, 0].tolist() == [90, 90, 90] and out.alpha[0, 0] == 30


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (20, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue()).rgb.shape == (20, 10, 3)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_decodes_back(rng, fmt):
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = decode_image(encode_image(rgb, fmt))
    assert out.rgb.shape == rgb.shape


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("grayscale", [False, True])
def test_encode_every_kind_with_alpha(rng, fmt, grayscale):
    rgb = np.repeat(rng.integers(0, 256, (8, 8, 1), dtype=np.uint8), 3, axis=2)
    alpha = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    out = decode_image(encode_image(rgb, fmt, 90, alpha, grayscale))
    assert out.rgb.shape == (8, 8, 3)
    assert (out.alpha is None) == (fmt == "jpeg")


def test_side_limit_is_checked_from_the_header():
    strip = strip_png(4_000_000, 1)  # 4 MP passes a 4 MP pixel cap; as tiles it was 31,250 of them
    with pytest.raises(ImageError, match="4,000,000 px is over the limit of 4,096") as err:
        decode_image(strip, "strip.png", max_pixels=4_000_000, max_side=4096)
    assert err.value.reason == images.SIDE_TOO_LONG
    assert image_size(strip, max_pixels=4_000_000) == (4_000_000, 1)  # no side limit asked: fine


@pytest.mark.parametrize("fmt, side, ok", [("webp", 16_383, True), ("webp", 16_384, False),
                                           ("jpeg", 65_500, True), ("jpeg", 65_501, False), ("png", 100_000, True)])
def test_output_limits_of_each_format(fmt, side, ok):
    if ok:
        check_encodable(side, 8, fmt)
    else:
        with pytest.raises(ImageError, match=f"over the {fmt} limit") as err:
            check_encodable(8, side, fmt)
        assert err.value.reason == images.TOO_LARGE_FOR_FORMAT


def test_encoding_past_a_format_limit_is_an_image_error_before_any_work():
    with pytest.raises(ImageError) as err:
        encode_image(np.zeros((2, 16_800, 3), np.uint8), "webp")  # a 4200x2 upload, x4
    assert err.value.reason == images.TOO_LARGE_FOR_FORMAT
