"""`srgan train --local`: the same core loop (srgan.trainer) in this process, without Ray or MLflow.

For one machine where only PyTorch may be installed (a GPU box with no network):

    tiles in memory: a shard folder (`srgan prepare`) or cut here from a folder of HR images
      -> crop_batches: random aligned crops, a function of (seed, step) alone
      -> srgan.trainer.fit -> RUN/checkpoint_XXXXXXXX (as Ray Train names them), RUN/metrics.jsonl,
                              RUN/val/grid_XXXXXXXX.png            with RUN = --storage/--name

The same command resumes from RUN's latest checkpoint, and exactly: the crops of step k are the
same whether the run was interrupted or not.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipelines import UsageError, shards
from pipelines.model_uri import checkpoint_folder
from pipelines.settings import TrainJob
from pipelines.train import check_job, check_tiles
from srgan.checkpoint import load_generator
from srgan.config import for_device
from srgan.crops import random_crops, tile_pairs
from srgan.images import IMAGE_SUFFIXES, ImageError, load_image, save_image
from srgan.trainer import Batch, Events, Trainer, fit

log = logging.getLogger("srgan.train")
TILE = 128  # HR px of the tiles cut from an image folder, as `srgan prepare` cuts them by default


def load_tiles(data: str, scale: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(HR tiles, LR tiles, tile side) of a shard folder's train split, or of every image in a
    folder (recursive) cut into `TILE` px tiles; images that cannot be used are logged and skipped."""
    if (Path(data) / shards.MANIFEST).is_file():
        hr, lr = shards.read_tiles(data)
        return hr, lr, hr.shape[1]
    folder = Path(data)
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {data}: neither a shard folder nor a folder of images")
    pairs = []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    for path in tqdm(files, desc="tiles", disable=None):
        try:
            pairs += [(h, l) for _, _, h, l in tile_pairs(load_image(path), scale, TILE, TILE)]
        except ImageError as e:
            log.warning("skipped: %s", e)
    if not pairs:
        raise FileNotFoundError(f"--data {data}: no image of at least {TILE} px")
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), TILE


def crop_batches(hr: np.ndarray, lr: np.ndarray, batch_size: int, hr_crop: int, seed: int,
                 start_step: int = 0) -> Iterator[Batch]:
    """(lr, hr) uint8 crop batches, epoch after epoch, each epoch a fresh permutation of the tiles.

    Batch k depends on (seed, k) alone, so a run resumed at step k continues with the batch an
    uninterrupted run would have drawn.
    """
    per_epoch = len(hr) // batch_size
    step = start_step
    while True:
        epoch, i = divmod(step, per_epoch)
        idx = np.random.default_rng([seed, epoch]).permutation(len(hr))[i * batch_size:(i + 1) * batch_size]
        h, l = random_crops(hr[idx], lr[idx], hr_crop, np.random.default_rng([seed, epoch, i]))
        yield torch.from_numpy(l), torch.from_numpy(h)
        step += 1


class LocalEvents(Events):
    """Metrics to RUN/metrics.jsonl, grids to RUN/val/, checkpoints to RUN/checkpoint_XXXXXXXX
    (the newest `train.keep_checkpoints` kept)."""

    def __init__(self, trainer: Trainer, run: Path):
        self.trainer, self.run = trainer, run
        self.latest: Path | None = None

    def _append(self, step: int, metrics: dict[str, float]) -> None:
        with open(self.run / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")

    def logged(self, step: int, metrics: dict[str, float]) -> None:
        self._append(step, metrics)

    def validated(self, step: int, metrics: dict[str, float], grid: np.ndarray) -> None:
        self._append(step, metrics)
        (self.run / "val").mkdir(exist_ok=True)
        save_image(self.run / "val" / f"grid_{step:08d}.png", grid)

    def checkpoint(self, step: int, last: bool) -> None:
        folder = self.run / f"checkpoint_{step:08d}"
        tmp = folder.with_name(folder.name + ".tmp")  # a crash mid-write never leaves a half checkpoint
        self.trainer.save(tmp)
        tmp.rename(folder)
        self.latest = folder
        for old in checkpoints(self.run)[:-self.trainer.cfg.train.keep_checkpoints]:
            shutil.rmtree(old)


def checkpoints(run: Path) -> list[Path]:
    """RUN's complete checkpoint folders, oldest first."""
    return sorted(p for p in run.glob("checkpoint_*") if p.is_dir() and not p.name.endswith(".tmp"))


def run_local(job: TrainJob) -> dict[str, Any]:
    """Run `job` in this process; returns {"step", "start_step", "checkpoint"}."""
    if job.workers != 1:
        raise UsageError(f"--local trains in this one process; --workers {job.workers} needs Ray (drop --local)")
    check_job(job)
    cfg = for_device(job.cfg, job.gpu)
    hr, lr, tile = load_tiles(job.data, cfg.model.scale)
    check_tiles(job.data, hr.shape[1] // lr.shape[1], tile, len(hr), cfg)
    device = torch.device("cuda" if job.gpu else "cpu")
    g_init = load_generator(checkpoint_folder(job.init, job.tracking_uri)).state_dict() if job.init else None
    trainer = Trainer(cfg, job.phase, device, g_init)
    run = Path(job.storage) / job.run_name
    run.mkdir(parents=True, exist_ok=True)
    done = checkpoints(run)
    if done:
        trainer.restore(done[-1])
        log.info("resumed at step %d from %s", trainer.step, done[-1])
    start, events = trainer.step, LocalEvents(trainer, run)
    batches = crop_batches(hr, lr, cfg.train.batch_size, cfg.model.hr_crop, cfg.train.seed, start)
    fit(trainer, batches, events, val_dir=job.val)
    return {"step": trainer.step, "start_step": start, "checkpoint": str(events.latest or done[-1])}
