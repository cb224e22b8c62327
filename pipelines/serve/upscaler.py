"""The model deployment: the generators behind the endpoint, their windows batched across requests."""

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from ray import serve
from ray.serve.metrics import Counter, Histogram

from pipelines.settings import ServeSettings
from srgan import dial_pair
from srgan.condition import CLEAN, Condition, condition_vectors
from srgan.engines import torch_installed
from srgan.tiling import Tile, core, cut, plan_tiles

log = logging.getLogger(__name__)

ALPHAS_KEPT = 4  # interpolated generators an Upscaler replica keeps (srgan.checkpoint.load_interpolated)


@serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=4, max_queued_requests=8,
                  graceful_shutdown_timeout_s=300,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2})
class Upscaler:
    """The generators: the served model and the offered ones (`model=`), each through the settings'
    engine. Each request is one LR image; its windows go through `_infer`, which batches the
    windows of every request in flight, those of one (model, alpha) and shape together; each SR
    core is streamed back as soon as it is done. Memory: the models, one batch's activations, and
    per request its LR image and at most `max_batch_size` windows in flight.

    Serve warns at start that `max_batch_size` x 1 > `max_ongoing_requests` means batches never
    fill: that holds where a request is one item; here each request puts up to `max_batch_size`
    windows in the batch queue, so one request alone fills a batch."""

    def __init__(self, settings: dict[str, Any]):
        from pipelines.model_uri import load_engine  # torch: only the model's replicas import it

        self.settings = s = ServeSettings(**settings)
        # alpha interpolates two generators' weights in PyTorch: the torch-free serving image has no dial
        self.dial = torch_installed()
        # The one place a model runs: uint8 windows (h, w, 3), all one shape -> uint8 SR windows,
        # through the inference engine of the settings (srgan.engines; auto: openvino-int8 on CPU).
        # None is the served model; the offered ones are loaded now, so that no request waits for one.
        self.engines = {None: load_engine(s.model, s.engine, s.tracking_uri)}
        for name in s.models:
            self.engines[name] = self.engines[None] if name == s.model else load_engine(name, s.engine)
        self.scale = self.engines[None].scale
        if any(e.scale != self.scale for e in self.engines.values()):
            raise ValueError(f"the offered models {', '.join(s.models)} do not all upscale x{self.scale}")
        self._infer.set_max_batch_size(s.max_batch_size)
        for engine in self.engines.values():
            engine([np.zeros((16, 16, 3), np.uint8)])  # warm-up
        self.tiles = Counter("srgan_tiles", description="SR tiles (windows) run through the model")
        self.batch_size = Histogram("srgan_batch_size", description="windows per forward pass",
                                    boundaries=[1, 2, 4, 8, 16, 32, 64])
        self.tile_seconds = Histogram("srgan_tile_inference_seconds", description="forward time per tile",
                                      boundaries=[0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5])
        self.dialled: collections.OrderedDict[tuple, Any] = collections.OrderedDict()  # (pair, alpha) -> engine
        log.info("model %s loaded (x%d, engine %s), offered %s, warm-up done", s.model, self.scale,
                 self.engines[None].name, ", ".join(s.models) or "none")

    async def info(self) -> dict[str, Any]:
        """The served model, its scale, whether alpha dials it, its pair, the offered models with theirs
        (no pairs where this replica cannot dial: `dial` False, no torch), and what each model is told
        of an input (ModelConfig.conditions; [] for a blind one)."""
        s = self.settings
        pair_of = dial_pair if self.dial else lambda name: None
        pair = pair_of(s.model)
        return {"model": s.model, "scale": self.scale, "alpha": pair is not None, "pair": pair, "dial": self.dial,
                "models": {name: pair_of(name) for name in s.models},
                "conditions": {s.model: list(self.engines[None].conditions),
                               **{name: list(self.engines[name].conditions) for name in s.models}}}

    def _engine(self, model: str | None, alpha: float | None) -> Any:
        """The engine of `model` (None: the served one), or for an `alpha` its shipped pair
        interpolated, run by the device's fastest eager engine (srgan.eager.fastest_eager):
        exporting an engine per alpha would take seconds to minutes. The last ALPHAS_KEPT dialled
        generators stay in memory (6 MB each)."""
        if alpha is None:
            return self.engines[model]
        pair = dial_pair(model or self.settings.model)
        if (pair, alpha) not in self.dialled:
            import torch

            from pipelines.model_uri import load_engine
            from srgan.eager import fastest_eager

            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            self.dialled[pair, alpha] = load_engine(pair[0], fastest_eager(device), alpha=alpha)
            while len(self.dialled) > ALPHAS_KEPT:
                self.dialled.popitem(last=False)
        self.dialled.move_to_end((pair, alpha))
        return self.dialled[pair, alpha]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _infer(self, items: list[tuple[np.ndarray, str | None, float | None, Condition | None]]
                     ) -> list[np.ndarray]:
        """SR windows for the (window, model, alpha, condition) of all requests waiting now: one forward
        per model, alpha and window shape, so requests of one model and alpha still batch together,
        whatever each one's condition (a conditioned engine takes one vector per window)."""
        groups: dict[tuple, list[int]] = {}
        for i, (w, model, alpha, _) in enumerate(items):
            groups.setdefault((model, alpha, w.shape), []).append(i)
        out: list[np.ndarray] = [None] * len(items)  # type: ignore[list-item]
        for (model, alpha, _), idx in groups.items():
            t0 = time.perf_counter()
            engine = self._engine(model, alpha)
            cond = condition_vectors([items[i][3] or CLEAN for i in idx], engine.conditions) if engine.conditions \
                else None
            srs = await asyncio.to_thread(engine, [items[i][0] for i in idx], cond)
            per_tile = (time.perf_counter() - t0) / len(idx)
            for i, sr in zip(idx, srs):
                out[i] = sr
                self.tile_seconds.observe(per_tile)
            self.batch_size.observe(len(idx))
            self.tiles.inc(len(idx))
        return out

    async def _core(self, lr: np.ndarray, t: Tile, model: str | None, alpha: float | None,
                    condition: Condition | None) -> tuple[Tile, np.ndarray]:
        return t, np.ascontiguousarray(core(await self._infer((cut(lr, t), model, alpha, condition)), t, self.scale))

    async def upscale(self, lr: np.ndarray, alpha: float | None = None, model: str | None = None,
                      condition: Condition | None = None) -> AsyncIterator[Any]:
        """Stream for uint8 RGB `lr` (H, W, 3) by `model` (None: the served one; with `alpha`: its
        shipped pair interpolated, see `_engine`), told `condition` if it is a conditioned model (None:
        clean): first the number of tiles (the request has
        started: the caller's queue wait ends), then (tile, uint8 SR core) as each is done, in any
        order. At most `max_batch_size` windows of one request are in flight, so one large request
        cannot fill the batch queue and its memory stays bounded by the window."""
        tiles = plan_tiles(lr.shape[0], lr.shape[1], self.settings.tile, self.settings.pad)
        yield len(tiles)
        todo, running = iter(tiles), set()
        try:
            while True:
                while len(running) < self.settings.max_batch_size and (t := next(todo, None)) is not None:
                    running.add(asyncio.ensure_future(self._core(lr, t, model, alpha, condition)))
                if not running:
                    return
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            for task in running:  # the caller went away (timeout, disconnect): drop the queued windows
                task.cancel()
