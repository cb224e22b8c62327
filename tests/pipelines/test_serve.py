"""The Serve app over real HTTP on loopback: correct output, and a 4xx for every kind of bad input."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import BENCHMARKS, bomb_png, encode, free_port
from srgan.checkpoint import save_checkpoint
from srgan.config import load_config
from srgan.images import Decoded, decode_image, load_image
from srgan.inference import upscale, upscale_image
from srgan.models import Generator
from srgan.tiling import receptive_radius

pytestmark = pytest.mark.ray

TILE, MAX_PIXELS, MAX_BODY_MB = 16, 1_000_000, 2
CHROMIUM = "/usr/bin/chromium"  # Debian's package: .ci/run installs it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]



@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cfg = load_config("tiny", overrides=["model.blocks=2"])
    torch.manual_seed(0)
    g = Generator(cfg.model).eval()
    folder = save_checkpoint(tmp_path_factory.mktemp("serve") / "ck", g, cfg)
    return g, str(folder), receptive_radius(cfg.model)


@pytest.fixture(scope="module")
def url(ray_session, model):
    from ray import serve

    from pipelines.serve import Upscaler
    from pipelines.settings import ServeSettings

    _, folder, pad = model
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    settings = ServeSettings(model=folder, tile=TILE, pad=pad, max_pixels=MAX_PIXELS, max_body_mb=MAX_BODY_MB,
                             engine="eager")  # the tests compare with eager fp32 offline
    serve.run(Upscaler.options(ray_actor_options={"num_cpus": 0.5}, autoscaling_config=None, num_replicas=1)
              .bind(settings.__dict__), name="srgan", route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()



def post(url: str, data: bytes, ctype: str = "image/png", query: str = "") -> httpx.Response:
    return httpx.post(f"{url}/v1/upscale{query}", content=data, headers={"content-type": ctype}, timeout=120)


def test_set5_comes_back_4x_and_equal_to_offline(url, model):
    g, _, pad = model
    for path in sorted((BENCHMARKS / "Set5" / "LR_bicubic" / "X4").glob("*.png"))[:3]:
        r = post(url, path.read_bytes())
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        lr = load_image(path)
        out = decode_image(r.content).rgb
        assert out.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)
        offline = upscale_image(g, Decoded(lr, None, False), TILE, pad).rgb
        assert np.abs(out.astype(int) - offline.astype(int)).max() <= 1
        whole = upscale(g, lr)  # pad = receptive radius: tiles equal the whole-image pass
        assert np.abs(out.astype(int) - whole.astype(int)).max() <= 1


def test_multipart_upload_and_formats(url):
    data = (BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "bird.png").read_bytes()
    r = httpx.post(f"{url}/v1/upscale?format=jpeg&quality=80", files={"file": ("bird.png", data, "image/png")},
                   timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (288, 288)
    r = post(url, data, query="?format=webp&method=bicubic")
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).format == "WEBP"


def test_alpha_grayscale_exif_16bit_and_cmyk_are_handled(url):
    rgba = Image.new("RGBA", (10, 12), (200, 10, 10, 77))
    out = Image.open(io.BytesIO(post(url, encode(rgba)).content))
    assert out.mode == "RGBA" and out.size == (40, 48) and out.getpixel((5, 5))[3] == 77
    gray = Image.effect_noise((9, 7), 30).convert("L")
    assert Image.open(io.BytesIO(post(url, encode(gray)).content)).mode == "L"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: 20 x 10 stored, 10 x 20 shown
    r = post(url, encode(Image.new("RGB", (20, 10)), "JPEG", exif=exif), "image/jpeg")
    assert Image.open(io.BytesIO(r.content)).size == (40, 80)
    sixteen = Image.fromarray(np.full((6, 6), 40000, np.uint16))
    assert Image.open(io.BytesIO(post(url, encode(sixteen)).content)).size == (24, 24)
    cmyk = encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")
    assert Image.open(io.BytesIO(post(url, cmyk, "image/jpeg").content)).mode == "RGB"
    tiny = post(url, encode(Image.new("RGB", (1, 1), (9, 9, 9))))
    assert tiny.status_code == 200 and Image.open(io.BytesIO(tiny.content)).size == (4, 4)



def animated_gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), (80 * i, 0, 0)) for i in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


def multipage_tiff() -> bytes:
    pages = [Image.new("RGB", (8, 8), (0, 80 * i, 0)) for i in range(2)]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


GOOD = encode(Image.new("RGB", (8, 8), (1, 2, 3)))
NOISY = encode(Image.effect_noise((64, 64), 60).convert("RGB"))
JPEG = encode(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG")
BAD_REQUESTS = [
    # (name, body, content type, query, status, error code)
    ("empty body", b"", "image/png", "", 400, "empty"),
    ("truncated png", NOISY[: len(NOISY) // 2], "image/png", "", 400, "corrupt"),
    ("truncated jpeg", JPEG[: len(JPEG) // 2], "image/jpeg", "", 400, "corrupt"),
    ("text named png", b"hello, world\n" * 10, "image/png", "", 415, "not_an_image"),
    ("garbage octets", bytes(range(256)) * 8, "application/octet-stream", "", 415, "not_an_image"),
    ("svg document", b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>', "image/svg+xml", "", 415,
     "not_an_image"),
    ("text content type", GOOD, "text/plain", "", 415, "unsupported_content_type"),
    ("json content type", b'{"image": 1}', "application/json", "", 415, "unsupported_content_type"),
    ("no content type", GOOD, "", "", 415, "unsupported_content_type"),
    ("decompression bomb", bomb_png(40000, 40000), "image/png", "", 413, "too_many_pixels"),
    ("huge dimensions", encode(Image.new("1", (1100, 1000))), "image/png", "", 413, "too_many_pixels"),
    ("body too large", b"\0" * (MAX_BODY_MB * 2**20 + 1), "image/png", "", 413, "body_too_large"),
    ("animated gif", animated_gif(), "image/gif", "", 415, "multi_frame"),
    ("multipage tiff", multipage_tiff(), "image/tiff", "", 415, "multi_frame"),
    ("unsupported output format", GOOD, "image/png", "?format=gif", 400, "bad_format"),
    ("quality zero", GOOD, "image/png", "?format=jpeg&quality=0", 400, "bad_quality"),
    ("quality text", GOOD, "image/png", "?quality=high", 400, "bad_quality"),
    ("unknown method", GOOD, "image/png", "?method=magic", 400, "bad_method"),
    ("unknown parameter", GOOD, "image/png", "?scale=8", 400, "unknown_parameter"),
    ("multipart without file", b"--XX\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhi\r\n--XX--\r\n",
     "multipart/form-data; boundary=XX", "", 400, "no_file"),
    ("multipart without boundary", b"whatever", "multipart/form-data", "", 400, "bad_multipart"),
    ("empty multipart file", b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
     b"Content-Type: image/png\r\n\r\n\r\n--XX--\r\n", "multipart/form-data; boundary=XX", "", 400, "empty"),
]


def test_every_bad_request_gets_its_4xx_and_the_server_lives_on(url):
    assert len(BAD_REQUESTS) >= 20
    for name, body, ctype, query, status, code in BAD_REQUESTS:
        r = post(url, body, ctype, query)
        assert r.status_code == status, f"{name}: {r.status_code} {r.text[:200]}"
        err = r.json()
        assert err["error"] == code and err["detail"], name
    r = httpx.get(f"{url}/v1/upscale", timeout=10)
    assert r.status_code == 405
    r = post(url, GOOD)  # still answers, and correctly
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (32, 32)


def test_health_readiness_and_page(url, model):
    assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["scale"] == 4
    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and "/v1/upscale" in page.text


def test_web_page_in_headless_chromium(url, tmp_path):
    """Upload an image through the page in a real Chromium and see the comparison appear."""
    from playwright.sync_api import sync_playwright

    upload = tmp_path / "bird.png"
    upload.write_bytes((BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "bird.png").read_bytes())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.set_input_files("#file", str(upload))
            page.wait_for_selector("#result:not([hidden])", timeout=60_000)
            assert "Done: 288 x 288 px" in page.inner_text("#status")
            assert page.eval_on_selector("#sr", "img => img.naturalWidth") == 288
            assert page.eval_on_selector("#bicubic", "img => img.naturalWidth") == 288
            assert page.get_attribute("#download", "download") == "bird_x4.png"
            page.fill("#slider", "20")
            assert page.eval_on_selector("#bicubic-wrap", "d => d.style.width") == "20%"
            page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"nope"}])
            page.wait_for_selector("#status.error", timeout=30_000)
            assert "415" in page.inner_text("#status")
        finally:
            browser.close()
