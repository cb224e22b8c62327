"""The Ray Serve application: the generator behind an HTTP endpoint (`srgan serve` starts it).

`pipelines.serve:app` is an application builder (Serve config files, `serve run` and the
RayService manifest all use that import path; its `args` are the `ServeSettings` fields).

    POST /v1/upscale?format=png|jpeg|webp&quality=1..100&method=sr|bicubic&timeout=SECONDS&alpha=0..1
         body: the image (raw bytes with its content type, or multipart/form-data field `file`)
    GET  /healthz   alive, at once at any load     GET /readyz   a model replica has answered
    GET  /          the web page (upload, bicubic | SR slider, download)

Two deployments, so that nothing waits behind inference but inference itself:

    proxy -> Ingress (FastAPI; many requests, little CPU)     -> Upscaler (the model; few requests)
             health, admission (503), body, decode, limits,      SR windows of all its requests,
             timeout (504), canvas, bicubic, alpha, encoding     batched across requests; each
             streamed out chunk by chunk                         SR core streamed back as it is done

- Health: `/healthz` and `/readyz` are answered by the ingress on its event loop, which never
  runs pixel work (decode, paste, bicubic and encoding run in threads) and whose
  `max_ongoing_requests` is set far above the requests it admits, so they never queue.
- Overload: the ingress admits at most `max_requests` upscale requests and `memory_budget_mb` of
  reservations (each request: its body, then `request_bytes(pixels)` once the header is read);
  the Upscaler's `max_queued_requests` bounds the queue in front of the model. Past either, a
  503 with Retry-After at once. A request not done within `request_timeout_s` (or its own
  shorter `timeout`) gets 504 and its work is cancelled.
- Errors are JSON {"error": code, "detail": message}: 4xx for every bad input, 503/504 above.
- Metrics (`ray.serve.metrics`, exported by Ray's Prometheus endpoint with a `ray_` prefix):
  listed in README, "Serve and upscale".

Request state lives in local variables only: replicas are safe under concurrency.
"""

# No `from __future__ import annotations`: FastAPI reads the route methods' annotations at runtime
# (a string `Request` there makes it expect a query parameter named `request`).
import asyncio
import collections
import contextlib
import ctypes
import logging
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from PIL import Image
from ray import serve
from ray.exceptions import RayActorError
from ray.serve import Application
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Counter, Gauge, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.settings import ServeSettings
from srgan import SHIPPED_MODELS, images
from srgan.canvas import Canvas, bicubic_work_bytes, bytes_per_input_pixel
from srgan.images import ImageError, check_encodable, decode_image, image_size, write_image
from srgan.tiling import Tile, core, cut, plan_tiles

log = logging.getLogger(__name__)

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# How each refusal from the image loader maps to HTTP.
STATUS = {images.EMPTY: 400, images.CORRUPT: 400, images.UNREADABLE: 400, images.NOT_AN_IMAGE: 415,
          images.MULTI_FRAME: 415, images.UNSUPPORTED: 415, images.TOO_MANY_PIXELS: 413,
          images.SIDE_TOO_LONG: 413, images.TOO_LARGE_FOR_FORMAT: 400}
RAW_TYPES = ("image/", "application/octet-stream")
QUERY_KEYS = ("format", "quality", "method", "timeout", "alpha")
CHUNK = 1 << 20  # bytes per streamed piece of the response: bounds what the proxy holds per request
ALPHAS_KEPT = 4  # interpolated generators an Upscaler replica keeps (srgan.checkpoint.load_interpolated)
DECODE_BYTES_PER_PIXEL = 20  # the decoded input (RGB + alpha: 4 B) and the decoder's copies (16 B)


def request_bytes(pixels: int, scale: int) -> int:
    """Bytes an ingress replica reserves for an upscale of `pixels` input pixels, beside its body:
    the decoded input and the decoder's working copies, the canvas, and bicubic's work on one
    window (srgan.canvas): 100 B a pixel + 20 MB at x4, so 420 MB for 4 MP."""
    return (DECODE_BYTES_PER_PIXEL + bytes_per_input_pixel(scale)) * pixels + bicubic_work_bytes(scale)


# ---------------------------------------------------------------- errors

class HTTPError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def busy(code: str, detail: str, retry_after_s: int) -> HTTPError:
    return HTTPError(503, code, detail, {"Retry-After": str(retry_after_s)})


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


# ---------------------------------------------------------------- the request

@dataclass(frozen=True)
class UpscaleQuery:
    fmt: str
    quality: int
    method: str
    timeout_s: float  # the request's deadline: its own `timeout`, at most the server's
    alpha: float | None  # the perception-distortion dial (srgan.checkpoint.load_interpolated), or the served model


