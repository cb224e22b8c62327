"""The Serve app over real HTTP on loopback: correct output, a 4xx for every kind of bad input,
503 and 504 under overload, health that never waits behind the model, bounded memory."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import (
    BENCHMARKS,
    bomb_png,
    broken_exif_webp,
    conditioned_checkpoint,
    encode,
    free_port,
    mangled_tiff,
    peak_rss,
    reset_peak_rss,
    serve_processes,
    serving_image_python,
    strip_png,
)
from srgan import SHIPPED_MODELS, dial_pair
from srgan.checkpoint import save_checkpoint
from srgan.config import load_config
from srgan.eager import fastest_eager
from srgan.engines import ENGINES
from srgan.images import Decoded, decode_image, load_image
from srgan.inference import upscale, upscale_image
from srgan.models import Generator
from srgan.tiling import receptive_radius

pytestmark = pytest.mark.ray

# The app under test: 400x400 is its largest input (160,000 px, 625 tiles of 16 px).
TILE, MAX_PIXELS, MAX_SIDE, MAX_TILES, MAX_BODY_MB = 16, 160_000, 5000, 640, 2
BIRD = BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "bird.png"  # 72x72
CHROMIUM = "/usr/bin/chromium"  # Debian's package: .ci/run installs it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SMALL_REPLICA = {"ray_actor_options": {"num_cpus": 0.25}, "autoscaling_config": None, "num_replicas": 1}

DIAL_PRECISION = ENGINES[fastest_eager(torch.device("cpu"))].precision  # what the alpha dial runs


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cfg = load_config("tiny", overrides=["model.blocks=2"])
    torch.manual_seed(0)
    g = Generator(cfg.model).eval()
    folder = save_checkpoint(tmp_path_factory.mktemp("serve") / "ck", g, cfg)
    return g, str(folder), receptive_radius(cfg.model)


@pytest.fixture(scope="module")
def serve_port(ray_session):
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()


def deploy(port: int, name: str, settings, upscaler: dict | None = None, ingress: dict | None = None) -> str:
    from ray import serve

    from pipelines.serve import build

    options = {"Upscaler": {**SMALL_REPLICA, **(upscaler or {})}, "Ingress": {**SMALL_REPLICA, **(ingress or {})}}
    serve.run(build(settings, options), name=name, route_prefix=f"/{name}")
    return f"http://127.0.0.1:{port}/{name}"


@pytest.fixture(scope="module")
def url(serve_port, model):
    from pipelines.settings import ServeSettings

    _, folder, pad = model
    settings = ServeSettings(model=folder, tile=TILE, pad=pad, max_pixels=MAX_PIXELS, max_side=MAX_SIDE,
                             max_tiles=MAX_TILES, max_body_mb=MAX_BODY_MB, request_timeout_s=120,
                             engine="eager")  # the tests compare with eager fp32 offline
    return deploy(serve_port, "srgan", settings, upscaler={"max_queued_requests": 64})  # bursts are tested elsewhere


def post(url: str, data: bytes, ctype: str = "image/png", query: str = "", timeout: float = 120) -> httpx.Response:
    return httpx.post(f"{url}/v1/upscale{query}", content=data, headers={"content-type": ctype}, timeout=timeout)


def pixels(r: httpx.Response) -> np.ndarray:
    assert r.status_code == 200, r.text[:300]
    return np.asarray(Image.open(io.BytesIO(r.content)))


def test_set5_comes_back_4x_and_equal_to_offline(url, model):
    g, _, pad = model
    for path in sorted((BENCHMARKS / "Set5" / "LR_bicubic" / "X4").glob("*.png"))[:3]:
        r = post(url, path.read_bytes())
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png" and r.headers["x-scale"] == "4"
        lr = load_image(path)
        out = decode_image(r.content).rgb
        assert out.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)
        offline = np.asarray(upscale_image(g, Decoded(lr, None, False), TILE, pad))
        assert np.abs(out.astype(int) - offline.astype(int)).max() <= 1
        whole = upscale(g, lr)  # pad = receptive radius: tiles equal the whole-image pass
        assert np.abs(out.astype(int) - whole.astype(int)).max() <= 1


def test_multipart_upload_and_formats(url):
    data = BIRD.read_bytes()
    r = httpx.post(f"{url}/v1/upscale?format=jpeg&quality=80", files={"file": ("bird.png", data, "image/png")},
                   timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (288, 288)
    r = post(url, data, query="?format=webp&method=bicubic")
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).format == "WEBP"


def test_bicubic_answer_is_matlab_imresize(url, rng):
    from srgan.bicubic import imresize

    rgba = rng.integers(0, 256, (37, 150, 4), dtype=np.uint8)  # wider than one bicubic tile
    out = pixels(post(url, encode(Image.fromarray(rgba, "RGBA")), query="?method=bicubic"))
    assert np.array_equal(out[..., :3], imresize(rgba[..., :3], 4))
    assert np.array_equal(out[..., 3], imresize(rgba[..., 3], 4))


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


def test_concurrent_requests_of_mixed_sizes_equal_sequential_ones(url, rng):
    """Windows of several shapes from several requests share batches; each answer is its own."""
    sizes = [(8, 8), (20, 37), (45, 30), (64, 64), (5, 90), (33, 33), (70, 41)]
    bodies = [encode(Image.fromarray(rng.integers(0, 256, (*s, 3), dtype=np.uint8))) for s in sizes]
    sequential = [pixels(post(url, b)) for b in bodies]

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as http:
            return await asyncio.gather(*[
                http.post(f"{url}/v1/upscale", content=b, headers={"content-type": "image/png"}) for b in bodies * 3])
    for i, r in enumerate(asyncio.run(together())):
        assert np.array_equal(pixels(r), sequential[i % len(bodies)]), f"request {i}, size {sizes[i % len(sizes)]}"


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
    ("mangled tiff tags", mangled_tiff(), "image/tiff", "", 400, "corrupt"),
    ("webp with a broken exif block", broken_exif_webp(), "image/webp", "", 400, "corrupt"),
    ("text named png", b"hello, world\n" * 10, "image/png", "", 415, "not_an_image"),
    ("garbage octets", bytes(range(256)) * 8, "application/octet-stream", "", 415, "not_an_image"),
    ("svg document", b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>', "image/svg+xml", "", 415,
     "not_an_image"),
    ("icon, a format not opened", encode(Image.new("RGB", (8, 8)), "ICO"), "image/x-icon", "", 415, "not_an_image"),
    ("text content type", GOOD, "text/plain", "", 415, "unsupported_content_type"),
    ("json content type", b'{"image": 1}', "application/json", "", 415, "unsupported_content_type"),
    ("no content type", GOOD, "", "", 415, "unsupported_content_type"),
    ("decompression bomb", bomb_png(40000, 40000), "image/png", "", 413, "too_many_pixels"),
    ("huge dimensions", encode(Image.new("1", (1100, 1000))), "image/png", "", 413, "too_many_pixels"),
    ("4,000,000 x 1", strip_png(4_000_000, 1), "image/png", "", 413, "too_many_pixels"),
    ("a side over the limit", strip_png(MAX_SIDE + 1, 1), "image/png", "", 413, "side_too_long"),
    ("too many tiles", strip_png(800, 200), "image/png", "", 413, "too_many_tiles"),
    ("4200 x 2 to webp", strip_png(4200, 2), "image/png", "?format=webp", 400, "too_large_for_format"),
    ("body too large", b"\0" * (MAX_BODY_MB * 2**20 + 1), "image/png", "", 413, "body_too_large"),
    ("animated gif", animated_gif(), "image/gif", "", 415, "multi_frame"),
    ("multipage tiff", multipage_tiff(), "image/tiff", "", 415, "multi_frame"),
    ("unsupported output format", GOOD, "image/png", "?format=gif", 400, "bad_format"),
    ("quality zero", GOOD, "image/png", "?format=jpeg&quality=0", 400, "bad_quality"),
    ("quality text", GOOD, "image/png", "?quality=high", 400, "bad_quality"),
    ("quality superscript two", GOOD, "image/png", "?quality=%C2%B2", 400, "bad_quality"),
    ("quality with a sign", GOOD, "image/png", "?quality=+95", 400, "bad_quality"),
    ("timeout text", GOOD, "image/png", "?timeout=soon", 400, "bad_timeout"),
    ("timeout zero", GOOD, "image/png", "?timeout=0", 400, "bad_timeout"),
    ("unknown method", GOOD, "image/png", "?method=magic", 400, "bad_method"),
    ("alpha above one", GOOD, "image/png", "?alpha=1.5", 400, "bad_alpha"),
    ("alpha text", GOOD, "image/png", "?alpha=half", 400, "bad_alpha"),
    ("alpha without the shipped pair", GOOD, "image/png", "?alpha=0.5", 400, "alpha_unavailable"),
    ("an empty model", GOOD, "image/png", "?model=", 400, "bad_model"),
    ("unknown model", GOOD, "image/png", "?model=esrgan", 400, "bad_model"),
    ("a model path", GOOD, "image/png", "?model=/etc/passwd", 400, "bad_model"),
    ("a model URI", GOOD, "image/png", "?model=models:/srgan-generator@srgan", 400, "bad_model"),
    ("a model name in another case", GOOD, "image/png", "?model=SRGAN", 400, "bad_model"),
    ("unknown parameter", GOOD, "image/png", "?scale=8", 400, "unknown_parameter"),
    ("repeated parameter", GOOD, "image/png", "?format=png&format=jpeg", 400, "repeated_parameter"),
    ("multipart without file", b"--XX\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhi\r\n--XX--\r\n",
     "multipart/form-data; boundary=XX", "", 400, "no_file"),
    ("multipart without boundary", b"whatever", "multipart/form-data", "", 400, "bad_multipart"),
    ("empty multipart file", b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
     b"Content-Type: image/png\r\n\r\n\r\n--XX--\r\n", "multipart/form-data; boundary=XX", "", 400, "empty"),
]


def test_every_bad_request_gets_its_4xx_at_once_and_the_server_lives_on(url):
    assert len(BAD_REQUESTS) >= 35
    for name, body, ctype, query, status, code in BAD_REQUESTS:
        r = post(url, body, ctype, query, timeout=5)  # a refusal comes before any work: well within 5 s
        assert r.status_code == status, f"{name}: {r.status_code} {r.text[:200]}"
        err = r.json()
        assert err["error"] == code and err["detail"], name
    for method, path in [("GET", "/v1/upscale"), ("GET", "/nowhere")]:
        r = httpx.request(method, f"{url}{path}", timeout=10)
        assert r.status_code in (404, 405) and set(r.json()) == {"error", "detail"}, (method, path)
    r = post(url, GOOD)  # still answers, and correctly
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (32, 32)


def test_a_body_without_content_length_is_cut_off_at_the_limit(url):
    """Chunked uploads declare no size: the limit is enforced while reading, and a small one still works."""
    def chunks(total: int):
        for _ in range(total // 65536 + 1):
            yield b"\0" * 65536

    r = httpx.post(f"{url}/v1/upscale", content=chunks(MAX_BODY_MB * 2**20 + 1), headers={"content-type": "image/png"},
                   timeout=30)
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"
    r = httpx.post(f"{url}/v1/upscale", content=iter([GOOD[:10], GOOD[10:]]), headers={"content-type": "image/png"},
                   timeout=30)
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (32, 32)


def test_a_request_past_its_deadline_gets_504_and_its_work_is_cancelled(url):
    big = encode(Image.effect_noise((400, 400), 60).convert("RGB"))  # 625 tiles: far more than 50 ms of work
    for method in ("sr", "bicubic"):
        r = post(url, big, query=f"?timeout=0.05&method={method}")
        assert r.status_code == 504, r.text
        assert r.json()["error"] == "timeout" and "0.05 s" in r.json()["detail"]
    assert post(url, GOOD).status_code == 200


def test_health_readiness_and_page(url, model):
    assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["scale"] == 4
    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and "v1/upscale" in page.text


def test_a_maximum_size_request_stays_within_its_memory_budget(url, rng):
    """The ingress replica's peak RSS over a 400x400 RGBA upload (the largest this app takes),
    SR and bicubic, stays within what it reserves for it: body + request_bytes(pixels). Before
    the canvas, bicubic alone peaked at 2.78 GB per input megapixel (445 MB here)."""
    from pipelines.serve import request_bytes

    body = encode(Image.fromarray(rng.integers(0, 256, (400, 400, 4), dtype=np.uint8), "RGBA"))
    ingress = serve_processes()["Ingress"]
    for method in ("sr", "bicubic"):
        pixels(post(url, body, query=f"?method={method}"))  # warm: first-use allocations are not the request's
        base = ingress.memory_info().rss
        reset_peak_rss(ingress.pid)
        out = pixels(post(url, body, query=f"?method={method}"))
        assert out.shape == (1600, 1600, 4)
        growth = peak_rss(ingress.pid) - base
        budget = len(body) + request_bytes(400 * 400, 4)
        assert growth <= budget, f"{method}: peak {growth / 2**20:.0f} MiB over a budget of {budget / 2**20:.0f} MiB"


def test_metrics_are_exported(url):
    """The app's metrics reach Ray's Prometheus endpoint (Ray exports them every few seconds)."""
    import ray

    post(url, GOOD, query="?quality=%C2%B2")  # one refusal to count
    port = ray._private.worker._global_node.metrics_export_port
    wanted = {"ray_srgan_images_total", "ray_srgan_tiles_total", "ray_srgan_batch_size_bucket",
              "ray_srgan_queue_wait_seconds_bucket", "ray_srgan_tile_inference_seconds_bucket",
              "ray_srgan_request_seconds_bucket", "ray_srgan_errors_total", "ray_srgan_requests_in_progress",
              "ray_srgan_memory_reserved_bytes"}
    deadline, seen, text = time.monotonic() + 60, set(), ""
    while time.monotonic() < deadline and not (wanted <= seen and 'code="bad_quality"' in text):
        time.sleep(2)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        seen = {line.split("{")[0] for line in text.splitlines() if line.startswith("ray_srgan_")}
    assert wanted <= seen, f"missing: {sorted(wanted - seen)}"
    assert 'code="bad_quality"' in text and 'status="400"' in text


@pytest.fixture(scope="module")
def shipped_url(serve_port):
    """The shipped SRResNet, where `alpha` dials towards the shipped SRGAN."""
    from pipelines.settings import ServeSettings

    return deploy(serve_port, "shipped", ServeSettings(model="default", engine="eager"))


def test_alpha_dials_the_shipped_pair_and_each_alpha_batches_apart(shipped_url):
    from srgan import SHIPPED_MODELS
    from srgan.checkpoint import load_generator, load_interpolated
    from srgan.eager import EagerEngine

    path = BIRD  # one window, the whole image
    lr, alphas = load_image(path), [None, "0", "0.5", "1", "0.5", "0.25"]
    with concurrent.futures.ThreadPoolExecutor(len(alphas)) as pool:  # at once: one batch holds several alphas
        answers = list(pool.map(lambda a: post(shipped_url, path.read_bytes(), query=f"?alpha={a}" if a else ""),
                                alphas))
    for alpha, r in zip(alphas, answers):
        assert r.status_code == 200, r.text
        expected = (upscale(load_generator(SHIPPED_MODELS["default"]), lr) if alpha is None  # the served engine
                    else upscale(EagerEngine(load_interpolated(float(alpha)), DIAL_PRECISION), lr))  # the dial's
        diff = np.abs(decode_image(r.content).rgb.astype(int) - expected.astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05, (alpha, diff.max(), diff.mean())
    dial_ends = [decode_image(answers[i].content).rgb.astype(int) for i in (1, 3)]
    assert np.abs(dial_ends[0] - dial_ends[1]).mean() > 1  # 0 and 1 are two different models
    ready = httpx.get(f"{shipped_url}/readyz", timeout=10).json()
    assert ready["alpha"] is True and ready["model"] == "default" and ready["pair"] == ["default", "srgan"]
    assert ready["dial"] is True
    assert ready["models"] == {m: list(dial_pair(m)) if dial_pair(m) else None for m in SHIPPED_MODELS}


@pytest.fixture
def torch_free_url(serve_port, shipped_int8, tmp_path_factory):
    """The shipped SRResNet, its int8 engine exported once (the session's cache, as the serving
    image's build does), served by an Upscaler whose process cannot import torch: a sitecustomize
    on its PYTHONPATH makes the import fail, as it does in the serving image. Deleted after the
    test: the module's apps share 2 CPUs."""
    import os

    from pipelines.settings import ServeSettings

    blocker = serving_image_python(tmp_path_factory.mktemp("no-torch"))
    env = {"PYTHONPATH": str(blocker), "SRGAN_CACHE": os.environ["SRGAN_CACHE"]}
    yield deploy(serve_port, "slim", ServeSettings(model="default", models=("default",), engine="auto"),
                 upscaler={"ray_actor_options": {"num_cpus": 0.25, "runtime_env": {"env_vars": env}}})
    serve_delete("slim")


def test_a_replica_without_torch_serves_the_exported_engine_and_refuses_the_dial(torch_free_url, shipped_int8):
    ready = httpx.get(f"{torch_free_url}/readyz", timeout=10).json()
    assert ready["dial"] is False and ready["pair"] is None and ready["models"] == {"default": None}, ready
    for path in sorted((BENCHMARKS / "Set5" / "LR_bicubic" / "X4").glob("*.png")):
        r = post(torch_free_url, path.read_bytes())
        assert r.status_code == 200, r.text
        offline = upscale_image(shipped_int8, decode_image(path.read_bytes()), 128, 24)  # the endpoint's tiles
        diff = np.abs(pixels(r).astype(int) - np.asarray(offline).astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05, (path.name, diff.max(), diff.mean())
    r = post(torch_free_url, BIRD.read_bytes(), query="?alpha=0.5")
    assert r.status_code == 400 and r.json()["error"] == "alpha_unavailable" and "srgan-ray:0.1.0-serve" in r.text


def test_model_picks_a_shipped_generator_and_requests_of_each_model_batch_together(url, model):
    """The tiny app offers the shipped models too: each answer is its own model's, though the
    requests of three models come at once (the Upscaler batches per model and shape)."""
    from srgan.checkpoint import load_generator, load_interpolated
    from srgan.eager import EagerEngine

    g, _, pad = model
    image = Decoded(load_image(BIRD), None, False)

    def offline(generator) -> np.ndarray:  # the app's tiling: pad is the tiny model's radius, not theirs
        return np.asarray(upscale_image(generator, image, TILE, pad))
    expected = {None: offline(g), **{m: offline(load_generator(SHIPPED_MODELS[m])) for m in ("default", "srgan")}}
    picks = [None, "default", "srgan"] * 3
    with concurrent.futures.ThreadPoolExecutor(len(picks)) as pool:
        answers = list(pool.map(lambda m: post(url, BIRD.read_bytes(), query=f"?model={m}" if m else ""), picks))
    for m, r in zip(picks, answers):
        diff = np.abs(pixels(r).astype(int) - expected[m].astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05, (m, diff.max(), diff.mean())
    r = post(url, BIRD.read_bytes(), query="?model=srgan&alpha=0")  # alpha dials the named model's pair
    dialled = offline(EagerEngine(load_interpolated(0.0, ("default", "srgan")), DIAL_PRECISION))
    assert np.abs(pixels(r).astype(int) - dialled.astype(int)).mean() < 0.05


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory):
    from srgan.checkpoint import model_config

    g, folder = conditioned_checkpoint(tmp_path_factory.mktemp("serve") / "conditioned", blocks=2)
    return g, str(folder), receptive_radius(model_config(folder))


@pytest.fixture(scope="module")
def cond_url(serve_port, conditioned):
    from pipelines.settings import ServeSettings

    _, folder, pad = conditioned
    free = {"ray_actor_options": {"num_cpus": 0}}  # the module's other apps hold the test cluster's CPUs
    return deploy(serve_port, "conditioned", ServeSettings(model=folder, tile=TILE, pad=pad, engine="eager"),
                  upscaler=free, ingress=free)


def test_a_conditioned_model_is_told_what_the_file_says_or_what_the_query_sets(cond_url, conditioned):
    """The condition is read from each upload (a JPEG's quality from its tables, noise from its
    pixels), the query's jpeg_quality and noise override it, the X-Condition header says what was
    used, and requests told different conditions still batch together and each get their own."""
    from srgan.condition import condition_from_overrides, read_condition

    g, _, pad = conditioned
    lr = Image.fromarray(load_image(BIRD))
    uploads = {"png": encode(lr, "PNG"), "q40": encode(lr, "JPEG", quality=40), "q85": encode(lr, "JPEG", quality=85)}
    asks = [(name, query) for name in uploads for query in ("", "?jpeg_quality=30&noise=8", "?jpeg_quality=none")]
    with concurrent.futures.ThreadPoolExecutor(len(asks)) as pool:  # at once: batches mix conditions
        answers = list(pool.map(lambda a: post(cond_url, uploads[a[0]], "image/jpeg", a[1]), asks))
    outputs = {}
    for (name, query), r in zip(asks, answers):
        decoded = decode_image(uploads[name])
        overrides = dict(item.split("=") for item in query.lstrip("?").split("&")) if query else {}
        told = condition_from_overrides(read_condition(decoded), overrides.get("jpeg_quality"), overrides.get("noise"))
        assert r.headers["x-condition"] == str(told)
        expected = np.asarray(upscale_image(g, decoded, TILE, pad, condition=told))
        outputs[name, query] = pixels(r).astype(int)
        assert np.abs(outputs[name, query] - expected.astype(int)).max() <= 1, (name, query)
    assert read_condition(decode_image(uploads["q40"])).jpeg_quality == pytest.approx(40, abs=5)
    assert np.abs(outputs["q40", ""] - outputs["q40", "?jpeg_quality=none"]).mean() > 1  # what it is told matters
    read = httpx.post(f"{cond_url}/v1/condition", content=uploads["q85"], headers={"content-type": "image/jpeg"},
                      timeout=30).json()
    assert read["jpeg_quality"] == read_condition(decode_image(uploads["q85"])).jpeg_quality
    ready = httpx.get(f"{cond_url}/readyz", timeout=10).json()
    assert ready["conditions"][ready["model"]] == ["jpeg", "noise"]


def test_bad_conditions_get_400_and_a_blind_model_refuses_them(cond_url, url):
    for query in ("?jpeg_quality=0", "?jpeg_quality=101", "?jpeg_quality=seventy", "?noise=-1", "?noise=nan",
                  "?noise=1e9"):
        r = post(cond_url, GOOD, query=query)
        assert r.status_code == 400 and r.json()["error"] == "bad_condition", (query, r.text)
        assert query.split("=")[0].lstrip("?") in r.json()["detail"]  # the message names the parameter
    r = post(url, GOOD, query="?jpeg_quality=75")  # the tiny app's model is blind
    assert r.status_code == 400 and r.json()["error"] == "condition_unavailable"
    assert "x-condition" not in post(url, GOOD).headers


@contextlib.contextmanager
def chromium_page(url: str):
    """The app's web page in a real headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            yield page
        finally:
            browser.close()


def test_web_page_in_headless_chromium(url):
    """Upload an image through the page in a real Chromium and see the comparison appear."""
    with chromium_page(url) as page:
        page.set_input_files("#file", str(BIRD))
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        assert "Done: 288 x 288 px" in page.inner_text("#status")
        assert page.eval_on_selector("#sr", "img => img.naturalWidth") == 288
        assert page.eval_on_selector("#bicubic", "img => img.naturalWidth") == 288
        assert page.get_attribute("#download", "download") == "bird_x4.png"
        page.fill("#slider", "20")
        assert page.eval_on_selector("#bicubic-wrap", "d => d.style.width") == "20%"
        assert page.is_hidden("#dial")  # this app serves no shipped pair to dial between
        page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"nope"}])
        page.wait_for_selector("#status.error", timeout=30_000)
        assert "415" in page.inner_text("#status") and "not_an_image" in page.inner_text("#status")


def test_the_page_shows_what_it_read_and_sends_what_the_user_sets(cond_url):
    with chromium_page(cond_url) as page:
        page.wait_for_selector("#condition:not([hidden])", timeout=30_000)
        jpeg = encode(Image.fromarray(load_image(BIRD)), "JPEG", quality=60)
        page.set_input_files("#file", files=[{"name": "bird.jpg", "mimeType": "image/jpeg", "buffer": jpeg}])
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        assert abs(int(page.input_value("#jpeg")) - 60) <= 5 and "read from the file" in page.inner_text("#condition")
        assert "the model was told jpeg=" in page.inner_text("#status")
        with page.expect_request(lambda r: "jpeg_quality=none" in r.url and "noise=3" in r.url):
            page.fill("#jpeg", "")
            page.fill("#noise", "3")
            page.dispatch_event("#noise", "change")
        page.wait_for_function("document.getElementById('status').textContent.includes('condition you set')",
                               timeout=60_000)
        assert "set by you" in page.inner_text("#condition")


def test_the_pages_dial_upscales_again_at_the_chosen_alpha(shipped_url):
    with chromium_page(shipped_url) as page:
        page.wait_for_selector("#dial:not([hidden])", timeout=30_000)
        assert page.input_value("#alpha") == "0"  # the served SRResNet's end
        page.set_input_files("#file", str(BIRD))
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        first = page.get_attribute("#sr", "src")
        with page.expect_request(lambda r: "alpha=0.75" in r.url):
            page.fill("#alpha", "0.75")  # fires input and change, as a drag that ends there
        page.wait_for_function("document.getElementById('status').textContent.endsWith('alpha 0.75.')",
                               timeout=60_000)  # "Done: ..., alpha 0.75."
        assert page.get_attribute("#sr", "src") != first and page.inner_text("#alpha-value") == "0.75"
        assert page.is_visible("#picker") and page.input_value("#model") == ""  # the served model
        with page.expect_request(lambda r: "model=srgan" in r.url and "alpha" not in r.url):
            page.select_option("#model", "srgan")
        page.wait_for_function("document.getElementById('status').textContent.endsWith('by srgan.')",
                               timeout=60_000)
        assert page.input_value("#alpha") == "1" and "srgan (1)" in page.inner_text("#pair-label")


# ---------------------------------------------------------------- overload

FLOOD_CLIENTS, FLOOD_TIMEOUT_S = 150, 5.0
# Asks GET <url> every 50 ms until its stdin closes, then prints [[start, seconds, status], ...]
# (CLOCK_MONOTONIC: comparable with this process's time.monotonic()). A process of its own: a thread
# here would share the GIL with the flood's 150 clients and the garbage collector of a process that
# has run the whole suite (a gen-2 collection over its ~400,000 objects took 0.25 s in this module
# alone), and time them instead of the server.
PROBE = """
import json, sys, threading, time
import httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
asks = []
with httpx.Client(timeout=60) as http:
    while not stop.is_set():
        t = time.monotonic()
        try:
            status = http.get(sys.argv[1]).status_code
        except httpx.HTTPError as e:
            status = repr(e)
        asks.append((t, time.monotonic() - t, status))
        stop.wait(0.05)
print(json.dumps(asks))
"""


@contextlib.contextmanager
def health_probe(url: str) -> Iterator[list]:
    """Health asked from another process meanwhile; the list fills with [start, seconds, status] at the end."""
    asks: list = []
    proc = subprocess.Popen([sys.executable, "-c", PROBE, f"{url}/healthz"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        yield asks
    finally:
        out, _ = proc.communicate("", timeout=120)
        asks += json.loads(out)


@pytest.fixture(scope="module")
def tight_url(serve_port, model):
    """A second app with small bounds, so that a flood of 150 small requests overflows them."""
    from pipelines.settings import ServeSettings

    _, folder, pad = model
    settings = ServeSettings(model=folder, tile=TILE, pad=pad, max_pixels=MAX_PIXELS, max_requests=24,
                             request_timeout_s=FLOOD_TIMEOUT_S, retry_after_s=3, engine="eager")
    yield deploy(serve_port, "tight", settings, upscaler={"max_ongoing_requests": 2, "max_queued_requests": 4})
    serve_delete("tight")


def serve_delete(name: str) -> None:
    from ray import serve

    serve.delete(name)


class BusyModel(threading.Thread):
    """Keeps one of the model replica's two slots busy: a 640x640 image (1,600 windows; 15 s of work
    here while the flood comes) sent straight to the Upscaler. `started` is set once the replica
    has begun it."""

    def __init__(self, app: str, rng: np.random.Generator):
        from ray import serve

        super().__init__(daemon=True)
        self.stream = serve.get_deployment_handle("Upscaler", app_name=app).options(stream=True).upscale.remote(
            rng.integers(0, 256, (640, 640, 3), dtype=np.uint8))
        self.started, self.expected, self.tiles, self.seconds = threading.Event(), -1, 0, 0.0

    def run(self) -> None:
        self.expected = next(self.stream)  # the tile count: the replica has started the request
        t0 = time.monotonic()
        self.started.set()
        self.tiles = sum(1 for _ in self.stream)
        self.seconds = time.monotonic() - t0


def test_a_flood_gets_200_503_or_504_and_health_never_waits_behind_the_model(tight_url, rng):
    """150 requests at once while the model works on a large image: each gets 200, 503 (with
    Retry-After) or 504, none hangs, and /healthz answers all along, in a small part of the time
    the model's work takes. Before the Ingress/Upscaler split, health queued behind that work.
    (Absolute latency under a flood is measured by `bench_serve.py --flood`, not asserted here.)"""
    bodies = [encode(Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))) for _ in range(8)]

    async def flood() -> list[httpx.Response | Exception]:
        limits = httpx.Limits(max_connections=FLOOD_CLIENTS, max_keepalive_connections=FLOOD_CLIENTS)
        # No request may hang: the client gives up well after the server's own deadline.
        async with httpx.AsyncClient(limits=limits, timeout=FLOOD_TIMEOUT_S + 30) as http:
            return await asyncio.gather(*[
                http.post(f"{tight_url}/v1/upscale", content=bodies[i % 8], headers={"content-type": "image/png"})
                for i in range(FLOOD_CLIENTS)], return_exceptions=True)

    busy = BusyModel("tight", rng)
    with health_probe(tight_url) as asks:
        busy.start()
        assert busy.started.wait(120)
        t0 = time.monotonic()
        answers = asyncio.run(flood())
        busy.join()
        t1 = time.monotonic()
    assert busy.tiles == busy.expected == 1600
    hung = [a for a in answers if isinstance(a, Exception)]
    assert not hung, f"{len(hung)} requests got no answer: {hung[:3]}"
    codes = collections.Counter(a.status_code for a in answers)
    assert set(codes) <= {200, 503, 504}, codes
    assert codes[200] and codes[503], codes  # some served, some refused: the bounds were reached
    for a in answers:
        if a.status_code != 200:
            assert a.json()["error"] in ("busy", "queue_full", "timeout") and a.json()["detail"]
        if a.status_code == 503:
            assert a.headers["retry-after"] == "3"
    during = [(seconds, status) for start, seconds, status in asks if t0 <= start <= t1]
    assert len(during) >= 5 and all(status == 200 for _, status in during), during
    slowest = max(seconds for seconds, _ in during)
    print(f"flood: {dict(codes)}; the model's large image {busy.seconds:.1f} s; {len(during)} health asks, "
          f"slowest {slowest:.2f} s")
    assert slowest < busy.seconds / 5, f"health took {slowest:.2f} s beside {busy.seconds:.1f} s of model work"
    assert post(tight_url, bodies[0]).status_code == 200  # and afterwards, business as usual
    assert httpx.get(f"{tight_url}/readyz", timeout=10).status_code == 200


def test_an_ingress_out_of_memory_budget_refuses_with_503(serve_port, model, rng):
    """A request whose reservation does not fit the replica's budget gets 503 at once, not an OOM."""
    from pipelines.settings import ServeSettings

    _, folder, pad = model
    settings = ServeSettings(model=folder, tile=TILE, pad=pad, max_pixels=MAX_PIXELS, max_tiles=MAX_TILES,
                             memory_budget_mb=30, engine="eager")
    url = deploy(serve_port, "small-budget", settings)
    try:
        small = encode(Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)))
        big = encode(Image.fromarray(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)))  # 36 MB of reservation
        assert post(url, small).status_code == 200
        r = post(url, big, timeout=10)
        assert r.status_code == 503 and r.json()["error"] == "busy" and r.headers["retry-after"] == "5", r.text
        assert "MiB" in r.json()["detail"]
        assert post(url, small).status_code == 200
    finally:
        serve_delete("small-budget")
