"""The Ray Serve application: the generator behind an HTTP endpoint (`srgan serve` starts it).

`pipelines.serve:app` is an application builder (Serve config files, `serve run` and the
RayService manifest all use that import path; its `args` are the `ServeSettings` fields).

    POST /v1/upscale?format=png|jpeg|webp&quality=1..100[&method=sr|bicubic]
         body: the image (raw bytes with its content type, or multipart/form-data field `file`)
    GET  /healthz   alive           GET /readyz   model loaded and warm-up inference done
    GET  /          the web page (upload, bicubic | SR slider, download)

Requests are cut into tiles (srgan.tiling); the tiles of all concurrent requests are batched
with `@serve.batch`. Request state lives in local variables only: replicas are safe under
concurrency. Every bad input gets a 4xx JSON error {"error": code, "detail": message}.
"""


import asyncio
import logging
from dataclasses import asdict
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve
from ray.serve import Application

from pipelines.model_uri import load_engine
from pipelines.settings import ServeSettings
from srgan import images
from srgan.bicubic import imresize
from srgan.images import Decoded, ImageError, decode_image, encode_image
from srgan.inference import finish_upscale
from srgan.tiling import cut, paste, plan_tiles

log = logging.getLogger(__name__)

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# How each refusal from the image loader maps to HTTP.
STATUS = {images.EMPTY: 400, images.CORRUPT: 400, images.UNREADABLE: 400, images.NOT_AN_IMAGE: 415,
          images.MULTI_FRAME: 415, images.UNSUPPORTED: 415, images.TOO_MANY_PIXELS: 413}
RAW_TYPES = ("image/", "application/octet-stream")


class HTTPError(Exception):
    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


api = FastAPI(title="srgan", description="Photo-realistic x4 super-resolution (SRGAN)")


@api.exception_handler(HTTPError)
async def _http_error(request: Request, exc: HTTPError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, "body_too_large", f"body of {int(declared):,} bytes is over the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, "body_too_large", f"body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_bytes(request: Request, limit: int) -> bytes:
    """The uploaded image's bytes, from a raw body or a multipart `file` field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _read_body(request, limit)
    if ctype == "multipart/form-data":
        from starlette.datastructures import Headers, UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def once():
            yield body
        try:
            form = await MultiPartParser(Headers(scope=request.scope), once()).parse()
        except MultiPartException as e:
            raise HTTPError(400, "bad_multipart", f"malformed multipart body: {e}") from e
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPError(400, "no_file", "multipart body has no file field named 'file'")
        return await upload.read()
    if not ctype.startswith(RAW_TYPES):
        raise HTTPError(415, "unsupported_content_type",
                        f"content type {ctype or '(none)'!r} is not an image; "
                        "send image/* bytes or multipart/form-data")
    return body


def _query(request: Request) -> tuple[str, int, str]:
    q = request.query_params
    fmt = q.get("format", "png").lower()
    if fmt not in FORMATS:
        raise HTTPError(400, "bad_format", f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    quality = q.get("quality", "95")
    if not quality.isdigit() or not 1 <= int(quality) <= 100:
        raise HTTPError(400, "bad_quality", f"quality {quality!r} must be an integer from 1 to 100")
    method = q.get("method", "sr")
    if method not in ("sr", "bicubic"):
        raise HTTPError(400, "bad_method", f"method {method!r} is not one of sr, bicubic")
    unknown = sorted(set(q) - {"format", "quality", "method"})
    if unknown:
        raise HTTPError(400, "unknown_parameter", f"unknown query parameter(s) {', '.join(unknown)}")
    return fmt, int(quality), method


@serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=8,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2})
@serve.ingress(api)
class Upscaler:
    def __init__(self, settings: dict[str, Any]):
        self.settings = ServeSettings(**settings)
        self.engine = load_engine(self.settings.model, self.settings.engine, self.settings.tracking_uri)
        self.scale = self.engine.scale
        self._infer.set_max_batch_size(self.settings.max_batch_size)
        self.engine([np.zeros((16, 16, 3), np.uint8)])  # warm-up
        self.ready = True
        log.info("model %s loaded (x%d, engine %s), warm-up done", self.settings.model, self.scale, self.engine.name)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _infer(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """SR windows for the windows of all requests waiting now; one forward per window shape."""
        by_shape: dict[tuple, list[int]] = {}
        for i, w in enumerate(windows):
            by_shape.setdefault(w.shape, []).append(i)
        out: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        for idx in by_shape.values():
            srs = await asyncio.to_thread(self.engine, [windows[i] for i in idx])
            for i, sr in zip(idx, srs):
                out[i] = sr
        return out

    async def _upscale(self, image: Decoded) -> Decoded:
        s = self.settings
        tiles = plan_tiles(image.rgb.shape[0], image.rgb.shape[1], s.tile, s.pad)
        srs = await asyncio.gather(*[self._infer(cut(image.rgb, t)) for t in tiles])
        rgb = np.empty((image.rgb.shape[0] * self.scale, image.rgb.shape[1] * self.scale, 3), np.uint8)
        for t, sr in zip(tiles, srs):
            paste(rgb, sr, t, self.scale)
        return finish_upscale(image, rgb, self.scale)

    @api.post("/v1/upscale")
    async def upscale(self, request: Request) -> Response:
        fmt, quality, method = _query(request)
        data = await _image_bytes(request, int(self.settings.max_body_mb * 2**20))
        try:
            image = await asyncio.to_thread(decode_image, data, "upload", self.settings.max_pixels)
        except ImageError as e:
            raise HTTPError(STATUS[e.reason], e.reason, e.problem) from e
        if method == "bicubic":
            out = finish_upscale(image, imresize(image.rgb, self.scale), self.scale)
        else:
            out = await self._upscale(image)
        body = await asyncio.to_thread(encode_image, out.rgb, fmt, quality, out.alpha, out.grayscale)
        return Response(body, media_type=FORMATS[fmt],
                        headers={"X-Scale": str(self.scale), "X-Size": f"{out.rgb.shape[1]}x{out.rgb.shape[0]}"})

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(self) -> JSONResponse:
        ok = getattr(self, "ready", False)
        return JSONResponse({"ready": ok, "model": self.settings.model, "scale": self.scale},
                            status_code=200 if ok else 503)

    @api.get("/", response_class=HTMLResponse)
    async def page(self) -> str:
        return resources.files("pipelines").joinpath("static/index.html").read_text()


def app(args: dict[str, Any] | None = None) -> Application:
    """The application builder behind `pipelines.serve:app`; `args` are `ServeSettings` fields."""
    return Upscaler.bind(asdict(ServeSettings.from_args(args or {})))