def parse_query(request: Request, server_timeout_s: float) -> UpscaleQuery:
    """The query string, strictly: ASCII digits only ("²".isdigit() is True), no repeated or unknown keys."""
    q = request.query_params
    unknown = sorted(set(q) - set(QUERY_KEYS))
    if unknown:
        raise HTTPError(400, "unknown_parameter", f"unknown query parameter(s) {', '.join(unknown)}; "
                                                  f"known: {', '.join(QUERY_KEYS)}")
    repeated = sorted(k for k in set(q) if len(q.getlist(k)) > 1)
    if repeated:
        raise HTTPError(400, "repeated_parameter", f"query parameter(s) {', '.join(repeated)} given more than once")
    fmt = q.get("format", "png").lower()
    if fmt not in FORMATS:
        raise HTTPError(400, "bad_format", f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    quality = q.get("quality", "95")
    if not re.fullmatch(r"[0-9]{1,3}", quality) or not 1 <= int(quality) <= 100:
        raise HTTPError(400, "bad_quality", f"quality {quality!r} must be an integer from 1 to 100")
    method = q.get("method", "sr")
    if method not in ("sr", "bicubic"):
        raise HTTPError(400, "bad_method", f"method {method!r} is not one of sr, bicubic")
    timeout = q.get("timeout")
    if timeout is not None and (not re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,3})?", timeout) or float(timeout) <= 0):
        raise HTTPError(400, "bad_timeout", f"timeout {timeout!r} must be a positive number of seconds")
    timeout_s = min(float(timeout), server_timeout_s) if timeout else server_timeout_s
    alpha = q.get("alpha")
    if alpha is not None and (not re.fullmatch(r"[01](\.[0-9]{1,3})?", alpha) or float(alpha) > 1):
        raise HTTPError(400, "bad_alpha", f"alpha {alpha!r} must be a number from 0 to 1 (at most 3 decimals)")
    return UpscaleQuery(fmt, int(quality), method, timeout_s, float(alpha) if alpha is not None else None)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
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
    if ctype != "multipart/form-data" and not ctype.startswith(RAW_TYPES):
        raise HTTPError(415, "unsupported_content_type",
                        f"content type {ctype or '(none)'!r} is not an image; "
                        "send image/* bytes or multipart/form-data")
    body = await _read_body(request, limit)
    if ctype != "multipart/form-data":
        return body
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


def _refusal(e: ImageError) -> HTTPError:
    return HTTPError(STATUS[e.reason], e.reason, e.problem)


# ---------------------------------------------------------------- admission

class Admission:
    """What one ingress replica holds at once: at most `max_requests` upscale requests and
    `budget` bytes of reservations. Past either, a request is refused at once (503): queueing
    here would only hold its body in memory. Used from the event loop only, so no lock."""

    def __init__(self, max_requests: int, budget: int, retry_after_s: int):
        self.max_requests, self.budget, self.retry_after_s = max_requests, budget, retry_after_s
        self.requests, self.reserved = 0, 0

    def enter(self, nbytes: int) -> "Ticket":
        if self.requests >= self.max_requests:
            raise busy("busy", f"the server holds {self.requests} requests, its limit; retry later",
                       self.retry_after_s)
        ticket = Ticket(self)
        ticket.grow(nbytes)
        self.requests += 1
        return ticket


class Ticket:
    """One request's share of its replica's `Admission`; `release` gives it back (once)."""

    def __init__(self, admission: Admission):
        self.admission, self.nbytes, self.open = admission, 0, True

    def grow(self, nbytes: int) -> None:
        a = self.admission
        if a.reserved + nbytes > a.budget:
            raise busy("busy", f"the server's memory for requests in progress is taken ({a.reserved >> 20} of "
                               f"{a.budget >> 20} MiB; this request needs {nbytes >> 20} MiB more); retry later",
                       a.retry_after_s)
        a.reserved += nbytes
        self.nbytes += nbytes

    def release(self) -> None:
        if self.open:
            self.open = False
            self.admission.requests -= 1
            self.admission.reserved -= self.nbytes


# ---------------------------------------------------------------- streaming the encoding

