"""Ray Data: the stream of random training crops that feeds the Ray Train workers.

    shard files (pipelines.shards) -> one Ray Data task per file: read, crop every tile
    -> dataset shard per worker (`ray.train.get_dataset_shard`) -> batches of uint8 crops
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import ray
import torch
from ray.data._internal.execution.execution_callback import ExecutionCallback  # see IdleBackoff

from pipelines.cluster import NotOnThisNode
from pipelines.shards import ShardError, read_manifest, read_shard, shard_uris
from srgan.crops import random_crops

DATA_CPUS = 0.25  # per Ray Data task that feeds training


class IdleBackoff(ExecutionCallback):
    """Sleep in Ray Data's scheduling loop while no task is running.

    When a slow consumer (a training step) holds the pipeline back, Ray 2.60's streaming executor
    has nothing to wait on and spins: measured here, its SplitCoordinator took 60-70% of a core
    and made a 2-thread training step 3x slower. While tasks run, the loop waits up to 0.1 s for
    one to finish; the nap when idle is as long. (A 20 ms nap still left it 5% of a core.)
    """

    def on_execution_step(self, executor) -> None:
        if not any(op.num_active_tasks() for op in executor._topology):
            time.sleep(0.1)


def training_crops(root: str, hr_crop: int, split: str = "train") -> ray.data.Dataset:
    """Open a shard folder as a Ray Dataset of random aligned crops with flips and rotations.

    Each task reads one shard file, shuffles its tiles and crops every one; the crop runs inside the
    dataset's pipeline, so every pass over it (every epoch) draws fresh crops, from shards in a
    fresh order. Rows: `hr` uint8 (hr_crop, hr_crop, 3), `lr` uint8 (hr_crop/s, hr_crop/s, 3).
    """
    manifest = read_manifest(root)
    if hr_crop > manifest["params"]["tile"]:
        raise ShardError(f"{root}: crop {hr_crop} is larger than the shards' {manifest['params']['tile']} px tiles")

    def read_and_crop(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        uri = str(batch["uri"][0])
        try:
            hr, lr = read_shard(uri, manifest)
        except FileNotFoundError as e:
            raise NotOnThisNode(uri, "shard") from e
        rng = np.random.default_rng()
        order = rng.permutation(len(hr))  # a shard holds an image's tiles side by side: mix them
        hr, lr = random_crops(hr[order], lr[order], hr_crop, rng)
        return {"hr": hr, "lr": lr}

    # One shard per task, no file-listing step, and a small CPU slice per task: the training
    # workers hold most of a node's CPUs, and tasks asking for a whole CPU would wait for ever.
    files = shard_uris(root, manifest, split)
    uris = ray.data.from_items([{"uri": u} for u in files], override_num_blocks=len(files))
    uris.context.custom_execution_callback_classes.append(IdleBackoff)
    uris.context.enable_progress_bars = False  # the training log shows progress
    return uris.randomize_block_order().map_batches(read_and_crop, batch_size=1, num_cpus=DATA_CPUS)


def epochs(shard: ray.data.DataIterator, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(lr, hr) uint8 batches of a worker's dataset shard, pass after pass, for as long as asked;
    each pass draws fresh crops."""
    while True:
        n = 0
        for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True):
            n += 1
            yield batch["lr"], batch["hr"]
        if not n:
            raise RuntimeError(f"the training data gave no batch of {batch_size} crops")
