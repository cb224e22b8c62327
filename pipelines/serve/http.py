"""The HTTP side of an upscale request: errors as JSON, the query string parsed strictly, the body
read within its limit (raw image bytes or a multipart `file` field)."""

# No `from __future__ import annotations`: FastAPI reads annotations at runtime (see ingress.py).
import re
from dataclasses import dataclass

from fastapi import Request

from srgan import DIAL_PAIRS, dial_pair, images
from srgan.condition import CLEAN, Condition, ConditionError, condition_from_overrides
from srgan.images import ImageError

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# How each refusal from the image loader maps to HTTP.
STATUS = {images.EMPTY: 400, images.CORRUPT: 400, images.UNREADABLE: 400, images.NOT_AN_IMAGE: 415,
          images.MULTI_FRAME: 415, images.UNSUPPORTED: 415, images.TOO_MANY_PIXELS: 413,
          images.SIDE_TOO_LONG: 413, images.TOO_LARGE_FOR_FORMAT: 400}
RAW_TYPES = ("image/", "application/octet-stream")
QUERY_KEYS = ("format", "quality", "method", "timeout", "alpha", "model", "jpeg_quality", "noise")


class HTTPError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def busy(code: str, detail: str, retry_after_s: int) -> HTTPError:
    return HTTPError(503, code, detail, {"Retry-After": str(retry_after_s)})


@dataclass(frozen=True)
class UpscaleQuery:
    fmt: str
    quality: int
    method: str
    timeout_s: float  # the request's deadline: its own `timeout`, at most the server's
    alpha: float | None  # the perception-distortion dial (srgan.checkpoint.load_interpolated), or the model itself
    model: str | None  # one of the endpoint's offered models by name, or None: the served model
    # A conditioned model's overrides of what is read from the upload (srgan.condition): None reads it
    jpeg_quality: str | None = None
    noise: str | None = None


def parse_query(request: Request, server_timeout_s: float, served: str, offered: tuple[str, ...]) -> UpscaleQuery:
    """The query string, strictly: ASCII digits only ("²".isdigit() is True), no repeated or unknown
    keys; `model` and `alpha` as `_dial` checks them."""
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
    alpha, model = _dial(q, served, offered)
    jpeg_quality, noise = q.get("jpeg_quality"), q.get("noise")
    overridden(CLEAN, jpeg_quality, noise)  # refused here, before the body is read
    return UpscaleQuery(fmt, int(quality), method, timeout_s, alpha, model, jpeg_quality, noise)


def overridden(read: Condition, jpeg_quality: str | None, noise: str | None) -> Condition:
    """`read` with the query's `jpeg_quality` and `noise` in its place; a bad value is a 400."""
    try:
        return condition_from_overrides(read, jpeg_quality, noise)
    except ConditionError as e:
        raise HTTPError(400, "bad_condition", str(e)) from e


def _dial(q, served: str, offered: tuple[str, ...]) -> tuple[float | None, str | None]:
    """(alpha, model) of the query: a model among the `offered` names; an alpha from 0 to 1, only
    for a model of a shipped pair (the requested one, else the `served` one)."""
    alpha, model = q.get("alpha"), q.get("model")
    if alpha is not None and (not re.fullmatch(r"[01](\.[0-9]{1,3})?", alpha) or float(alpha) > 1):
        raise HTTPError(400, "bad_alpha", f"alpha {alpha!r} must be a number from 0 to 1 (at most 3 decimals)")
    if model is not None and model not in offered:
        raise HTTPError(400, "bad_model", f"model {model!r} is not offered here; choose one of "
                                          f"{', '.join(offered) or '(none: this endpoint serves one model)'}")
    if alpha is not None and dial_pair(model or served) is None:
        pairs = ", ".join(" and ".join(pair) for pair in DIAL_PAIRS)
        raise HTTPError(400, "alpha_unavailable", f"alpha interpolates a shipped pair ({pairs}); "
                                                  f"model {model or served!r} is not one of them")
    return (float(alpha) if alpha is not None else None), model


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


async def image_bytes(request: Request, limit: int) -> bytes:
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


def refusal(e: ImageError) -> HTTPError:
    return HTTPError(STATUS[e.reason], e.reason, e.problem)

