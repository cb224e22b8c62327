"""`srgan train`: DDP training on Ray Train, phase `srresnet` (pixel loss) then `srgan` (GAN).

Everything that can be wrong with the inputs is checked here, on the driver, before a worker
starts. Re-running the same command (same `--name` and `--storage`) resumes from the latest
checkpoint; losing a worker restarts the group from it (`FailureConfig`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.train.torch import TorchTrainer

from pipelines import shards, storage, tracking
from pipelines.cluster import ensure_ray, warn_if_local
from pipelines.model_uri import checkpoint_folder, portable
from pipelines.train_worker import train_loop_per_worker
from srgan.benchmarks import set_layout
from srgan.checkpoint import CheckpointError, model_config
from srgan.config import PRESETS, Config, ConfigError, for_device, load_config, to_dict
from srgan.losses import vgg_weights_path

log = logging.getLogger(__name__)

PHASES = ("srresnet", "srgan")
# ray.train.report() returns at the controller's next poll of the workers, every 2 s by default: with
# 12 ms H100 steps and a report every 1000, that alone would be 14% of a run. Workers get the driver's.
HEALTH_CHECK_ENV, HEALTH_CHECK_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5"
# Fields that define the generator's architecture: an --init checkpoint must match them.
G_FIELDS = ("scale", "channels", "blocks", "norm")


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run, as the CLI describes it."""

    phase: str
    data: str
    cfg: Config
    workers: int = 1
    gpu: bool = False
    cpus_per_worker: float | None = None
    storage: str = "runs"
    name: str | None = None
    init: str | None = None
    val: str | None = None
    tracking_uri: str | None = None
    experiment: str = "srgan"
    registered_model: str = tracking.REGISTERED_MODEL
    max_failures: int = 3


def preflight(job: Job) -> dict[str, Any]:
    """Every check that needs no worker; returns the shards' manifest. Raises with a clear message."""
    cfg = job.cfg
    if job.phase not in PHASES:
        raise ConfigError(f"--phase must be one of {', '.join(PHASES)}, got {job.phase!r}")
    manifest = shards.read_manifest(job.data)
    params = manifest["params"]
    if params["scale"] != cfg.model.scale:
        raise ConfigError(f"--data {job.data} holds x{params['scale']} tiles but model.scale is {cfg.model.scale}")
    if params["tile"] < cfg.model.hr_crop:
        raise ConfigError(f"--data {job.data} has {params['tile']} px tiles, smaller than model.hr_crop "
                          f"{cfg.model.hr_crop}")
    if manifest["tiles"]["train"] < cfg.train.batch_size:
        raise shards.ShardError(f"--data {job.data} has {manifest['tiles']['train']} training tiles, fewer than "
                                f"one batch of {cfg.train.batch_size}")
    if cfg.train.batch_size % job.workers:
        raise ConfigError(f"train.batch_size {cfg.train.batch_size} does not split over {job.workers} workers")
    if cfg.train.sync_bn and not job.gpu:
        raise ConfigError("train.sync_bn needs --gpu: PyTorch's SyncBatchNorm refuses CPU tensors. "
                          "For multi-worker CPU runs use the BN-free generator: --set model.norm=none")
    if job.phase == "srgan":
        if not job.init:
            raise ConfigError("phase srgan starts from an SRResNet checkpoint: pass --init CHECKPOINT")
        if cfg.loss.content != "mse":
            vgg_weights_path(cfg.loss.vgg_weights)
    if job.init:
        _check_init(job.init, cfg)
    if job.val:
        set_layout(Path(job.val), cfg.model.scale)
    return manifest


def _check_init(init: str, cfg: Config) -> None:
    have = model_config(checkpoint_folder(init))
    diff = [f"{k} {getattr(have, k)} vs {getattr(cfg.model, k)}" for k in G_FIELDS
            if getattr(have, k) != getattr(cfg.model, k)]
    if diff:
        raise CheckpointError(f"--init {init} is another architecture than the config asks for "
                              f"(checkpoint vs config: {'; '.join(diff)})")