class _Pipe:
    """A write-only file for Pillow's encoder thread that hands ~CHUNK pieces to the event loop
    through a bounded queue: the encoder waits while the client is slow, so the response is
    never held whole, and it stops (raises) once the reader is gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        self.loop, self.queue, self.buf, self.reader_gone = loop, queue, bytearray(), False

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            self.put(bytes(self.buf))
            self.buf.clear()

    def put(self, item: Any) -> None:
        if self.reader_gone:
            raise BrokenPipeError("the client went away")
        asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop).result()


_END = object()


def _encode_into(pipe: _Pipe, img: Image.Image, fmt: str, quality: int) -> None:
    try:
        write_image(pipe, img, fmt, quality)
        pipe.flush()
        pipe.put(_END)
    except BaseException as e:
        with contextlib.suppress(BrokenPipeError):
            pipe.put(e)  # to the reader, which raises it; nobody to tell if it is gone


async def encoded_chunks(img: Image.Image, fmt: str, quality: int, on_done: Callable[[], None]
                         ) -> AsyncIterator[bytes]:
    """The encoding of `img`, produced by a thread of its own (a slow client holds that thread, not
    one of the shared executor's) and yielded as it comes; `on_done()` runs when it ends, however
    it ends (callers also tie it to the generator's collection: a stream never started has no
    `finally` to run)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=4)
    pipe = _Pipe(loop, queue)
    threading.Thread(target=_encode_into, args=(pipe, img, fmt, quality), daemon=True, name="encode").start()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        pipe.reader_gone = True
        while not queue.empty():  # unblock an encoder waiting to put, so that it sees reader_gone
            queue.get_nowait()
        on_done()


