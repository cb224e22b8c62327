"""The ingress deployment: HTTP in and out, in front of the Upscaler (upscaler.py).

Health, admission (503), body, decode, limits, timeout (504), canvas, bicubic and encoding; the
event loop only awaits: every piece of pixel work runs in a thread, so `/healthz` and `/readyz`
are answered at once whatever the load.
"""

# No `from __future__ import annotations`: FastAPI reads the route methods' annotations at runtime
# (a string `Request` there makes it expect a query parameter named `request`).
import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from PIL import Image
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Counter, Gauge, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.serve.admission import Admission, Ticket, request_bytes
from pipelines.serve.encoding import encoded_chunks, give_freed_memory_back
from pipelines.serve.http import (
    FORMATS,
    HTTPError,
    UpscaleQuery,
    busy,
    image_bytes,
    overridden,
    parse_query,
    refusal,
)
from pipelines.settings import ServeSettings
from srgan.canvas import Canvas
from srgan.condition import Condition, read_condition
from srgan.images import Decoded, ImageError, check_encodable, decode_image, image_size
from srgan.tiling import plan_tiles

log = logging.getLogger(__name__)

api = FastAPI(title="srgan", description="Photo-realistic x4 super-resolution (SRGAN)")


@api.exception_handler(HTTPError)
async def _http_error(request: Request, exc: HTTPError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)


