"""`srgan demo`: the whole pipeline on data shipped with the package, in a few minutes.

    prepare  the shipped training images -> shards                      (Ray Data)
    train    a short fine-tune of the shipped generator, tracked         (Ray Train + MLflow)
    evaluate bicubic, the shipped generator and the fine-tune on Set5    (paper protocol)
    serve    the endpoint started on loopback and called over HTTP       (Ray Serve)
    report   DIR/report.md and DIR/comparison.png (bicubic | SR | HR)
and everything it started is shut down.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from srgan import ASSETS, DEFAULT_MODEL

log = logging.getLogger(__name__)
SET5 = ASSETS / "benchmarks" / "Set5"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on shipped data (a few minutes)",
                       description="prepare -> train -> evaluate -> serve on data shipped with the package.")
    p.add_argument("--out", type=Path, default=Path("srgan-demo"), help="output folder (default: %(default)s)")
    p.add_argument("--steps", type=int, default=40, help="fine-tuning steps (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import ray

    out: Path = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            raise FileExistsError(f"--out {out} is not empty; pass --overwrite to replace it")
        if not (out / "report.md").exists() and not (out / "shards").exists():
            raise FileExistsError(f"--out {out} does not look like a demo folder; refusing to overwrite it")
        import shutil
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    started_ray = not ray.is_initialized()
    t0 = time.time()
    with _quiet():
        try:
            report = _pipeline(out, args.steps)
        finally:
            if started_ray:
                ray.shutdown()  # Serve and all
            else:
                from ray import serve
                serve.shutdown()
    report["total_s"] = time.time() - t0
    (out / "report.md").write_text(_markdown(report))
    print(f"demo done in {report['total_s']:.0f} s; outputs in {out}: report.md, comparison.png, sr/, "
          f"shards/, runs/, mlflow.db")
    return 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The demo's console: its own progress, the training log, the endpoint and the report; the
    libraries' INFO logs stay in Ray's log files (pipelines.cluster.QUIET_ENV). Undone after."""
    from pipelines.cluster import OWN_LOGGERS, QUIET_ENV, QUIET_LOGGERS, quiet

    saved_env = {k: os.environ.get(k) for k in QUIET_ENV}
    saved_levels = {name: logging.getLogger(name).level for name in ("", *OWN_LOGGERS, *QUIET_LOGGERS)}
    os.environ.update(QUIET_ENV)
    quiet()
    try:
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


def _pipeline(out: Path, steps: int) -> dict:
    from pipelines import tracking
    from pipelines.cluster import ensure_ray
    from pipelines.prepare import run_prepare
    from pipelines.settings import PrepareParams, TrainJob
    from pipelines.train import run_training
    from srgan.checkpoint import model_config
    from srgan.config import load_config, to_dict

    timings = {}
    ensure_ray()
    t = time.time()
    manifest = run_prepare([str(ASSETS / "train")], str(out / "shards"), PrepareParams(stride=64, val_fraction=0))
    timings["prepare"] = time.time() - t
    print(f"prepare: {manifest['images_processed']} images -> {manifest['tiles']['train']} tiles in "
          f"{len(manifest['shards'])} shard(s) ({timings['prepare']:.0f} s)")
    print(f"train: {steps} fine-tuning steps of the shipped generator, tracked in MLflow ({out}/mlflow.db)")
    model = to_dict(model_config(DEFAULT_MODEL))
    cfg = load_config("paper", overrides=[f"model.{k}={v}" for k, v in model.items()] + [
        f"srresnet.steps={steps}", "srresnet.learning_rate=2e-5", "loss.pixel=l1",
        f"train.log_every={max(1, steps // 5)}", f"train.val_every={steps}", f"train.checkpoint_every={steps}"])
    t = time.time()
    result = run_training(TrainJob(phase="srresnet", data=str(out / "shards"), cfg=cfg, init="default",
                              val=str(SET5 / "HR"), storage=str(out / "runs"), name="demo",
                              tracking_uri=f"sqlite:///{out}/mlflow.db", experiment="srgan-demo",
                              registered_model="srgan-demo"))
    timings["train"] = time.time() - t
    print(f"train: done ({timings['train']:.0f} s); registered as {result.metrics.get('model_uri')}")
    t = time.time()
    scores = _evaluate(result.checkpoint.path, out)
    timings["evaluate"] = time.time() - t
    print("evaluate (Set5, PSNR dB): " + ", ".join(f"{name} {s['psnr']:.2f}" for name, s in scores.items()))
    t = time.time()
    endpoint = _call_endpoint(result.checkpoint.path, out)
    timings["serve"] = time.time() - t
    return {"manifest": manifest, "scores": scores, "endpoint": endpoint, "timings": timings, "steps": steps,
            "run_id": result.metrics["mlflow_run_id"], "checkpoint": result.checkpoint.path,
            "model_uri": result.metrics.get("model_uri"), "tracking": tracking.tracking_uri(f"sqlite:///{out}/mlflow.db")}