def give_freed_memory_back() -> None:
    """Make glibc return freed image buffers to the system. By default it serves large blocks from
    its heaps once a large mmapped block has been freed (its mmap threshold climbs to 32 MB) and
    keeps up to 8 heaps a core for a threaded process; freed canvases then stay resident, and the
    Ingress's RSS rose 28% in a 10-minute soak though nothing leaked. A fixed 1 MiB threshold
    (buffers above it are mmapped and unmapped when freed) and 2 heaps keep it flat. No-op where
    the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold, m_arena_max = -3, -8  # glibc's mallopt parameters (malloc.h)
    libc.mallopt(m_mmap_threshold, 1 << 20)
    libc.mallopt(m_arena_max, 2)


# ---------------------------------------------------------------- the model deployment

@serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=4, max_queued_requests=8,
                  graceful_shutdown_timeout_s=300,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2})
class Upscaler:
    """The generator. Each request is one LR image; its windows go through `_infer`, which batches
    the windows of every request in flight; each SR core is streamed back as soon as it is done.
    Memory: the model, one batch's activations, and per request its LR image and at most
    `max_batch_size` windows in flight.

    Serve warns at start that `max_batch_size` x 1 > `max_ongoing_requests` means batches never
    fill: that holds where a request is one item; here each request puts up to `max_batch_size`
    windows in the batch queue, so one request alone fills a batch."""

    def __init__(self, settings: dict[str, Any]):
        from pipelines.model_uri import load_engine  # torch: only the model's replicas import it

        self.settings = ServeSettings(**settings)
        # The one place the model runs: uint8 windows (h, w, 3), all one shape -> uint8 SR windows,
        # through the inference engine of the settings (srgan.engines; auto: openvino-int8 on CPU).
        self.run_windows = load_engine(self.settings.model, self.settings.engine, self.settings.tracking_uri)
        self.scale = self.run_windows.scale
        self._infer.set_max_batch_size(self.settings.max_batch_size)
        self.run_windows([np.zeros((16, 16, 3), np.uint8)])  # warm-up
        self.tiles = Counter("srgan_tiles", description="SR tiles (windows) run through the model")
        self.batch_size = Histogram("srgan_batch_size", description="windows per forward pass",
                                    boundaries=[1, 2, 4, 8, 16, 32, 64])
        self.tile_seconds = Histogram("srgan_tile_inference_seconds", description="forward time per tile",
                                      boundaries=[0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5])
        self.dialled: collections.OrderedDict[float, Any] = collections.OrderedDict()  # alpha -> engine
        log.info("model %s loaded (x%d, engine %s), warm-up done", self.settings.model, self.scale,
                 self.run_windows.name)

    async def info(self) -> dict[str, Any]:
        return {"model": self.settings.model, "scale": self.scale, "alpha": self.settings.model in SHIPPED_MODELS}

    def _engine(self, alpha: float | None) -> Any:
        """The served engine, or for an `alpha` the shipped pair interpolated, run eager in bf16
        (fp16 on CUDA): exporting an engine per alpha would take seconds to minutes. The last
        ALPHAS_KEPT dialled generators stay in memory (6 MB each)."""
        if alpha is None:
            return self.run_windows
        if alpha not in self.dialled:
            import torch

            from pipelines.model_uri import load_engine

            eager = "eager-fp16" if torch.cuda.is_available() else "eager-bf16"
            self.dialled[alpha] = load_engine(self.settings.model, eager, alpha=alpha)
            while len(self.dialled) > ALPHAS_KEPT:
                self.dialled.popitem(last=False)
        self.dialled.move_to_end(alpha)
        return self.dialled[alpha]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _infer(self, items: list[tuple[np.ndarray, float | None]]) -> list[np.ndarray]:
        """SR windows for the (window, alpha) of all requests waiting now: one forward per alpha and
        window shape, so requests with the same alpha still batch together."""
        groups: dict[tuple, list[int]] = {}
        for i, (w, alpha) in enumerate(items):
            groups.setdefault((alpha, w.shape), []).append(i)
        out: list[np.ndarray] = [None] * len(items)  # type: ignore[list-item]
        for (alpha, _), idx in groups.items():
            t0 = time.perf_counter()
            srs = await asyncio.to_thread(self._engine(alpha), [items[i][0] for i in idx])
            per_tile = (time.perf_counter() - t0) / len(idx)
            for i, sr in zip(idx, srs):
                out[i] = sr
                self.tile_seconds.observe(per_tile)
            self.batch_size.observe(len(idx))
            self.tiles.inc(len(idx))
        return out

    async def _core(self, lr: np.ndarray, t: Tile, alpha: float | None) -> tuple[Tile, np.ndarray]:
        return t, np.ascontiguousarray(core(await self._infer((cut(lr, t), alpha)), t, self.scale))

    async def upscale(self, lr: np.ndarray, alpha: float | None = None) -> AsyncIterator[Any]:
        """Stream for uint8 RGB `lr` (H, W, 3) (with `alpha`: the shipped pair interpolated, see
        `_engine`): first the number of tiles (the request has started:
        the caller's queue wait ends), then (tile, uint8 SR core) as each is done, in any order.
        At most `max_batch_size` windows of one request are in flight, so one large request cannot
        fill the batch queue and its memory stays bounded by the window."""
        tiles = plan_tiles(lr.shape[0], lr.shape[1], self.settings.tile, self.settings.pad)
        yield len(tiles)
        todo, running = iter(tiles), set()
        try:
            while True:
                while len(running) < self.settings.max_batch_size and (t := next(todo, None)) is not None:
                    running.add(asyncio.ensure_future(self._core(lr, t, alpha)))
                if not running:
                    return
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            for task in running:  # the caller went away (timeout, disconnect): drop the queued windows
                task.cancel()


# ---------------------------------------------------------------- the ingress

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

    @api.get("/", response_class=HTMLResponse)
    async def page(self) -> str:
        return resources.files("pipelines").joinpath("static/index.html").read_text()

    @api.post("/v1/upscale")
    async def upscale(self, request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            q = parse_query(request, self.settings.request_timeout_s)
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
            img = await asyncio.wait_for(self._render(request, q, ticket, stop), q.timeout_s)
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
        return StreamingResponse(chunks, media_type=FORMATS[q.fmt],
                                 headers={"X-Scale": str(self.model["scale"]), "X-Size": f"{img.width}x{img.height}"})

    async def _render(self, request: Request, q: UpscaleQuery, ticket: Ticket, stop: threading.Event) -> Image.Image:
        """The upscaled image, in a canvas: body, header checks, reservation, decode, SR or bicubic, alpha."""
        s = self.settings
        info = await self._model_info()
        if q.alpha is not None and not info["alpha"]:
            raise HTTPError(400, "alpha_unavailable", f"alpha interpolates the shipped SRResNet and SRGAN; this "
                                                      f"endpoint serves {info['model']}")
        scale = info["scale"]
        data = await _image_bytes(request, self.max_body)
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
            raise _refusal(e) from e
        del data
        canvas = await asyncio.to_thread(Canvas, image, scale, q.fmt)  # allocating 256 MB is pixel work too
        if q.method == "sr":
            await self._super_resolve(image.rgb, canvas, q.alpha)
        else:
            await asyncio.to_thread(canvas.paste_bicubic, stop)
        return await asyncio.to_thread(canvas.finish, stop)

    async def _super_resolve(self, rgb: np.ndarray, canvas: Canvas, alpha: float | None) -> None:
        """SR cores from the Upscaler, pasted into the canvas as they arrive."""
        t0 = time.perf_counter()
        stream = self.upscaler.options(stream=True).upscale.remote(rgb, alpha)
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


def build(settings: ServeSettings, options: dict[str, dict[str, Any]] | None = None) -> Application:
    """The application: `Ingress` in front of `Upscaler`, each with its deployment `options`
    (a Serve config's `deployments` entries, by name) over the defaults above."""
    options = options or {}
    args = asdict(settings)
    model = Upscaler.options(**options.get("Upscaler", {})).bind(args)
    return Ingress.options(**options.get("Ingress", {})).bind(model, args)


def app(args: dict[str, Any] | None = None) -> Application:
    """The application builder behind `pipelines.serve:app`; `args` are `ServeSettings` fields."""
    return build(ServeSettings.from_args(args or {}))
