"""The Ray Serve application: the generator behind an HTTP endpoint (`srgan serve` starts it).

`pipelines.serve:app` is an application builder (Serve config files, `serve run` and the
RayService manifest all use that import path; its `args` are the `ServeSettings` fields).

    POST /v1/upscale?format=png|jpeg|webp&quality=1..100&method=sr|bicubic&timeout=SECONDS&alpha=0..1&model=NAME
         body: the image (raw bytes with its content type, or multipart/form-data field `file`)
         model: one of the shipped models the endpoint offers (ServeSettings.models), else the served one;
         alpha: the model's shipped pair interpolated (srgan.DIAL_PAIRS)
    GET  /healthz   alive, at once at any load     GET /readyz   a model replica has answered
    GET  /          the web page (upload, a model picker, bicubic | SR slider, the alpha dial, download)

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
  listed in docs/serving.md.

Request state lives in local variables only: replicas are safe under concurrency.

The rooms: http.py (errors, the query, the body), admission.py (what a replica holds and what a
request reserves), encoding.py (the streamed response), upscaler.py and ingress.py (the two
deployments); `build` and `app` below put them together.
"""

from dataclasses import asdict
from typing import Any

from ray.serve import Application

from pipelines.serve.admission import request_bytes
from pipelines.serve.ingress import Ingress
from pipelines.serve.upscaler import Upscaler
from pipelines.settings import ServeSettings

__all__ = ["Ingress", "Upscaler", "app", "build", "request_bytes"]


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