def _evaluate(checkpoint: str, out: Path) -> dict:
    from srgan.benchmarks import bicubic_upscaler, comparison_grid, evaluate_set, load_pair
    from srgan.checkpoint import load_generator
    from srgan.images import save_image
    from srgan.inference import upscale

    default, tuned = load_generator(DEFAULT_MODEL), load_generator(checkpoint)
    scores = {"bicubic": evaluate_set(bicubic_upscaler(4), SET5, 4),
              "shipped generator": evaluate_set(lambda lr: upscale(default, lr), SET5, 4, out / "sr"),
              "after the fine-tune": evaluate_set(lambda lr: upscale(tuned, lr), SET5, 4)}
    lr, hr, _ = load_pair(SET5 / "HR" / "butterfly.png", SET5 / "LR_bicubic" / "X4", 4)
    save_image(out / "comparison.png", comparison_grid(lr, upscale(default, lr), hr, size=256))
    return scores


def _call_endpoint(checkpoint: str, out: Path) -> dict:
    """Start the Serve app on a free loopback port, upscale one image over HTTP, check the answer."""
    import httpx
    from ray import serve

    from pipelines.cluster import QUIET_LEVEL, quiet
    from pipelines.serve import app
    from srgan.images import decode_image

    quiet()  # over Serve's driver-side logger, set up by its import

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": QUIET_LEVEL})
    # the fine-tune alone (its int8 graph exported by training, with the model it registered): no
    # other model to load, nothing to export here
    serve.run(app({"model": checkpoint, "models": []}), name="srgan", route_prefix="/",
              logging_config={"log_level": QUIET_LEVEL})
    print(f"endpoint ready at http://127.0.0.1:{port}/ (the web page; POST /v1/upscale)")
    url = f"http://127.0.0.1:{port}"
    lr_path = SET5 / "LR_bicubic" / "X4" / "bird.png"
    t = time.time()
    r = httpx.post(f"{url}/v1/upscale", content=lr_path.read_bytes(), headers={"content-type": "image/png"},
                   timeout=120)
    latency = time.time() - t
    r.raise_for_status()
    (out / "bird_x4_from_endpoint.png").write_bytes(r.content)
    size = decode_image(r.content).rgb.shape[:2]
    ready = httpx.get(f"{url}/readyz", timeout=10).json()
    serve.delete("srgan")
    return {"url": url, "status": r.status_code, "size": f"{size[1]}x{size[0]}", "latency_s": latency,
            "ready": ready["ready"]}


def _markdown(r: dict) -> str:
    m, e = r["manifest"], r["endpoint"]
    rows = "\n".join(f"| {name} | {s['psnr']:.2f} | {s['ssim']:.4f} |" for name, s in r["scores"].items())
    times = ", ".join(f"{k} {v:.0f} s" for k, v in r["timings"].items())
    return f"""# srgan demo report

Shipped data only: {m['images_processed']} training images (srgan/assets/train) and Set5 (srgan/assets/benchmarks).

1. **prepare** (Ray Data): {m['images_processed']} images -> {m['tiles']['train']} tiles of 128 px in
   {len(m['shards'])} shard(s), content hash `{m['content_hash'][:16]}`.
2. **train** (Ray Train + MLflow): {r['steps']} fine-tuning steps from the shipped generator (L1, lr 2e-5).
   MLflow run `{r['run_id']}` in `{r['tracking']}`, model `{r['model_uri']}`;
   checkpoint `{r['checkpoint']}`.
3. **evaluate** (Set5, x4, Y channel, 4 px border):

| model | PSNR (dB) | SSIM |
|---|---|---|
{rows}

4. **serve** (Ray Serve): `{e['url']}/v1/upscale` answered {e['status']} with a {e['size']} image in
   {e['latency_s']:.2f} s (ready: {e['ready']}); saved as `bird_x4_from_endpoint.png`.
5. `comparison.png`: bicubic | shipped generator | HR, a crop of Set5 butterfly.

Timings: {times}; total {r['total_s']:.0f} s.
"""
