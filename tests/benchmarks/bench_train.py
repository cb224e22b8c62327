"""Benchmark training speed: precision/layout in one process, and the cost of Ray Train.

    python tests/benchmarks/bench_train.py [--steps 20] [--data SHARDS]

All rows are SRResNet (paper size: 16 blocks, 64 channels) generator steps at batch 16, HR 96 px:
  1. core loop, one process: fp32 eager vs bf16 autocast + channels_last
  2. the same core loop as a plain Ray task with the CPUs a Ray Train worker gets (being a Ray worker)
  3. Ray Train, one worker, those CPUs: DDP wrapper, data ingest from shards, reporting and
     checkpoints included (its steady-state s/step comes from the run's own step timer)
Without --data, shards of ../shared/data/train are prepared first (not timed).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def core_loop(steps: int, warmup: int, bf16: bool, channels_last: bool, threads: int) -> float:
    """Seconds per generator step on a fixed random batch (no data loading)."""
    from srgan.config import load_config
    from srgan.losses import pixel_loss
    from srgan.models import Generator
    from srgan.steps import generator_step

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = Generator(load_config("paper").model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = g.to(memory_format=fmt)
    opt = torch.optim.Adam(g.parameters(), 1e-4)
    hr = torch.rand(16, 3, 96, 96).contiguous(memory_format=fmt)
    lr = torch.nn.functional.avg_pool2d(hr, 4).contiguous(memory_format=fmt)
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        generator_step(g, opt, lr, hr, pixel_loss("mse"), bf16=bf16)
    return (time.perf_counter() - t0) / steps


def ray_train_step(data: str, steps: int, cpus: float, workdir: str) -> float:
    from mlflow.tracking import MlflowClient

    from pipelines.train import Job, run_training
    from srgan.config import load_config

    log_every = 10
    cfg = load_config("paper", overrides=[f"srresnet.steps={steps}", f"train.log_every={log_every}",
                                          f"train.checkpoint_every={steps // 2}", "train.val_every=100000"])
    uri = f"sqlite:///{workdir}/mlflow.db"
    result = run_training(Job(phase="srresnet", data=data, cfg=cfg, cpus_per_worker=cpus,
                              storage=f"{workdir}/runs", tracking_uri=uri, experiment="bench"))
    rates = [m.value for m in sorted(MlflowClient(uri).get_metric_history(result.metrics["mlflow_run_id"],
                                                                         "train/steps_per_s"), key=lambda m: m.step)]
    steady = rates[len(rates) // 2:]  # the first half holds start-up: Ray Data's and Train's actors warming up
    return len(steady) / sum(steady)  # mean s/step over equal windows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per core-loop row (default: %(default)s)")
    ap.add_argument("--train-steps", type=int, default=200, help="Ray Train run length (default: %(default)s)")
    ap.add_argument("--data", help="shard folder (default: prepare ../shared/data/train into a temp folder)")
    args = ap.parse_args()

    import ray

    from pipelines.cluster import ensure_ray
    from pipelines.prepare import PrepareParams, run_prepare

    cpus = 1.5  # what a worker reserves on 2 cores, leaving room for Ray Data
    threads = math.ceil(cpus)
    fp32 = core_loop(args.steps, 2, False, False, threads)
    bf16 = core_loop(args.steps, 2, True, True, threads)
    with tempfile.TemporaryDirectory() as work:
        ensure_ray()
        data = args.data or (run_prepare([str(ROOT.parent / "shared" / "data" / "train")], f"{work}/shards",
                                        PrepareParams()) and f"{work}/shards")
        in_task = ray.get(ray.remote(num_cpus=cpus)(core_loop).remote(args.steps, 2, True, True, threads))
        trained = ray_train_step(data, args.train_steps, cpus, work)
    rows = [("core, fp32 eager", fp32), ("core, bf16 + channels_last", bf16),
            (f"core in a Ray task ({cpus} CPU)", in_task), (f"Ray Train, 1 worker ({cpus} CPU)", trained)]
    print(f"{'':<36}{'s/step':>8}")
    for name, value in rows:
        print(f"{name:<36}{value:>8.3f}")
    print(f"bf16 + channels_last speed-up over fp32 eager: {fp32 / bf16:.2f}x")
    print(f"cost of being a Ray worker (task vs process):   {in_task / bf16 - 1:+.1%}")
    print(f"Ray Train overhead per step (vs Ray task):      {trained / in_task - 1:+.1%}")


if __name__ == "__main__":
    main()
