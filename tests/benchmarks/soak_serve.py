"""Soak the endpoint: a mix of sizes, methods and bad inputs at a sustainable rate, for minutes.

    python tests/benchmarks/soak_serve.py [--model default] [--minutes 10] [--clients 2]

The app runs with the args and deployment options of cluster/serve.yaml, one replica of each
deployment (autoscaling off, so each replica's memory can be followed). First every bad input
of the fuzz corpus is sent once against an idle server (its status, code and seconds printed);
then `--clients` clients send requests back to back (a closed loop: the rate is what the server
sustains) drawn from a fixed mix: PNG and JPEG photos of 64 to 512 px, SR and bicubic, png, jpeg
and webp out, and one request in ten a bad input. Every minute it prints the requests, their
status codes, the slowest /healthz (asked every second) and the RSS of the Ingress and Upscaler
replicas and of Serve's proxy. At the end: the 5xx count (should be 0), each bad input's
expected and received status, and RSS growth from the first minute after warm-up to the last
(should stay under 10%).
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))

from bench_serve_large import deploy  # noqa: E402

from helpers import BENCHMARKS, bomb_png, broken_exif_webp, encode, mangled_tiff, serve_processes, strip_png  # noqa: E402


def bad_inputs() -> list[tuple[str, bytes, str, str, int]]:
    """(name, body, content type, query, expected status) for the production limits of serve.yaml."""
    from PIL import Image

    noisy = encode(Image.effect_noise((64, 64), 60).convert("RGB"))
    good = encode(Image.new("RGB", (8, 8), (1, 2, 3)))
    return [
        ("truncated png", noisy[: len(noisy) // 2], "image/png", "", 400),
        ("text named png", b"hello\n" * 20, "image/png", "", 415),
        ("mangled tiff", mangled_tiff(), "image/tiff", "", 400),
        ("broken-exif webp", broken_exif_webp(), "image/webp", "", 400),
        ("4200x2 to webp", strip_png(4200, 2), "image/png", "?format=webp", 413),  # over max_side first
        ("4096x2 to webp", strip_png(4096, 2), "image/png", "?format=webp", 400),  # 16384 px: over webp's limit
        ("4,000,000x1", strip_png(4_000_000, 1), "image/png", "", 413),
        ("decompression bomb", bomb_png(40000, 40000), "image/png", "", 413),
        ("quality=²", good, "image/png", "?quality=%C2%B2", 400),
        ("unknown parameter", good, "image/png", "?scale=8", 400),
        ("no content type", good, "", "", 415),
    ]


def photos() -> list[tuple[str, bytes, str]]:
    """Crops of Set14 at 64 to 512 px, as PNG and JPEG: (name, body, content type)."""
    from PIL import Image

    out = []
    for i, path in enumerate(sorted((BENCHMARKS / "Set14" / "HR").glob("*.png"))):
        img = Image.open(path).convert("RGB")
        side = (64, 128, 256, 512)[i % 4]
        crop = img.crop((0, 0, min(side, img.width), min(side * 3 // 4, img.height)))
        fmt = ("PNG", "image/png") if i % 2 else ("JPEG", "image/jpeg")
        out.append((f"{path.stem} {crop.width}x{crop.height} {fmt[0]}", encode(crop, fmt[0]), fmt[1]))
    return out


class Monitor(threading.Thread):
    """/healthz every second and RSS of the replicas and the proxy every 5 s."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.health: list[tuple[float, float]] = []  # (time, latency)
        self.rss: list[tuple[float, dict[str, int]]] = []
        self.procs = serve_processes()

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            tick = 0
            while not self.stop.is_set():
                t = time.perf_counter()
                ok = http.get(f"{self.url}/healthz").status_code == 200
                self.health.append((time.monotonic(), time.perf_counter() - t if ok else float("inf")))
                if tick % 5 == 0:
                    self.rss.append((time.monotonic(), {k: p.memory_info().rss for k, p in self.procs.items()}))
                tick += 1
                self.stop.wait(1)


def client(url: str, mix: list, until: float, results: list, seed: int) -> None:
    rnd = random.Random(seed)
    with httpx.Client(timeout=900) as http:
        while time.monotonic() < until:
            kind, name, body, ctype, query, expected = rnd.choice(mix)
            t = time.perf_counter()
            r = http.post(f"{url}/v1/upscale{query}", content=body, headers={"content-type": ctype} if ctype else {})
            results.append((time.monotonic(), kind, name, expected, r.status_code, time.perf_counter() - t))


