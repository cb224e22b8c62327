"""The `srgan train` driver: checks a `TrainJob`, then runs it on Ray Train (DDP workers).

    preflight (here, before any worker)  ->  TorchTrainer(train_worker.train_loop_per_worker,
                                                          dataset = pipelines.ingest.training_tiles)

Everything that can be wrong with the inputs is checked here, on the driver, before a worker
starts. Re-running the same job (same `name` and `storage`) resumes from the latest checkpoint;
losing a worker restarts the group from it (`FailureConfig`). `pipelines/train_local.py` runs
the same job in this process without Ray.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import shards, storage
from pipelines.model_uri import checkpoint_folder, portable
from pipelines.settings import TrainJob, WorkerSetup
from srgan.benchmarks import set_layout
from srgan.checkpoint import CheckpointError, model_config
from srgan.config import Config, ConfigError
from srgan.losses import vgg_weights_path

if TYPE_CHECKING:
    import ray.train

# ray.train.report() returns at the controller's next poll of the workers, every 2 s by default: with
# 12 ms H100 steps and a report every 1000, that alone would be 14% of a run. Workers get the driver's.
HEALTH_CHECK_ENV, HEALTH_CHECK_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5"
# Fields that define the generator's architecture: an --init checkpoint must match them.
G_FIELDS = ("scale", "channels", "blocks", "norm")


def check_job(job: TrainJob) -> None:
    """The checks that need neither the data nor Ray; raises with a clear message."""
    cfg = job.cfg
    if cfg.train.batch_size % job.workers:
        raise ConfigError(f"train.batch_size {cfg.train.batch_size} does not split over {job.workers} workers")
    if cfg.train.sync_bn and not job.gpu:
        raise ConfigError("train.sync_bn needs --gpu: PyTorch's SyncBatchNorm refuses CPU tensors. "
                          "For multi-worker CPU runs use the BN-free generator: --set model.norm=none")
    if job.phase == "srgan":
        if not job.init:
            raise ConfigError("phase srgan starts from an SRResNet checkpoint: pass --init CHECKPOINT")
        if cfg.loss.content.startswith("vgg"):
            vgg_weights_path(cfg.loss.vgg_weights)
    if job.init:
        _check_init(job.init, cfg, job.tracking_uri)
    if job.val:
        set_layout(Path(job.val), cfg.model.scale)


def check_tiles(source: str, scale: int, tile: int, train_tiles: int, cfg: Config) -> None:
    """The training tiles fit the config: their scale, a crop fits in one, a batch's worth."""
    if scale != cfg.model.scale:
        raise ConfigError(f"--data {source} holds x{scale} tiles but model.scale is {cfg.model.scale}")
    if tile < cfg.model.hr_crop:
        raise ConfigError(f"--data {source} has {tile} px tiles, smaller than model.hr_crop {cfg.model.hr_crop}")
    if train_tiles < cfg.train.batch_size:
        raise shards.ShardError(f"--data {source} has {train_tiles} training tiles, fewer than one batch of "
                                f"{cfg.train.batch_size}")


def preflight(job: TrainJob) -> dict[str, Any]:
    """Every check of a Ray Train job that needs no worker; returns the shards' manifest."""
    check_job(job)
    manifest = shards.read_manifest(job.data)
    params = manifest["params"]
    check_tiles(job.data, params["scale"], params["tile"], manifest["tiles"]["train"], job.cfg)
    return manifest


def _check_init(init: str, cfg: Config, tracking_uri: str | None) -> None:
    have = model_config(checkpoint_folder(init, tracking_uri))
    diff = [f"{k} {getattr(have, k)} vs {getattr(cfg.model, k)}" for k in G_FIELDS
            if getattr(have, k) != getattr(cfg.model, k)]
    if diff:
        raise CheckpointError(f"--init {init} is another architecture than the config asks for "
                              f"(checkpoint vs config: {'; '.join(diff)})")


def _cpus_per_worker(job: TrainJob) -> float:
    """Explicit, else the cluster's CPUs less half of one for Ray Data (its tasks take DATA_CPUS
    each; reading is a fraction of a step), shared by the workers (at least 0.5). Each worker runs
    as many torch threads as its share rounded up: one worker on 2 cores gets 1.5 CPUs and 2
    threads (1.5x the steps per second of the 1 CPU and 1 thread it had with a whole CPU left to
    Ray Data, `srgan demo` on this project's 2-core VM)."""
    import ray

    if job.cpus_per_worker:
        return job.cpus_per_worker
    total = ray.cluster_resources().get("CPU", 1)
    return max(0.5, (total - 0.5) / job.workers)


def resolved(job: TrainJob) -> TrainJob:
    """The job as another process or node needs it: absolute local paths, the tracking URI made
    explicit (what the config leaves to the device, each worker decides for its own: srgan.trainer)."""
    from pipelines import tracking

    return dataclasses.replace(
        job, data=storage.normalize(job.data), storage=storage.normalize(job.storage),
        init=portable(job.init) if job.init else None, val=str(Path(job.val).resolve()) if job.val else None,
        tracking_uri=tracking.tracking_uri(job.tracking_uri))


def build_trainer(job: TrainJob) -> ray.train.torch.TorchTrainer:
    import ray.train
    from ray.train.torch import TorchTrainer

    from pipelines import tracking
    from pipelines.cluster import QUIET, QUIET_LEVEL, ensure_ray, warn_if_local
    from pipelines.ingest import training_tiles
    from pipelines.train_worker import train_loop_per_worker

    preflight(job)
    ensure_ray()
    for path, what in ((job.data, "--data"), (job.storage, "--storage"), (job.val, "--val"), (job.init, "--init")):
        warn_if_local(path, what)
    os.environ.setdefault(HEALTH_CHECK_ENV, HEALTH_CHECK_S)
    job, cpus = resolved(job), _cpus_per_worker(job)
    setup = WorkerSetup(job, threads=max(1, math.ceil(cpus)),
                        experiment_id=tracking.ensure_experiment(job.tracking_uri, job.experiment))
    return TorchTrainer(
        train_loop_per_worker, train_loop_config={"setup": setup},
        scaling_config=ray.train.ScalingConfig(num_workers=job.workers, use_gpu=job.gpu,
                                               resources_per_worker={"CPU": cpus}),
        run_config=ray.train.RunConfig(
            name=job.run_name, storage_path=job.storage,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.cfg.train.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=job.max_failures),
            logging_config=ray.train.LoggingConfig(log_level=QUIET_LEVEL if os.environ.get(QUIET) else "INFO")),
        datasets={"train": training_tiles(job.data, job.cfg.model.hr_crop, job.cfg.train.seed)},
    )


def run_training(job: TrainJob) -> ray.train.Result:
    return build_trainer(job).fit()
