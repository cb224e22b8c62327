"""A maximum-size image through the endpoint and through `srgan upscale`: time and peak memory.

    python tests/benchmarks/bench_serve_large.py [--model default] [--size 2000] [--methods bicubic,sr]
                                                 [--upscaler-cpus 1] [--offline]

The app runs with the args and deployment options of cluster/serve.yaml (one replica of each
deployment, no autoscaling; `--timeout` raises the request timeout for a slow host). For each
method it sends one SIZE x SIZE photo (a Set14 image resized: content matters for PNG) and
streams the answer to disk, while a second client asks /healthz every 0.5 s and upscales a 32 px
image every 2 s. Printed per run: status, seconds, output size, the peak RSS (VmHWM, reset
before the run) of the Ingress and Upscaler replicas and of Serve's proxy, and the slowest
health and small-image answers during it. `--offline` also runs `srgan upscale` on the same file
in a child process and prints its time and peak RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import BENCHMARKS, encode, peak_rss, reset_peak_rss, serve_processes  # noqa: E402


def photo(size: int) -> bytes:
    from PIL import Image

    src = Image.open(BENCHMARKS / "Set14" / "HR" / "lenna.png").convert("RGB")
    return encode(src.resize((size, size), Image.LANCZOS))


class SideClient(threading.Thread):
    """Health every 0.5 s and a 32 px upscale every 2 s while the big request runs."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        from PIL import Image

        self.url, self.small = url, encode(Image.effect_noise((32, 32), 40).convert("RGB"))
        self.health: list[float] = []
        self.small_runs: list[tuple[int, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=120) as http:
            tick = 0
            while not self.stop.is_set():
                t = time.perf_counter()
                http.get(f"{self.url}/healthz").raise_for_status()
                self.health.append(time.perf_counter() - t)
                if tick % 4 == 0:
                    t = time.perf_counter()
                    r = http.post(f"{self.url}/v1/upscale", content=self.small, headers={"content-type": "image/png"})
                    self.small_runs.append((r.status_code, time.perf_counter() - t))
                tick += 1
                self.stop.wait(0.5)


def endpoint_run(url: str, data: bytes, method: str) -> dict:
    procs = serve_processes()
    for p in procs.values():
        reset_peak_rss(p.pid)
    side = SideClient(url)
    side.start()
    t0 = time.perf_counter()
    size = 0
    with httpx.Client(timeout=None) as http, http.stream(
            "POST", f"{url}/v1/upscale?method={method}", content=data, headers={"content-type": "image/png"}) as r:
        for chunk in r.iter_bytes():
            size += len(chunk)
        status, detail = r.status_code, r.headers.get("x-size", "")
    seconds = time.perf_counter() - t0
    side.stop.set()
    side.join()
    row = {"case": f"endpoint, method={method}", "status": status, "seconds": seconds, "out_mb": size / 2**20,
           "size": detail, "health_max": max(side.health), "health_n": len(side.health),
           "small": [f"{c}:{s:.1f}" for c, s in side.small_runs]}
    for role in ("Ingress", "Upscaler", "proxy"):
        row[role] = peak_rss(procs[role].pid) / 2**20
    return row


def offline_run(path: Path, model: str, engine: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-upscale-"))
    cmd = [sys.executable, "-m", "pipelines.cli", "upscale", str(path), "-o", str(out), "--model", model]
    t0 = time.perf_counter()
    child = subprocess.Popen([*cmd, "--engine", engine], cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    [written] = list(out.iterdir()) or [None]
    return {"case": "srgan upscale (offline)", "status": os.waitstatus_to_exitcode(status), "seconds": seconds,
            "out_mb": written.stat().st_size / 2**20 if written else 0, "peak_mb": usage.ru_maxrss / 1024}


def deploy(args) -> str:
    import ray
    from ray import serve

    from pipelines.cluster import LOCAL_RUNTIME_ENV
    from pipelines.serve import build
    from pipelines.settings import ServeSettings

    spec = yaml.safe_load((ROOT / "cluster" / "serve.yaml").read_text())["applications"][0]
    settings = ServeSettings.from_args({**spec["args"], "model": args.model,
                                        "request_timeout_s": args.timeout or spec["args"]["request_timeout_s"]})
    options = {}
    for d in spec["deployments"]:
        o = {k: v for k, v in d.items() if k not in ("name", "autoscaling_config")}
        o["num_replicas"] = 1
        if d["name"] == "Upscaler" and args.upscaler_cpus:
            o["ray_actor_options"] = {**o.get("ray_actor_options", {}), "num_cpus": args.upscaler_cpus}
        options[d["name"]] = o
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", runtime_env=LOCAL_RUNTIME_ENV)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build(settings, options), name="srgan", route_prefix="/")
    print("settings:", dataclasses.asdict(settings))
    return f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--size", type=int, default=2000, help="input side in px (default: %(default)s)")
    ap.add_argument("--methods", default="bicubic,sr")
    ap.add_argument("--upscaler-cpus", type=float, help="override the Upscaler's num_cpus (torch threads)")
    ap.add_argument("--timeout", type=float, help="override request_timeout_s (a slow host)")
    ap.add_argument("--offline", action="store_true", help="also time `srgan upscale` on the same image")
    args = ap.parse_args()

    from ray import serve

    data = photo(args.size)
    path = Path(tempfile.mkdtemp(prefix="bench-large-")) / f"photo{args.size}.png"
    path.write_bytes(data)
    print(f"input: {args.size}x{args.size} PNG, {len(data) / 2**20:.1f} MB; load average {os.getloadavg()}")
    rows = []
    url = deploy(args)
    try:
        idle = {role: p.memory_info().rss / 2**20 for role, p in serve_processes().items()}
        print("idle RSS MB:", {k: round(v) for k, v in idle.items()})
        for method in args.methods.split(","):
            rows.append(endpoint_run(url, data, method))
            print(rows[-1], flush=True)
    finally:
        serve.shutdown()
    if args.offline:
        settings = yaml.safe_load((ROOT / "cluster" / "serve.yaml").read_text())["applications"][0]["args"]
        rows.append(offline_run(path, args.model, settings.get("engine", "auto")))
        print(rows[-1], flush=True)
    print(f"\n{'case':<28}{'status':>7}{'s':>8}{'out MB':>8}{'ingress MB':>11}{'upscaler MB':>12}{'proxy MB':>9}"
          f"{'health max s':>13}")
    for r in rows:
        mem = (f"{r['Ingress']:>11.0f}{r['Upscaler']:>12.0f}{r['proxy']:>9.0f}{r['health_max']:>13.2f}"
               if "Ingress" in r else f"{r['peak_mb']:>11.0f} (one process)")
        print(f"{r['case']:<28}{r['status']:>7}{r['seconds']:>8.1f}{r['out_mb']:>8.1f}{mem}")


if __name__ == "__main__":
    main()