def the_mix() -> list:
    """(kind, name, body, content type, query, expected status): 9 good requests to 1 bad."""
    good = []
    for name, body, ctype in photos():
        for method, fmt in (("sr", "png"), ("sr", "jpeg"), ("sr", "webp"), ("bicubic", "png")):
            good.append(("good", f"{name} {method}->{fmt}", body, ctype, f"?method={method}&format={fmt}", 200))
    bad = [("bad", n, b, c, q, s) for n, b, c, q, s in bad_inputs()]
    return good + bad * max(1, len(good) // (9 * len(bad)))


def minute_rows(results: list, mon: Monitor, t0: float, minutes: int) -> None:
    print(f"{'min':>4}{'requests':>9}{'200':>6}{'4xx':>6}{'5xx':>6}{'p50 s':>7}{'max s':>7}{'health max s':>13}"
          f"{'ingress MB':>11}{'upscaler MB':>12}{'proxy MB':>9}")
    for m in range(minutes):
        lo, hi = t0 + 60 * m, t0 + 60 * (m + 1)
        rs = [r for r in results if lo <= r[0] < hi]
        hs = [h for t, h in mon.health if lo <= t < hi] or [float("nan")]
        mem = [v for t, v in mon.rss if lo <= t < hi]
        last = mem[-1] if mem else {}
        lat = [r[5] for r in rs if r[1] == "good"] or [float("nan")]
        print(f"{m + 1:>4}{len(rs):>9}{sum(r[4] == 200 for r in rs):>6}{sum(400 <= r[4] < 500 for r in rs):>6}"
              f"{sum(r[4] >= 500 for r in rs):>6}{np.median(lat):>7.2f}{max(lat):>7.2f}{max(hs):>13.3f}"
              + "".join(f"{last.get(k, 0) / 2**20:>{w}.0f}" for k, w in (("Ingress", 11), ("Upscaler", 12),
                                                                          ("proxy", 9))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--clients", type=int, default=2, help="concurrent clients, back to back (default: 2)")
    ap.add_argument("--warmup-s", type=float, default=60, help="excluded from the RSS baseline (default: 60)")
    ap.add_argument("--upscaler-cpus", type=float, help="override the Upscaler's num_cpus (torch threads)")
    ap.add_argument("--timeout", type=float, help="override request_timeout_s")
    args = ap.parse_args()

    from ray import serve

    url = deploy(args)
    try:
        print(f"\nbad inputs, one at a time:\n{'input':<22}{'expected':>9}{'got':>5}  {'error':<22}{'s':>6}")
        for name, body, ctype, query, expected in bad_inputs():
            t = time.perf_counter()
            r = httpx.post(f"{url}/v1/upscale{query}", content=body, headers={"content-type": ctype} if ctype else {},
                           timeout=60)
            print(f"{name:<22}{expected:>9}{r.status_code:>5}  {r.json().get('error', ''):<22}"
                  f"{time.perf_counter() - t:>6.2f}")
        _, body, ctype = photos()[0]
        assert httpx.post(f"{url}/v1/upscale", content=body, headers={"content-type": ctype},
                          timeout=600).status_code == 200

        mix, results = the_mix(), []
        mon = Monitor(url)
        mon.start()
        t0 = time.monotonic()
        until = t0 + 60 * args.minutes
        threads = [threading.Thread(target=client, args=(url, mix, until, results, i)) for i in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        mon.stop.set()
        mon.join()
    finally:
        serve.shutdown()

    print(f"\nsoak: {args.clients} clients back to back for {args.minutes} min, {len(results)} requests")
    minute_rows(results, mon, t0, args.minutes)
    codes = collections.Counter((r[1], r[4]) for r in results)
    wrong = [(r[2], r[3], r[4]) for r in results if r[4] != r[3]]
    print(f"status codes: {dict(codes)}; 5xx: {sum(r[4] >= 500 for r in results)}; "
          f"answers other than expected: {len(wrong)} {wrong[:5]}")
    base = [v for t, v in mon.rss if t0 + args.warmup_s <= t < t0 + args.warmup_s + 60]
    last = [v for t, v in mon.rss if t >= until - 60]
    for role in ("Ingress", "Upscaler", "proxy"):
        b, e = np.median([v[role] for v in base]), np.median([v[role] for v in last])
        print(f"{role} RSS: {b / 2**20:.0f} MB (minute after warm-up) -> {e / 2**20:.0f} MB (last minute): "
              f"{100 * (e - b) / b:+.1f}%")


if __name__ == "__main__":
    main()
