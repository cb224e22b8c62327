"""Benchmark `srgan prepare`: Ray Data vs a plain single-process loop doing the same work.

    python tests/benchmarks/bench_prepare.py [--data ../shared/data/train] [--repeat 20]

Both sides call the same `process_group` (read, decode, bicubic, tile, write zstd Parquet) on the
same corpus, listed `--repeat` times so that the run lasts long enough to reach steady state.
Each side runs in a child process; its peak RSS is that of the whole process tree (for Ray:
driver, raylet, GCS and workers), sampled every 0.1 s. Ray's start-up (the cluster, and its worker
processes warmed by a small job on the corpus once) is timed apart from the job.
Ray is also run on the corpus listed once and 4 times, to show memory does not grow with it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def child(mode: str, data: str, repeat: int, out: str) -> None:
    from pipelines.cluster import ensure_ray
    from pipelines.prepare import expand_inputs, process_group, run_prepare
    from pipelines.settings import PrepareParams

    params, inputs = PrepareParams(), [data] * repeat
    uris, _ = expand_inputs(inputs)
    mb = sum(Path(u).stat().st_size for u in uris) / 1e6
    start_s = 0.0
    t0 = time.perf_counter()
    if mode == "loop":
        n = params.images_per_shard
        for i, j in enumerate(range(0, len(uris), n)):
            process_group({"group": i, "uris": uris[j:j + n]}, params, out)
    else:
        ensure_ray()  # start-up: the cluster, then its worker processes warmed on a small job
        run_prepare([data], f"{out}/warm-up", PrepareParams(images_per_shard=8))
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_prepare(inputs, f"{out}/job", params)
    print(json.dumps({"images": len(uris), "mb": mb, "seconds": time.perf_counter() - t0, "startup": start_s}))


def measure(mode: str, data: str, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.Popen([sys.executable, __file__, "--child", mode, "--data", data, "--repeat", str(repeat),
                                 "--out", out], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak, done = [0], threading.Event()

        def sample() -> None:
            root = psutil.Process(proc.pid)
            while not done.is_set():
                try:
                    procs = [root, *root.children(recursive=True)]
                    peak[0] = max(peak[0], sum(p.memory_info().rss for p in procs if p.is_running()))
                except psutil.Error:
                    pass  # a process ended between listing and reading: the next sample counts
                time.sleep(0.1)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        stdout, _ = proc.communicate()
        done.set()
        thread.join()
        if proc.returncode:
            raise SystemExit(f"{mode} x{repeat} failed with exit code {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "mode": mode, "repeat": repeat, "peak_rss_mb": peak[0] / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--repeat", type=int, default=20, help="times the corpus is listed for the throughput runs")
    ap.add_argument("--child", choices=["loop", "ray"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.data, args.repeat, args.out)
    runs = [measure("loop", args.data, args.repeat), measure("ray", args.data, args.repeat),
            measure("ray", args.data, 1), measure("ray", args.data, 4)]
    print(f"{'mode':<6}{'x':>4}{'images':>8}{'start s':>9}{'job s':>8}{'images/s':>10}{'MB/s':>8}{'peak RSS MB':>13}")
    for r in runs:
        print(f"{r['mode']:<6}{r['repeat']:>4}{r['images']:>8}{r['startup']:>9.1f}{r['seconds']:>8.1f}"
              f"{r['images'] / r['seconds']:>10.1f}{r['mb'] / r['seconds']:>8.1f}{r['peak_rss_mb']:>13.0f}")
    loop, ray_run, one, four = runs
    print(f"Ray Data / loop throughput (x{args.repeat}): {loop['seconds'] / ray_run['seconds']:.2f}x")
    print(f"Ray peak RSS, corpus x4 / x1: {four['peak_rss_mb'] / one['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
