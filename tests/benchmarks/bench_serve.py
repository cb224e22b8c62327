"""Benchmark and load-test the Serve endpoint on loopback.

    python tests/benchmarks/bench_serve.py [--model default] [--engine auto] [--seconds 60] [--clients 16]
    python tests/benchmarks/bench_serve.py --flood 120
    python tests/benchmarks/bench_serve.py --compare eager-bf16,auto [--rounds 3]

1. Throughput at saturation, 128x128 PNG in and 512x512 PNG out, decode and encode included:
   the model called directly in one process (one torch thread, as a 1-CPU replica gets) vs the
   endpoint with one replica, with `@serve.batch` on (8) and off (1).
2. A bounded load test with the autoscaling settings of cluster/serve.yaml: N concurrent clients
   for S seconds; errors, throughput, p50/p99 latency, and the replica count sampled every second
   during the load and for a while after it (it must go from 1 to 2 and back down).

`--compare A,B,...` instead measures end-to-end images/s of one replica (1 CPU, `@serve.batch` 8,
8 clients) for each engine in turn, the engines interleaved over `--rounds`, medians and ratios
to the first (issue 12: today's eager bf16 against the new default).

`--flood N` instead sends N requests at once (one 128x128 PNG each) to the app of
cluster/serve.yaml (one replica of each deployment) while a thread asks /healthz every 0.1 s:
status codes, the slowest answer, and /healthz latency during the flood (issue 12: before the
Ingress/Upscaler split, 120 clients all got 200, the slowest after 58 s, and /healthz took 9 s
at the median and timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT.parent / "shared" / "data" / "benchmarks"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inputs() -> list[bytes]:
    """128x128 PNG crops of the Set14 HR images."""
    from srgan.images import encode_image, load_image

    out = []
    for path in sorted((BENCH / "Set14" / "HR").glob("*.png")):
        rgb = load_image(path)
        out.append(encode_image(np.ascontiguousarray(rgb[:128, :128])))
    return out


def direct_rate(model: str, images: list[bytes], seconds: float, engine_name: str) -> float:
    from pipelines.model_uri import load_engine
    from srgan.images import decode_image, encode_image
    from srgan.inference import upscale_image

    torch.set_num_threads(1)  # before the engine is built: a runtime engine takes torch's thread count
    engine = load_engine(model, engine_name)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        encode_image(np.asarray(upscale_image(engine, decode_image(images[n % len(images)]), 128, 24)))
        n += 1
    return n / (time.perf_counter() - t0)


async def load(url: str, images: list[bytes], clients: int, seconds: float, on_tick=None) -> dict:
    """Clients upscaling back to back; a refused one (503) waits its Retry-After, as a client should.
    Latency and rate count the answered (200) requests."""
    latencies: list[float] = []
    codes: collections.Counter = collections.Counter()
    stop = time.perf_counter() + seconds

    async def client(i: int, http: httpx.AsyncClient) -> None:
        k = i
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = await http.post(f"{url}/v1/upscale", content=images[k % len(images)],
                                headers={"content-type": "image/png"})
            codes[r.status_code] += 1
            if r.status_code == 503:
                await asyncio.sleep(float(r.headers.get("retry-after", 1)))
                continue
            latencies.append(time.perf_counter() - t)
            k += clients

    async def ticker() -> None:
        while time.perf_counter() < stop:
            if on_tick:
                on_tick()
            await asyncio.sleep(1)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as http:
        await asyncio.gather(ticker(), *[client(i, http) for i in range(clients)])
    wall = time.perf_counter() - t0
    lat = np.array(latencies)
    return {"requests": sum(codes.values()), "codes": dict(codes), "errors": sum(codes[c] for c in codes if c >= 500),
            "rate": codes[200] / wall, "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}


def replicas() -> int:
    from ray import serve

    app = serve.status().applications.get("srgan")
    if app is None:
        return 0
    return app.deployments["Upscaler"].replica_states.get("RUNNING", 0)


def deploy(port: int, settings, **options) -> str:
    """The app with `options` for the Upscaler (the model) and the Ingress's defaults."""
    from ray import serve

    from pipelines.serve import build

    # The Ingress mostly waits on the model: no logical CPU, so that two 1-CPU model replicas fit 2 cores.
    serve.run(build(settings, {"Upscaler": options, "Ingress": {"ray_actor_options": {"num_cpus": 0}}}),
              name="srgan", route_prefix="/")
    return f"http://127.0.0.1:{port}"


def compare(port: int, model: str, engines: list[str], images: list[bytes], seconds: float, rounds: int) -> None:
    from pipelines.settings import ServeSettings

    rates: dict[str, list[float]] = {e: [] for e in engines}
    for _ in range(rounds):
        for engine in engines:
            url = deploy(port, ServeSettings(model=model, engine=engine), num_replicas=1, autoscaling_config=None,
                         ray_actor_options={"num_cpus": 1})
            asyncio.run(load(url, images, 4, 3))  # warm
            rates[engine].append(asyncio.run(load(url, images, 8, seconds))["rate"])
    base = float(np.median(rates[engines[0]]))
    print(f"{'engine':<16}{'images/s':>9}{'vs ' + engines[0]:>16}  rounds")
    for engine, r in rates.items():
        print(f"{engine:<16}{np.median(r):>9.2f}{np.median(r) / base:>15.2f}x  {', '.join(f'{x:.2f}' for x in r)}")


