"""The Ray Train worker: the core training loop (srgan.trainer) between Ray's data and Ray's
checkpoints.

    dataset shard (pipelines.ingest) -> CropStream -> srgan.trainer.fit -> ray.train.report + checkpoint
                                                                       -> MLflow metrics, grids, model (rank 0)

A checkpoint holds what rank 0 saves (weights, optimizers, step: srgan.trainer) and one
`worker_<rank>.pt` per rank; the last one also the generator's openvino-int8 graph (`srgan export`'s,
where the openvino extra is installed), so the registered model runs on a serving replica without
torch (its crop stream's position and its RNG); Ray Train merges them into
one folder. A restart (a lost worker, or the same command run again) resumes every rank from the
latest one: the learning-rate schedule follows from the step, each rank's crops from its position.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch

from pipelines import tracking
from pipelines.cluster import QUIET, NotOnThisNode, quiet
from pipelines.ingest import worker_batches
from pipelines.model_uri import checkpoint_folder
from pipelines.settings import WorkerSetup
from srgan.checkpoint import load_generator
from srgan.config import to_dict
from srgan.crops import Prefetched
from srgan.engines import EngineUnavailable
from srgan.graphs import export_engine
from srgan.trainer import Events, Trainer, fit

log = logging.getLogger("srgan.train")
WORKER_STATE = "worker_{rank}.pt"  # each rank's own part of a checkpoint
SERVING_ENGINE = "openvino-int8"  # what the CPU replicas' engine auto runs (srgan.inference.auto_engine_names)


class RayEvents(Events):
    """Rank 0 logs to MLflow; at a checkpoint every rank reports its own state and rank 0 the
    trainer's (and, at the last step, logs the checkpoint as the run's model and registers it)."""

    def __init__(self, trainer: Trainer, stream: Prefetched, setup: WorkerSetup, rank: int, state: dict[str, Any]):
        self.trainer, self.stream, self.job, self.rank = trainer, stream, setup.job, rank
        self.start_step, self.latest = trainer.step, {}
        self.run_id = state.get("mlflow_run_id")
        if rank == 0:
            self.run_id = tracking.start_run(self.job.tracking_uri, setup.experiment_id, self.job.run_name,
                                             self.run_id)
            if not self.start_step:
                world = ray.train.get_context().get_world_size()
                tracking.log_params({"phase": self.job.phase, "workers": world, **to_dict(trainer.cfg)})

    def logged(self, step: int, metrics: dict[str, float]) -> None:
        tracking.log_metrics(metrics, step)
        self.latest |= metrics

    def validated(self, step: int, metrics: dict[str, float], grid: Any) -> None:
        tracking.log_metrics(metrics, step)
        tracking.log_image(grid, f"val/grid_{step:08d}.png")
        self.latest |= metrics

    def checkpoint(self, step: int, last: bool) -> None:
        metrics = {"step": step, "start_step": self.start_step, "phase": self.job.phase,
                   "mlflow_run_id": self.run_id or "", **self.latest}
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"crop_position": self.stream.position, "torch_rng": torch.get_rng_state()},
                       Path(tmp) / WORKER_STATE.format(rank=self.rank))
            if self.rank == 0:
                self.trainer.save(tmp, mlflow_run_id=self.run_id)
                if last:
                    _export_serving_engine(tmp, self.job.run_name)
                    metrics["model_uri"] = tracking.log_model(tmp, self.job.registered_model, self.job.phase)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                             checkpoint_dir_name=f"checkpoint_{step:08d}")

    def close(self) -> None:
        if self.rank == 0:
            tracking.end_run()


def _export_serving_engine(folder: str, run: str) -> None:
    """The checkpoint's openvino-int8 graph and card, into the checkpoint folder (`srgan export`'s
    layout: srgan.inference.exported_engine runs it, torch-free)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars: the log line after says it all
            export_engine(load_generator(folder), folder, SERVING_ENGINE,
                          source={"model": f"run {run}, last checkpoint"})
    except EngineUnavailable as e:
        log.warning("the model is registered without a %s graph (%s): replicas without torch cannot serve it",
                    SERVING_ENGINE, e)


def _resume(trainer: Trainer, rank: int) -> dict[str, Any]:
    """Load the latest checkpoint into `trainer` and this rank's own state (crop position, RNG);
    returns the training state ({} when starting)."""
    checkpoint = ray.train.get_checkpoint()
    if not checkpoint:
        return {}
    with checkpoint.as_directory() as folder:
        state = trainer.restore(folder)
        own = Path(folder) / WORKER_STATE.format(rank=rank)
        if own.is_file():  # absent when the run restarts with more workers than it saved
            mine = torch.load(own, weights_only=True)
            torch.set_rng_state(mine["torch_rng"])
            state["crop_position"] = mine["crop_position"]
    log.info("rank %d resumed at step %d", rank, trainer.step)
    return state


def train_loop_per_worker(config: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if os.environ.get(QUIET):
        quiet()  # over Ray Train's worker logging, set up by now
    setup: WorkerSetup = config["setup"]
    job = setup.job
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(setup.threads)
    device = ray.train.torch.get_device()
    log.info("rank %d of %d on node %s (%s)", rank, world, ray.get_runtime_context().get_node_id()[:12], device)
    if rank == 0 and job.val and not Path(job.val).is_dir():
        raise NotOnThisNode(job.val, "--val")
    g_init = load_generator(checkpoint_folder(job.init, job.tracking_uri)).state_dict() if job.init else None
    trainer = Trainer(job.cfg, job.phase, device, g_init, wrap=ray.train.torch.prepare_model)
    state = _resume(trainer, rank)
    tc = job.cfg.train
    stream = worker_batches(ray.train.get_dataset_shard("train"), tc.batch_size // world, job.cfg.model.hr_crop,
                            tc.seed, rank, tuple(state.get("crop_position", (0, 0))), job.cfg.degrade,
                            job.cfg.model.conditions)
    events = RayEvents(trainer, stream, setup, rank, state)
    fit(trainer, stream, events, val_dir=job.val, chief=rank == 0)
    events.close()
