"""`srgan train` on a real local Ray cluster with a real MLflow SQLite store."""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import ray
import ray.cloudpickle
import torch
from mlflow.tracking import MlflowClient
from ray.train.torch import TorchTrainer

from helpers import BENCHMARKS, checkpoint_registered
from pipelines import tracking
from pipelines.settings import TrainJob
from pipelines.train import run_training
from srgan.checkpoint import load_generator
from srgan.config import cpu_has_bf16, from_dict, load_config, to_dict
from srgan.models import Generator

pytestmark = pytest.mark.ray
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # test-defined train loops


def job_for(tmp_path, data, phase="srresnet", overrides=(), **kw):
    cfg = load_config("tiny", overrides=list(overrides))
    kw.setdefault("tracking_uri", f"sqlite:///{tmp_path}/mlflow.db")
    return TrainJob(phase=phase, data=data, cfg=cfg, storage=str(tmp_path / "runs"), cpus_per_worker=0.5,
                    experiment="test", **kw)


def test_two_phase_run_with_two_workers(tiny_shards, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the local artifact store lands here
    val = str(BENCHMARKS / "Set5" / "HR")
    first = run_training(job_for(tmp_path, tiny_shards, workers=2, val=val))
    assert first.metrics["step"] == 4 and first.metrics["model_uri"] == "models:/srgan-generator@srresnet"
    second = run_training(job_for(tmp_path, tiny_shards, "srgan", ["loss.content=mse", "train.bf16=null"], workers=2,
                              init=first.checkpoint.path, val=val))
    assert second.metrics["step"] == 4

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    for result, phase in ((first, "srresnet"), (second, "srgan")):
        run = client.get_run(result.metrics["mlflow_run_id"])
        assert run.data.params["phase"] == phase and run.data.params["model.blocks"] == "1"
        assert run.data.params["workers"] == "2"
        assert len(client.get_metric_history(run.info.run_id, "train/g_loss")) == 4
        assert {"val/psnr", "val/ssim", "val/niqe", "val/artifacts", "val/hr_niqe", "train/steps_per_s",
                "train/data_wait_s"} <= set(run.data.metrics)
        # the tiny preset turns bf16 off; left to the device (null), a CPU worker decides (on with native bf16)
        assert run.data.params["train.bf16"] == str(phase == "srgan" and cpu_has_bf16())
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "val")]
        assert any(a.endswith(".png") for a in artifacts)
        version = client.get_model_version_by_alias("srgan-generator", phase)
        assert version.run_id == run.info.run_id
    assert "train/d_loss" in client.get_run(second.metrics["mlflow_run_id"]).data.metrics
    g = load_generator(tracking.download_checkpoint("models:/srgan-generator@srgan",
                                                    f"sqlite:///{tmp_path}/mlflow.db"))
    assert g(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_rerun_resumes_at_the_right_step(tiny_shards, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = run_training(job_for(tmp_path, tiny_shards, name="resume"))
    again = run_training(job_for(tmp_path, tiny_shards, overrides=["srresnet.steps=6"], name="resume"))
    assert (again.metrics["start_step"], again.metrics["step"]) == (4, 6)
    assert again.metrics["mlflow_run_id"] == first.metrics["mlflow_run_id"]
    history = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_metric_history(
        first.metrics["mlflow_run_id"], "train/g_loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6]


def kill_a_worker_after_a_checkpoint(run_dir: Path, killed: list) -> None:
    deadline = time.time() + 300
    while time.time() < deadline and not killed:
        if checkpoint_registered(run_dir):
            workers = [p for p in psutil.process_iter(["cmdline"])
                       if "RayTrainWorker" in " ".join(p.info["cmdline"] or [])]
            if workers:
                os.kill(workers[-1].pid, signal.SIGKILL)
                killed.append(workers[-1].pid)
        time.sleep(0.05)


def test_sigkilled_worker_is_recovered_with_exact_steps(tiny_shards, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    killed = []
    killer = threading.Thread(target=kill_a_worker_after_a_checkpoint,
                              args=(tmp_path / "runs" / "killed", killed), daemon=True)
    killer.start()
    result = run_training(job_for(tmp_path, tiny_shards, overrides=["srresnet.steps=60", "train.checkpoint_every=5",
                                                               "train.val_every=1000"], workers=2, name="killed"))
    killer.join()
    assert killed, "no worker was killed"
    assert result.metrics["step"] == 60
    assert result.metrics["start_step"] > 0  # the last attempt resumed from a checkpoint
    history = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_metric_history(
        result.metrics["mlflow_run_id"], "train/g_loss")
    assert max(m.step for m in history) == 60


def ddp_loop(config):
    """A few generator steps on one fixed global batch, each worker taking its slice of it."""
    from srgan.trainer import Trainer, unwrap

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg = from_dict(config["cfg"])
    trainer = Trainer(cfg, "srresnet", wrap=ray.train.torch.prepare_model)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        hr = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8, generator=gen)
        lr = torch.nn.functional.avg_pool2d(hr.permute(0, 3, 1, 2).float(), 4).round().to(torch.uint8)
        part = slice(rank * 8 // world, (rank + 1) * 8 // world)
        trainer.train_step(lr.permute(0, 2, 3, 1)[part], hr[part])
    return torch.cat([p.detach().flatten() for p in unwrap(trainer.g).parameters()]).numpy()


def test_two_workers_on_half_batches_match_one_on_the_full_batch(ray_session, tmp_path):
    """With the BN-free generator, DDP's gradient averaging makes 2 x half-batch == 1 x full batch."""
    cfg = load_config("tiny", overrides=["model.norm=none"])
    weights = []
    for workers in (1, 2):
        trainer = TorchTrainer(ddp_loop, train_loop_config={"cfg": to_dict(cfg)},
                               scaling_config=ray.train.ScalingConfig(num_workers=workers,
                                                                      resources_per_worker={"CPU": 0.5}),
                               run_config=ray.train.RunConfig(name=f"ddp{workers}", storage_path=str(tmp_path)))
        weights.append(trainer.fit().return_value)
    torch.manual_seed(cfg.train.seed)  # as the Trainer does: the weights before the steps
    fresh = torch.cat([p.detach().flatten() for p in Generator(cfg.model).parameters()]).numpy()
    assert weights[0].shape == weights[1].shape == fresh.shape
    assert np.abs(weights[0] - fresh).max() > 2e-4  # three Adam steps at lr 1e-4 moved the weights
    np.testing.assert_allclose(weights[0], weights[1], atol=1e-5)


def generator_weights(folder) -> torch.Tensor:
    return torch.cat([p.flatten() for p in load_generator(folder).state_dict().values()])


def test_the_ray_worker_and_the_local_runner_train_the_same_weights(tiny_shards, tmp_path, monkeypatch):
    """Same config, seed and tiles: the Ray Train worker and `srgan train --local` end with the same
    generator (both are adapters around srgan.trainer and draw srgan.crops.CropStream)."""
    from pipelines.settings import WorkerSetup
    from pipelines.shards import read_tiles
    from pipelines.train import resolved
    from pipelines.train_local import run_local
    from pipelines.train_worker import train_loop_per_worker

    monkeypatch.chdir(tmp_path)
    job = job_for(tmp_path, tiny_shards, name="same",
                  overrides=["srresnet.steps=3", "train.checkpoint_every=3", "train.val_every=100"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the worker: oneDNN's sums differ in the last bits with the thread count
    try:
        local = run_local(job)
    finally:
        torch.set_num_threads(threads)
    hr, lr = read_tiles(tiny_shards)  # what --local trains on: every tile, as one block
    tiles = ray.data.from_items([{"hr": h, "lr": l} for h, l in zip(hr, lr)], override_num_blocks=1)
    setup = WorkerSetup(resolved(job), threads=1,
                        experiment_id=tracking.ensure_experiment(job.tracking_uri, job.experiment))
    result = TorchTrainer(train_loop_per_worker, train_loop_config={"setup": setup},
                          scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5}),
                          run_config=ray.train.RunConfig(name="same-ray", storage_path=str(tmp_path / "ray")),
                          datasets={"train": tiles}).fit()
    assert result.metrics["step"] == local["step"] == 3
    ours, theirs = generator_weights(local["checkpoint"]), generator_weights(result.checkpoint.path)
    assert torch.equal(ours, theirs)
    torch.manual_seed(job.cfg.train.seed)
    fresh = torch.cat([p.flatten() for p in Generator(job.cfg.model).state_dict().values()])
    assert (ours - fresh).abs().max() > 1e-5  # three steps moved the weights


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tiny_shards, tmp_path, monkeypatch):
    """The BN-free generator on fixed shards: 6 steps straight, or 4 and then the same command asking
    for 6, end with identical weights (crop position and RNG restored per rank)."""
    monkeypatch.chdir(tmp_path)
    common = ["model.norm=none", "train.checkpoint_every=2", "train.val_every=100"]
    straight = run_training(job_for(tmp_path, tiny_shards, name="straight", overrides=[*common, "srresnet.steps=6"]))
    run_training(job_for(tmp_path, tiny_shards, name="resumed", overrides=[*common, "srresnet.steps=4"]))
    resumed = run_training(job_for(tmp_path, tiny_shards, name="resumed", overrides=[*common, "srresnet.steps=6"]))
    assert (resumed.metrics["start_step"], resumed.metrics["step"]) == (4, 6)
    assert torch.equal(generator_weights(straight.checkpoint.path), generator_weights(resumed.checkpoint.path))