def flood(url: str, images: list[bytes], n: int) -> None:
    import threading

    health: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                t = time.perf_counter()
                ok = http.get(f"{url}/healthz").status_code == 200
                health.append(time.perf_counter() - t if ok else float("inf"))
                stop.wait(0.1)

    async def one(http: httpx.AsyncClient, i: int) -> tuple[int, float, str]:
        t = time.perf_counter()
        r = await http.post(f"{url}/v1/upscale", content=images[i % len(images)], headers={"content-type": "image/png"})
        return r.status_code, time.perf_counter() - t, "" if r.status_code == 200 else r.json()["error"]

    async def all_at_once() -> list:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(timeout=900, limits=limits) as http:
            return await asyncio.gather(*[one(http, i) for i in range(n)])

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    t0 = time.perf_counter()
    answers = asyncio.run(all_at_once())
    wall = time.perf_counter() - t0
    stop.set()
    prober.join()
    codes = collections.Counter(f"{c} {e}".strip() for c, _, e in answers)
    by_code = {c: max(s for c2, s, _ in answers if c2 == c) for c in {a[0] for a in answers}}
    print(f"flood: {n} requests at once, all answered in {wall:.1f} s: {dict(codes)}")
    print("slowest answer by status: " + ", ".join(f"{c}: {s:.2f} s" for c, s in sorted(by_code.items())))
    print(f"/healthz during the flood: {len(health)} asks, median {np.median(health):.3f} s, "
          f"max {max(health):.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--seconds", type=float, default=60, help="load-test length (default: %(default)s)")
    ap.add_argument("--clients", type=int, default=16, help="load-test clients (default: %(default)s)")
    ap.add_argument("--rate-seconds", type=float, default=20, help="length of each throughput run")
    ap.add_argument("--engine", default="auto", help="srgan.engines name (default: %(default)s)")
    ap.add_argument("--flood", type=int, metavar="N", help="only the flood test: N requests at once")
    ap.add_argument("--compare", metavar="A,B", help="only end-to-end images/s of these engines, interleaved")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --compare (default: %(default)s)")
    args = ap.parse_args()

    import yaml
    from ray import serve

    from pipelines.cluster import ensure_ray
    from pipelines.serve import build
    from pipelines.settings import ServeSettings

    images = inputs()
    spec = yaml.safe_load((ROOT / "cluster" / "serve.yaml").read_text())["applications"][0]
    if args.flood:
        ensure_ray()
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        options = {d["name"]: {**{k: v for k, v in d.items() if k not in ("name", "autoscaling_config")},
                               "num_replicas": 1} for d in spec["deployments"]}
        settings = ServeSettings.from_args({**spec["args"], "model": args.model, "engine": args.engine})
        serve.run(build(settings, options), name="srgan", route_prefix="/")
        flood(f"http://127.0.0.1:{port}", images, args.flood)
        serve.shutdown()
        return
    if args.compare:
        ensure_ray()
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        compare(port, args.model, args.compare.split(","), images, args.rate_seconds, args.rounds)
        serve.shutdown()
        return
    direct = direct_rate(args.model, images, args.rate_seconds, args.engine)
    ensure_ray()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    rows = [("direct, one process", direct, None)]
    for batch in (8, 1):
        settings = ServeSettings(model=args.model, engine=args.engine, max_batch_size=batch)
        url = deploy(port, settings, num_replicas=1, autoscaling_config=None, ray_actor_options={"num_cpus": 1})
        asyncio.run(load(url, images, 4, 3))  # warm
        r = asyncio.run(load(url, images, 8, args.rate_seconds))
        rows.append((f"endpoint, 1 replica, batch {batch}", r["rate"], r))

    [auto] = [d for d in spec["deployments"] if d["name"] == "Upscaler"]
    url = deploy(port, ServeSettings(model=args.model, engine=args.engine),
                 autoscaling_config=auto["autoscaling_config"], ray_actor_options=auto["ray_actor_options"],
                 max_ongoing_requests=auto["max_ongoing_requests"])
    counts: list[int] = []
    result = asyncio.run(load(url, images, args.clients, args.seconds, lambda: counts.append(replicas())))
    after = []
    for _ in range(int(auto["autoscaling_config"]["downscale_delay_s"]) + 40):
        after.append(replicas())
        if after[-1] == 1 and max(counts) > 1:
            break
        time.sleep(1)
    serve.shutdown()

    print(f"{'':<34}{'images/s':>9}{'vs direct':>10}{'p50 s':>7}{'p99 s':>7}")
    for name, rate, r in rows:
        extra = f"{r['p50']:>7.2f}{r['p99']:>7.2f}" if r else ""
        print(f"{name:<34}{rate:>9.2f}{rate / direct:>9.2f}x{extra}")
    print(f"load test: {args.clients} clients x {args.seconds:.0f} s: {result['requests']} requests, "
          f"status codes {result['codes']}, {result['rate']:.2f} images/s, "
          f"p50 {result['p50']:.2f} s, p99 {result['p99']:.2f} s (answered requests)")
    print(f"replicas during load: {counts}")
    print(f"replicas after load (1 s apart): {after}")


if __name__ == "__main__":
    main()