def _cpus_per_worker(job: Job) -> float:
    """Explicit, else the cluster's CPUs less one for Ray Data, shared by the workers (at least 0.5)."""
    if job.cpus_per_worker:
        return job.cpus_per_worker
    total = ray.cluster_resources().get("CPU", 1)
    return max(0.5, (total - 1) / job.workers)


def build_trainer(job: Job) -> TorchTrainer:
    preflight(job)
    ensure_ray()
    for path, what in ((job.data, "--data"), (job.storage, "--storage"), (job.val, "--val"), (job.init, "--init")):
        warn_if_local(path, what)
    uri = tracking.tracking_uri(job.tracking_uri)
    os.environ.setdefault(HEALTH_CHECK_ENV, HEALTH_CHECK_S)
    cpus = _cpus_per_worker(job)
    name = job.name or job.phase
    data = storage.normalize(job.data)
    config = {
        "cfg": to_dict(for_device(job.cfg, job.gpu)), "phase": job.phase, "threads": max(1, math.ceil(cpus)),
        "init": portable(job.init) if job.init else None,
        "val_dir": str(Path(job.val).resolve()) if job.val else None,
        "tracking_uri": uri, "experiment_id": tracking.ensure_experiment(uri, job.experiment),
        "run_name": name, "registered_model": job.registered_model,
    }
    return TorchTrainer(
        train_loop_per_worker, train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=job.workers, use_gpu=job.gpu,
                                               resources_per_worker={"CPU": cpus}),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage.normalize(job.storage),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.cfg.train.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=job.max_failures)),
        datasets={"train": shards.training_crops(data, job.cfg.model.hr_crop)},
    )


def run_training(job: Job) -> ray.train.Result:
    return build_trainer(job).fit()


# ---------------------------------------------------------------- CLI

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train SRResNet, then SRGAN, with Ray Train (DDP) and MLflow",
                       description="Distributed training on Ray Train. Re-running the same command resumes.")
    p.add_argument("--phase", required=True, choices=PHASES, help="srresnet (pixel loss) or srgan (GAN)")
    p.add_argument("--data", required=True, help="shard folder or URI written by `srgan prepare`")
    p.add_argument("--val", help="folder of HR images (or a benchmark set) to validate on, e.g. Set5/HR")
    p.add_argument("--preset", default="paper", choices=list(PRESETS), help="config preset (default: %(default)s)")
    p.add_argument("--config", type=Path, help="YAML file of config overrides")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set srresnet.steps=5000 (repeatable)")
    p.add_argument("--workers", type=int, default=1, help="training workers (default: %(default)s)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--cpus-per-worker", type=float,
                   help="CPUs each worker reserves (default: the cluster's CPUs less one, shared)")
    p.add_argument("--storage", default="runs", help="checkpoint root, local path or URI (default: %(default)s)")
    p.add_argument("--name", help="run name; the same name resumes (default: the phase)")
    p.add_argument("--init", help="checkpoint folder, URI or models:/NAME@ALIAS to start the generator from "
                                  "(required for --phase srgan)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.add_argument("--experiment", default="srgan", help="MLflow experiment (default: %(default)s)")
    p.add_argument("--register-as", default=tracking.REGISTERED_MODEL,
                   help="registered model name; the phase is its alias (default: %(default)s)")
    p.add_argument("--max-failures", type=int, default=3,
                   help="worker-group restarts allowed after a failure (default: %(default)s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.preset, args.config, args.set)
    job = Job(phase=args.phase, data=args.data, cfg=cfg, workers=args.workers, gpu=args.gpu,
              cpus_per_worker=args.cpus_per_worker, storage=args.storage, name=args.name, init=args.init,
              val=args.val, tracking_uri=args.tracking_uri, experiment=args.experiment,
              registered_model=args.register_as, max_failures=args.max_failures)
    result = run_training(job)
    m = result.metrics or {}
    print(f"done: phase {job.phase}, step {m.get('step')}; MLflow run {m.get('mlflow_run_id')} "
          f"(model {m.get('model_uri', '-')}); checkpoint {result.checkpoint.path if result.checkpoint else '-'}")
    return 0
