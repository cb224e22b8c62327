"""Benchmark training speed: precision/layout in one process, and the cost of Ray Train.

    python tests/benchmarks/bench_train.py [--rounds 3] [--data SHARDS]

All rows are SRResNet (paper size: 16 blocks, 64 channels) generator steps at batch 16, HR 96 px:
  1. core loop, one process: fp32 eager vs bf16 autocast + channels_last, taking turns every 5 steps
  2. the same core loop as a plain Ray task with the CPUs a Ray Train worker gets (being a Ray worker)
  3. Ray Train, one worker, those CPUs: DDP wrapper, data ingest from shards, reporting and one
     checkpoint included (its steady-state s/step comes from the run's own step timer over its
     second half; the Ray task runs as many steps)
The rows are measured --rounds times, interleaved, and the medians printed: on a shared VM the
same row varies from one minute to the next by more than the effects measured here.
Without --data, shards of ../shared/data/train are prepared first (not timed).
"""

from __future__ import annotations

import argparse
import functools
import math
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def core_loops(variants: list[tuple[bool, bool]], steps: int, threads: int, chunk: int = 5) -> list[float]:
    """Seconds per generator step on a fixed random batch (no data loading) for each (bf16, channels_last)
    variant, run in turns of `chunk` steps: a slow minute on a shared host slows every variant alike."""
    from srgan.config import load_config
    from srgan.trainer import Trainer

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (16, 96, 96, 3), dtype=torch.uint8, generator=gen)  # a fixed batch, as a runner gives it
    lr = torch.randint(0, 256, (16, 24, 24, 3), dtype=torch.uint8, generator=gen)
    loops = []
    for bf16, channels_last in variants:
        cfg = load_config("paper", overrides=[f"train.bf16={bf16}", f"train.channels_last={channels_last}"])
        loops.append(functools.partial(Trainer(cfg, "srresnet").train_step, lr, hr))
    for step in loops:  # warm-up
        step(), step()
    turns, totals = math.ceil(steps / chunk), [0.0] * len(loops)
    for _ in range(turns):
        for i, step in enumerate(loops):
            t0 = time.perf_counter()
            for _ in range(chunk):
                step()
            totals[i] += time.perf_counter() - t0
    return [t / (turns * chunk) for t in totals]


def ray_train_step(data: str, steps: int, cpus: float, workdir: str, name: str) -> tuple[float, float]:
    """Steady-state s/step of a 1-worker Ray Train run, and the share of it spent waiting for data."""
    from mlflow.tracking import MlflowClient

    from pipelines.settings import TrainJob
    from pipelines.train import run_training
    from srgan.config import load_config

    cfg = load_config("paper", overrides=[f"srresnet.steps={steps}", "train.log_every=10",
                                          f"train.checkpoint_every={steps // 2}", "train.val_every=100000"])
    uri = f"sqlite:///{workdir}/mlflow.db"
    result = run_training(TrainJob(phase="srresnet", data=data, cfg=cfg, cpus_per_worker=cpus, name=name,
                              storage=f"{workdir}/runs", tracking_uri=uri, experiment="bench"))
    client, run_id = MlflowClient(uri), result.metrics["mlflow_run_id"]

    def steady(metric: str) -> list[float]:  # the second half: the first holds Ray Data's and Train's start-up
        values = [m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)]
        return values[len(values) // 2:]

    rates, waits = steady("train/steps_per_s"), steady("train/data_wait_s")
    s_per_step = len(rates) / sum(rates)  # mean over equal windows of steps
    return s_per_step, sum(waits) / len(waits) / s_per_step


def median(values: list[float]) -> float:
    values = sorted(values)
    return (values[(len(values) - 1) // 2] + values[len(values) // 2]) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40,
                    help="timed steps of each precision in one process (default: %(default)s)")
    ap.add_argument("--train-steps", type=int, default=200,
                    help="Ray Train run length; its second half is timed, and the Ray task runs as many steps "
                         "(default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="repetitions of all four rows (default: %(default)s)")
    ap.add_argument("--data", help="shard folder (default: prepare ../shared/data/train into a temp folder)")
    args = ap.parse_args()

    import ray

    from pipelines.cluster import ensure_ray
    from pipelines.prepare import run_prepare
    from pipelines.settings import PrepareParams

    cpus = 1.5  # what a worker reserves on 2 cores, leaving room for Ray Data
    threads = math.ceil(cpus)
    head = (f"{'round':<7}{'fp32':>7}{'bf16+CL':>9}{'Ray task':>10}{'Ray Train':>11}{'data wait':>11}"
            f"{'bf16 speed-up':>15}{'Ray worker':>12}{'Train overhead':>16}")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        ensure_ray()
        data = args.data or (run_prepare([str(ROOT.parent / "shared" / "data" / "train")], f"{work}/shards",
                                        PrepareParams()) and f"{work}/shards")
        in_ray_task = ray.remote(num_cpus=cpus)(core_loops)
        print(f"s/step; Ray rows with {cpus} CPUs; data wait as a share of the Ray Train step\n{head}", flush=True)
        for r in range(args.rounds):
            fp32, bf16 = core_loops([(False, False), (True, True)], args.steps, threads)
            [in_task] = ray.get(in_ray_task.remote([(True, True)], args.train_steps // 2, threads))
            trained, wait = ray_train_step(data, args.train_steps, cpus, work, f"bench-{r}")
            rows.append((fp32, bf16, in_task, trained, wait, fp32 / bf16, in_task / bf16 - 1, trained / in_task - 1))
            print(f"{r + 1:<7}" + format_row(rows[-1]), flush=True)
    print(f"{'median':<7}" + format_row(tuple(median(list(col)) for col in zip(*rows))))
    print("bf16 speed-up: fp32 eager / bf16 + channels_last, one process; Ray worker: a plain Ray task over that "
          "process;\nTrain overhead: Ray Train (DDP wrapper, ingest, reports, one checkpoint) over the Ray task.")


def format_row(row: tuple[float, ...]) -> str:
    fp32, bf16, in_task, trained, wait, speed_up, worker, overhead = row
    return (f"{fp32:>7.3f}{bf16:>9.3f}{in_task:>10.3f}{trained:>11.3f}{wait:>11.1%}"
            f"{speed_up:>14.2f}x{worker:>+12.1%}{overhead:>+16.1%}")


if __name__ == "__main__":
    main()
