"""Ray Data: the stream of training tiles that feeds the Ray Train workers.

    shard files (pipelines.shards) -> one Ray Data task per file, in a seeded order: its tiles
    -> a dataset shard per worker (`ray.train.get_dataset_shard`)
    -> the worker's CropStream: shuffled, randomly cropped (and degraded) batches (srgan.crops)
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import ray
from ray.data._internal.execution.execution_callback import ExecutionCallback  # see IdleBackoff

from pipelines.cluster import NotOnThisNode
from pipelines.shards import ShardError, read_manifest, read_shard, shard_uris
from srgan.config import DegradeConfig
from srgan.crops import CropStream, Prefetched

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


def training_tiles(root: str, hr_crop: int, seed: int = 0, split: str = "train") -> ray.data.Dataset:
    """Open a shard folder as a Ray Dataset of whole aligned tiles, one block per shard file, in one
    order fixed by `seed` (every epoch, every run): the workers crop them (`worker_batches`), so
    the crops depend on the run's seed and not on which task ran first.

    Rows: `hr` uint8 (T, T, 3), `lr` uint8 (T/s, T/s, 3).
    """
    manifest = read_manifest(root)
    if hr_crop > manifest["params"]["tile"]:
        raise ShardError(f"{root}: crop {hr_crop} is larger than the shards' {manifest['params']['tile']} px tiles")

    def read(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        uri = str(batch["uri"][0])
        try:
            hr, lr = read_shard(uri, manifest)
        except FileNotFoundError as e:
            raise NotOnThisNode(uri, "shard") from e
        return {"hr": hr, "lr": lr}

    # One shard per task, no file-listing step, and a small CPU slice per task: the training
    # workers hold most of a node's CPUs, and tasks asking for a whole CPU would wait for ever.
    files = shard_uris(root, manifest, split)
    uris = ray.data.from_items([{"uri": u} for u in files], override_num_blocks=len(files))
    uris.context.custom_execution_callback_classes.append(IdleBackoff)
    uris.context.enable_progress_bars = False  # the training log shows progress
    uris.context.execution_options.preserve_order = True  # blocks in the seeded order, not as tasks finish
    return uris.randomize_block_order(seed=seed).map_batches(read, batch_size=1, num_cpus=DATA_CPUS)


def worker_batches(shard: ray.data.DataIterator, batch_size: int, hr_crop: int, seed: int, rank: int,
                   position: tuple[int, int] = (0, 0), degrade: DegradeConfig | None = None,
                   conditions: tuple[str, ...] = ()) -> Prefetched:
    """A worker's crop batches from its dataset shard: each block (a shard file's tiles) shuffled,
    cropped (and degraded) with the worker's own RNG (srgan.crops.CropStream), pass after pass,
    drawn ahead of the training step on a thread (srgan.crops.Prefetched); each batch with the
    crops' `conditions` (the generator's) from the draws that degraded them."""
    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return ((b["hr"], b["lr"]) for b in shard.iter_batches(batch_size=None, batch_format="numpy"))

    return Prefetched(CropStream(blocks, batch_size, hr_crop, seed, rank, position, degrade, conditions))