@api.exception_handler(StarletteHTTPException)
async def _routing_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """404 and 405 in the same JSON shape as every other error."""
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse({"error": code, "detail": str(exc.detail)}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


def _jpeg_bucket(quality: int | None) -> str:
    """A metrics tag of few values: none, under 50, 50-79, 80 and over."""
    if quality is None:
        return "none"
    return "<50" if quality < 50 else "50-79" if quality < 80 else ">=80"


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=200, graceful_shutdown_timeout_s=360)
@serve.ingress(api)
class Ingress:
    """HTTP in and out: health, admission, decode, limits, canvas, bicubic, encoding; the model
    runs in the Upscaler deployment behind `upscaler`. The event loop only awaits: every piece of
    pixel work runs in a thread."""

    def __init__(self, upscaler: DeploymentHandle, settings: dict[str, Any]):
        give_freed_memory_back()
        self.settings = s = ServeSettings(**settings)
        self.upscaler = upscaler
        self.max_body = int(s.max_body_mb * 2**20)
        self.admission = Admission(s.max_requests, s.memory_budget_mb << 20, s.retry_after_s)
        self.model: dict[str, Any] | None = None  # {"model", "scale"} once a model replica has answered
        self._model_task: asyncio.Task | None = None
        self.images = Counter("srgan_images", description="images upscaled", tag_keys=("method",))
        self.errors = Counter("srgan_errors", description="refused or failed requests", tag_keys=("code", "status"))
        self.queue_wait = Histogram("srgan_queue_wait_seconds", description="time until a model replica starts a "
                                    "request", boundaries=[0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300])
        self.seconds = Histogram("srgan_request_seconds", description="time from arrival to the first byte out",
                                 boundaries=[0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300], tag_keys=("method",))
        self.conditions = Counter("srgan_conditions", description="uploads to a conditioned model by what they went "
                                  "through: JPEG quality, noise, read from the file or set by the query",
                                  tag_keys=("jpeg", "noise", "source"))
        self.in_progress = Gauge("srgan_requests_in_progress", description="upscale requests held by the replica")
        self.reserved = Gauge("srgan_memory_reserved_bytes", description="bytes reserved for requests in progress")

    # -- the model's facts, fetched once

    async def _model_info(self) -> dict[str, Any]:
        """The model's name and scale, asked of a model replica once (its answer proves it is up)."""
        if self.model is None:
            if self._model_task is None or self._model_task.done():
                self._model_task = asyncio.ensure_future(self.upscaler.info.remote())
            with self._model_errors():
                self.model = await asyncio.shield(self._model_task)
        return self.model

    @contextlib.contextmanager
    def _model_errors(self) -> Iterator[None]:
        """A call to the Upscaler that cannot be made now: 503 with Retry-After."""
        try:
            yield
        except BackPressureError as e:
            raise busy("queue_full", f"the model's queue is full ({e}); retry later",
                       self.settings.retry_after_s) from e
        except (DeploymentUnavailableError, RayActorError) as e:
            raise busy("unavailable", f"no model replica could take the request ({type(e).__name__}); retry later",
                       self.settings.retry_after_s) from e

    # -- routes

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(self) -> JSONResponse:
        try:
            info = await asyncio.wait_for(self._model_info(), 0.5)
        except Exception as e:  # not up yet (or busy): not ready, answered at once; the ask goes on
            return JSONResponse({"ready": False, "detail": f"no model replica has answered yet ({type(e).__name__})"},
                                status_code=503)
        return JSONResponse({"ready": True, **info})

    @api.post("/v1/condition")
    async def condition(self, request: Request) -> dict:
        """What an upload went through, as the conditioned models read it (the web page shows it)."""
        data = await image_bytes(request, self.max_body)
        try:
            image = await asyncio.to_thread(decode_image, data, "upload", self.settings.max_pixels,
                                            self.settings.max_side)
        except ImageError as e:
            raise refusal(e) from e
        read = await asyncio.to_thread(read_condition, image)
        return {"jpeg_quality": read.jpeg_quality, "noise": read.noise_sigma, "text": str(read)}

    @api.get("/", response_class=HTMLResponse)
    async def page(self) -> str:
        return resources.files("pipelines").joinpath("static/index.html").read_text()

    @api.post("/v1/upscale")
    async def upscale(self, request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            q = parse_query(request, self.settings.request_timeout_s, self.settings.model, self.settings.models)
            declared = request.headers.get("content-length", "")
            nbytes = int(declared) if declared.isascii() and declared.isdigit() else self.max_body
            ticket = self.admission.enter(min(nbytes, self.max_body))
            self._gauges()
            return await self._answer(request, q, ticket, t0)
        except HTTPError as e:
            self.errors.inc(tags={"code": e.code, "status": str(e.status)})
            raise
        except Exception:
            self.errors.inc(tags={"code": "internal", "status": "500"})
            log.exception("upscale failed")
            raise HTTPError(500, "internal", "the server failed on this request; it is logged") from None

    def _gauges(self) -> None:
        self.in_progress.set(self.admission.requests)
        self.reserved.set(self.admission.reserved)

    async def _answer(self, request: Request, q: UpscaleQuery, ticket: Ticket, t0: float) -> Response:
        """Render under the deadline, then stream the encoding; the ticket is held until the last byte."""
        stop = threading.Event()  # tells the pixel threads of a request that timed out to give up

        def done() -> None:
            ticket.release()
            self._gauges()
        try:
            img, condition = await asyncio.wait_for(self._render(request, q, ticket, stop), q.timeout_s)
        except asyncio.TimeoutError:
            stop.set()
            done()
            raise HTTPError(504, "timeout", f"not done within {q.timeout_s:g} s; the work was cancelled") from None
        except BaseException:
            stop.set()
            done()
            raise
        self.images.inc(tags={"method": q.method})
        self.seconds.observe(time.perf_counter() - t0, tags={"method": q.method})
        chunks = encoded_chunks(img, q.fmt, q.quality, done)
        weakref.finalize(chunks, done)  # a response never sent never runs the stream's own `finally`
        headers = {"X-Scale": str(self.model["scale"]), "X-Size": f"{img.width}x{img.height}"}
        if condition is not None:
            headers["X-Condition"] = str(condition)
        return StreamingResponse(chunks, media_type=FORMATS[q.fmt], headers=headers)

    def _conditioned(self, q: UpscaleQuery) -> bool:
        """Whether the query's model is told each input's condition; overrides for a blind one are a 400."""
        model = q.model or self.model["model"]
        conditioned = bool(self.model["conditions"][model])
        if not conditioned and (q.jpeg_quality is not None or q.noise is not None):
            raise HTTPError(400, "condition_unavailable", f"jpeg_quality and noise tell a conditioned model what "
                                                          f"the upload went through; model {model!r} is blind to it")
        return conditioned and q.method == "sr"

    def _read_condition(self, image: Decoded, q: UpscaleQuery) -> Condition:
        """What the upload went through, read from its file (srgan.condition), the query's overrides in place."""
        read = read_condition(image)
        condition = overridden(read, q.jpeg_quality, q.noise)
        source = "read" if condition == read else "set"
        self.conditions.inc(tags={"jpeg": _jpeg_bucket(condition.jpeg_quality),
                                  "noise": "yes" if condition.noise_sigma >= 2 else "no", "source": source})
        return condition

    async def _render(self, request: Request, q: UpscaleQuery, ticket: Ticket, stop: threading.Event
                      ) -> tuple[Image.Image, Condition | None]:
        """The upscaled image, in a canvas, and the condition the model was told (None: a blind model):
        body, header checks, reservation, decode, condition, SR or bicubic, alpha."""
        s = self.settings
        scale = (await self._model_info())["scale"]
        if q.alpha is not None and not self.model["dial"]:
            raise HTTPError(400, "alpha_unavailable", "alpha interpolates two generators' weights in PyTorch, which "
                                                      "this endpoint's image leaves out (srgan-ray:0.1.0-serve, the "
                                                      "torch-free serving image); the full image srgan-ray:0.1.0 "
                                                      "serves the dial")
        conditioned = self._conditioned(q)
        data = await image_bytes(request, self.max_body)
        try:
            w, h = await asyncio.to_thread(image_size, data, "upload", s.max_pixels, s.max_side)
            check_encodable(w * scale, h * scale, q.fmt, "upload upscaled")  # EXIF may swap w and h: max() does not
            tiles = len(plan_tiles(h, w, s.tile, s.pad))
            if q.method == "sr" and tiles > s.max_tiles:
                raise HTTPError(413, "too_many_tiles", f"upload: {w}x{h} makes {tiles:,} tiles of {s.tile} px, "
                                                       f"over the limit of {s.max_tiles:,}")
            ticket.grow(request_bytes(w * h, scale))
            self._gauges()
            image = await asyncio.to_thread(decode_image, data, "upload", s.max_pixels, s.max_side)
        except ImageError as e:
            raise refusal(e) from e
        del data
        condition = await asyncio.to_thread(self._read_condition, image, q) if conditioned else None
        canvas = await asyncio.to_thread(Canvas, image, scale, q.fmt)  # allocating 256 MB is pixel work too
        if q.method == "sr":
            await self._super_resolve(image.rgb, canvas, q, condition)
        else:
            await asyncio.to_thread(canvas.paste_bicubic, stop)
        return await asyncio.to_thread(canvas.finish, stop), condition

    async def _super_resolve(self, rgb: np.ndarray, canvas: Canvas, q: UpscaleQuery,
                             condition: Condition | None) -> None:
        """SR cores from the Upscaler (the query's model, alpha and condition), pasted into the canvas as
        they arrive."""
        t0 = time.perf_counter()
        stream = self.upscaler.options(stream=True).upscale.remote(rgb, q.alpha, q.model, condition)
        finished = False
        try:
            with self._model_errors():
                await stream.__anext__()  # the tile count: a model replica has started the request
                self.queue_wait.observe(time.perf_counter() - t0)
                async for t, sr_core in stream:
                    await asyncio.to_thread(canvas.paste, t, sr_core)
            finished = True
        finally:
            if not finished:  # timeout or disconnect: stop the model's work for this request
                with contextlib.suppress(Exception):  # cancel() re-raises the call's own error, if it had one
                    stream.cancel()

