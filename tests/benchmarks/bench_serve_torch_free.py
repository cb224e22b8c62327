"""The endpoint through a replica without torch (the serving image's) against today's int8 replica,
in one run: PSNR on Set5, Set14 and BSD100 over HTTP, and images per second.

    python tests/benchmarks/bench_serve_torch_free.py [--model auto] [--rounds 3] [--clients 4]

Two apps on one local Serve, the same settings (the served model alone, engine auto, one
Upscaler replica of half a CPU each, so that both fit on 2 cores; Ray gives a fractional share one
thread): `int8`, a replica as the full image runs it, and `torch-free`,
whose process cannot import torch, SciPy, pyarrow and the exporters (a sitecustomize on its
PYTHONPATH makes each import fail, as in the serving image); both run the shipped model's int8
engine from the cache (`srgan export --shipped` first). PSNR: the paper's protocol on the
answers to each set's own LR PNGs. Images per second: each set sent by `--clients` concurrent
clients, the two apps in turn over `--rounds` rounds; the median per app.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import serving_image_python  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "benchmarks"
REPLICA = {"num_replicas": 1, "autoscaling_config": None}


def sets() -> dict[str, list[tuple[bytes, np.ndarray]]]:
    """Set name -> (its LR PNG bytes, its HR image) per image."""
    from srgan.benchmarks import load_pair, set_layout
    from srgan.images import encode_image

    out = {}
    for name in ("Set5", "Set14", "BSD100"):
        files, lr_dir = set_layout(DATA / name, 4)
        pairs = [load_pair(f, lr_dir, 4)[:2] for f in files]
        out[name] = [(encode_image(lr), hr) for lr, hr in pairs]
    return out


async def send(url: str, bodies: list[bytes], clients: int) -> tuple[list[bytes], float]:
    """The answers to `bodies` (in order), `clients` at a time, and the wall seconds."""
    answers: list[bytes] = [b""] * len(bodies)
    todo = iter(range(len(bodies)))

    async def client(http: httpx.AsyncClient) -> None:
        for i in todo:
            r = await http.post(f"{url}/v1/upscale", content=bodies[i], headers={"content-type": "image/png"})
            r.raise_for_status()
            answers[i] = r.content

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return answers, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="auto")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()

    import os
    import socket

    import ray
    from ray import serve

    from pipelines.cluster import ensure_ray
    from pipelines.model_uri import load_engine
    from pipelines.serve import build
    from pipelines.settings import ServeSettings
    from srgan.images import decode_image
    from srgan.metrics import psnr

    load_engine(args.model)  # its int8 engine into the cache, where both replicas find it
    data = sets()
    ensure_ray()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    blocker = serving_image_python(Path(tempfile.mkdtemp()))
    env = {"SRGAN_CACHE": os.environ.get("SRGAN_CACHE", str(Path.home() / ".cache" / "srgan"))}
    settings = asdict(ServeSettings(model=args.model, models=(args.model,), engine="auto"))
    urls = {}
    for app, extra in (("int8", {}), ("torch-free", {"PYTHONPATH": str(blocker)})):
        options = {"Upscaler": {**REPLICA, "ray_actor_options": {"num_cpus": 0.5, "runtime_env": {
                       "env_vars": {**env, **extra}}}},
                   "Ingress": {**REPLICA, "ray_actor_options": {"num_cpus": 0.25}}}
        serve.run(build(ServeSettings(**settings), options), name=app, route_prefix=f"/{app}")
        urls[app] = f"http://127.0.0.1:{port}/{app}"
    dial = {app: httpx.get(f"{url}/readyz", timeout=60).json()["dial"] for app, url in urls.items()}
    assert dial == {"int8": True, "torch-free": False}, dial  # the second replica really has no torch

    print(f"model {args.model}, engine auto; one Upscaler replica (0.5 CPU, 1 thread) per app; {args.clients} clients")
    print(f"{'set':<8} {'images':>6} {'PSNR int8':>10} {'PSNR torch-free':>16} {'img/s int8':>11} "
          f"{'img/s torch-free':>17} {'ratio':>6}")
    for name, items in data.items():
        bodies = [body for body, _ in items]
        rates: dict[str, list[float]] = {app: [] for app in urls}
        scores = {}
        for _ in range(args.rounds):
            for app, url in urls.items():
                answers, seconds = asyncio.run(send(url, bodies, args.clients))
                rates[app].append(len(bodies) / seconds)
                scores[app] = float(np.mean([psnr(decode_image(a).rgb, hr, 4) for a, (_, hr) in zip(answers, items)]))
        rate = {app: statistics.median(r) for app, r in rates.items()}
        print(f"{name:<8} {len(items):>6} {scores['int8']:>10.3f} {scores['torch-free']:>16.3f} "
              f"{rate['int8']:>11.2f} {rate['torch-free']:>17.2f} {rate['torch-free'] / rate['int8']:>6.2f}")
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
