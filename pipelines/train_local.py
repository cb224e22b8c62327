"""`srgan train --local`: the same core loop (srgan.trainer) in this process, without Ray or MLflow.

For one machine where only PyTorch may be installed (a GPU box with no network):

    tiles in memory: a shard folder (`srgan prepare`) or cut here from a folder of HR images
      -> srgan.crops.CropStream: random aligned crops, the same stream the Ray workers draw
      -> srgan.trainer.fit -> RUN/checkpoint_XXXXXXXX (as Ray Train names them), RUN/metrics.jsonl,
                              RUN/val/grid_XXXXXXXX.png            with RUN = --storage/--name

The same command resumes from RUN's latest checkpoint, and exactly: the crop stream's position
is saved with each checkpoint, so the crops of step k are the same whether the run was
interrupted or not.
"""

from __future__ import annotations

import json
import logging
import shutil
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
from srgan.crops import CropStream, Prefetched, tile_pairs
from srgan.images import ImageError, find_images, load_image, save_image
from srgan.trainer import Events, Trainer, fit

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
    for path in tqdm(find_images(folder), desc="tiles", disable=None):
        try:
            pairs += [(h, l) for _, _, h, l in tile_pairs(load_image(path), scale, TILE, TILE)]
        except ImageError as e:
            log.warning("skipped: %s", e)
    if not pairs:
        raise FileNotFoundError(f"--data {data}: no image of at least {TILE} px")
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), TILE


class LocalEvents(Events):
    """Metrics to RUN/metrics.jsonl, grids to RUN/val/, checkpoints to RUN/checkpoint_XXXXXXXX
    (the newest `train.keep_checkpoints` kept)."""

    def __init__(self, trainer: Trainer, stream: Prefetched, run: Path):
        self.trainer, self.stream, self.run = trainer, stream, run
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
        self.trainer.save(tmp, crop_position=self.stream.position)
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
    cfg = job.cfg
    hr, lr, tile = load_tiles(job.data, cfg.model.scale)
    check_tiles(job.data, hr.shape[1] // lr.shape[1], tile, len(hr), cfg)
    device = torch.device("cuda" if job.gpu else "cpu")
    g_init = load_generator(checkpoint_folder(job.init, job.tracking_uri)).state_dict() if job.init else None
    trainer = Trainer(cfg, job.phase, device, g_init)
    run = Path(job.storage) / job.run_name
    run.mkdir(parents=True, exist_ok=True)
    done = checkpoints(run)
    state = trainer.restore(done[-1]) if done else {}
    if done:
        log.info("resumed at step %d from %s", trainer.step, done[-1])
    stream = Prefetched(CropStream(lambda: [(hr, lr)], cfg.train.batch_size, cfg.model.hr_crop, cfg.train.seed,
                                   position=tuple(state.get("crop_position", (0, 0))), degrade=cfg.degrade,
                                   conditions=cfg.model.conditions))
    start, events = trainer.step, LocalEvents(trainer, stream, run)
    fit(trainer, stream, events, val_dir=job.val)
    return {"step": trainer.step, "start_step": start, "checkpoint": str(events.latest or done[-1])}
