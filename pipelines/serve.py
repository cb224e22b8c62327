"""`srgan serve`: the generator behind a Ray Serve HTTP endpoint.

`pipelines.serve:app` is an application builder (Serve config files, `serve run` and the
RayService manifest all use that import path; its `args` are the `Settings` fields).

    POST /v1/upscale?format=png|jpeg|webp&quality=1..100[&method=sr|bicubic]
         body: the image (raw bytes with its content type, or multipart/form-data field `file`)
    GET  /healthz   alive           GET /readyz   model loaded and warm-up inference done
    GET  /          the web page (upload, bicubic | SR slider, download)

Requests are cut into tiles (srgan.tiling); the tiles of all concurrent requests are batched
with `@serve.batch`. Request state lives in local variables only: replicas are safe under
concurrency. Every bad input gets a 4xx JSON error {"error": code, "detail": message}.
"""


import argparse
import asyncio
import logging
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve
from ray.serve import Application

from pipelines.model_uri import MODEL_HELP, load_model
from srgan import images
from srgan.bicubic import imresize
from srgan.images import Decoded, ImageError, decode_image, encode_image
from srgan.inference import finish_upscale, upscale_windows
from srgan.tiling import cut, paste, plan_tiles

log = logging.getLogger(__name__)

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# How each refusal from the image loader maps to HTTP.
STATUS = {images.EMPTY: 400, images.CORRUPT: 400, images.UNREADABLE: 400, images.NOT_AN_IMAGE: 415,
          images.MULTI_FRAME: 415, images.UNSUPPORTED: 415, images.TOO_MANY_PIXELS: 413}
RAW_TYPES = ("image/", "application/octet-stream")


@dataclass(frozen=True)
class Settings:
    """A replica's settings: the Serve config's `args`, or `srgan serve` flags."""

    model: str = "default"  # "default", "srgan", a checkpoint folder/URI, or models:/NAME@ALIAS
    tile: int = 128  # LR px per tile core
    pad: int = 24  # LR px of context around each core
    bf16: bool = False
    max_body_mb: float = 20.0
    max_pixels: int = 4_000_000  # input pixels; the output has scale^2 times as many
    max_batch_size: int = 8
    tracking_uri: str | None = None

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> "Settings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"unknown serve args {unknown}; known: {sorted(known)}")
        # `serve run pipelines.serve:app tile=64` passes strings; a config file passes YAML values.
        casts = {"tile": int, "pad": int, "max_pixels": int, "max_batch_size": int, "max_body_mb": float,
                 "bf16": lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes")}
        return cls(**{k: casts.get(k, lambda v: v)(v) for k, v in args.items()})


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
        self.settings = Settings(**settings)
        self.g = load_model(self.settings.model, self.settings.tracking_uri)
        self.scale = self.g.scale
        self._infer.set_max_batch_size(self.settings.max_batch_size)
        upscale_windows(self.g, [np.zeros((16, 16, 3), np.uint8)], self.settings.bf16)  # warm-up
        self.ready = True
        log.info("model %s loaded (x%d), warm-up done", self.settings.model, self.scale)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _infer(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """SR windows for the windows of all requests waiting now; one forward per window shape."""
        by_shape: dict[tuple, list[int]] = {}
        for i, w in enumerate(windows):
            by_shape.setdefault(w.shape, []).append(i)
        out: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        for idx in by_shape.values():
            srs = await asyncio.to_thread(upscale_windows, self.g, [windows[i] for i in idx], self.settings.bf16)
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
    """The application builder behind `pipelines.serve:app`; `args` are `Settings` fields."""
    return Upscaler.bind(asdict(Settings.from_args(args or {})))


# ---------------------------------------------------------------- CLI

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the upscaling endpoint (Ray Serve)",
                       description="Serve the generator over HTTP; binds to 127.0.0.1 unless told otherwise.")
    p.add_argument("--model", default="default",
                   help=MODEL_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--config", type=Path, help="a Serve config YAML (as `serve deploy` takes); its first "
                                                "application's args and deployment settings are used")
    p.add_argument("--tile", type=int, default=Settings.tile, help="LR tile side (default: %(default)s)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for inference")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.cluster import ensure_ray

    target = _from_config(args.config) if args.config else app({"model": args.model, "tile": args.tile,
                                                                 "bf16": args.bf16})
    ensure_ray()
    serve.start(http_options={"host": args.host, "port": args.port})
    log.info("serving on http://%s:%d/ (Ctrl-C to stop)", args.host, args.port)
    serve.run(target, name="srgan", route_prefix="/", blocking=True)
    return 0


def _from_config(path: Path) -> Application:
    """The first application of a Serve config file, with its deployment settings applied."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    spec = ServeDeploySchema.parse_obj(yaml.safe_load(path.read_text())).applications[0]
    options: dict[str, Any] = {}
    for d in spec.deployments:
        options |= d.dict(exclude_unset=True, exclude={"name"})
    return Upscaler.options(**options).bind(asdict(Settings.from_args(spec.args)))
