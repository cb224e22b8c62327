"""The shard format, owned here alone: `prepare` writes it, `train` reads it.

    DIR/manifest.json              written last, atomically: a folder without it is incomplete
    DIR/train/part-00000.parquet   zstd Parquet, one row per aligned tile pair
    DIR/val/part-00003.parquet

Columns: `source` (URI of the image), `y`, `x` (HR offset of the tile), `hr` and `lr`: the raw
uint8 HWC pixels as fixed-size binary; their shapes are in the schema metadata and the manifest.
(Raw bytes measured faster end to end than Ray's tensor extension columns: see bench_prepare.py.)
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.data._internal.execution.execution_callback import ExecutionCallback  # see IdleBackoff

from pipelines import storage
from pipelines.cluster import NotOnThisNode
from srgan.crops import random_crops

FORMAT = "srgan-shards/1"
MANIFEST = "manifest.json"
SPLITS = ("train", "val")
DATA_CPUS = 0.25  # per Ray Data task that feeds training


class ShardError(ValueError):
    """A shard folder that is missing, incomplete, empty or does not fit the run."""


def schema(tile: int, scale: int) -> pa.Schema:
    t = tile // scale
    return pa.schema(
        [("source", pa.string()), ("y", pa.int32()), ("x", pa.int32()),
         ("hr", pa.binary(tile * tile * 3)), ("lr", pa.binary(t * t * 3))],
        metadata={"srgan.format": FORMAT, "srgan.scale": str(scale),
                  "srgan.hr_shape": f"{tile},{tile},3", "srgan.lr_shape": f"{t},{t},3"})


def write_shard(root: str, split: str, index: int, rows: dict[str, list], tile: int, scale: int) -> dict:
    """Write one shard; returns its manifest entry {"path", "split", "rows", "sha256"}."""
    table = pa.Table.from_pydict(rows, schema=schema(tile, scale))
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue().to_pybytes()
    rel = f"{split}/part-{index:05d}.parquet"
    fs, path = storage.resolve(storage.join(root, rel))
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    storage.write_bytes_atomic(storage.join(root, rel), data)
    return {"path": rel, "split": split, "rows": table.num_rows, "sha256": hashlib.sha256(data).hexdigest()}


def content_hash(shards: list[dict]) -> str:
    """One hash for a whole dataset: over the shard files' hashes in path order."""
    h = hashlib.sha256()
    for s in sorted(shards, key=lambda s: s["path"]):
        h.update(f"{s['path']} {s['sha256']}\n".encode())
    return h.hexdigest()


def write_manifest(root: str, manifest: dict[str, Any]) -> None:
    storage.write_bytes_atomic(storage.join(root, MANIFEST), json.dumps(manifest, indent=2).encode())


def read_manifest(root: str) -> dict[str, Any]:
    """The manifest of a complete shard folder; ShardError if it is missing or not ours."""
    try:
        manifest = json.loads(storage.read_bytes(storage.join(root, MANIFEST)))
    except FileNotFoundError as e:
        raise ShardError(f"{root}: no {MANIFEST} (not a shard folder, or `srgan prepare` did not finish)") from e
    except (OSError, json.JSONDecodeError) as e:
        raise ShardError(f"{root}: unreadable {MANIFEST} ({e})") from e
    if manifest.get("format") != FORMAT:
        raise ShardError(f"{root}: {MANIFEST} has format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def shard_uris(root: str, manifest: dict[str, Any], split: str) -> list[str]:
    uris = [storage.join(root, s["path"]) for s in manifest["shards"] if s["split"] == split and s["rows"]]
    if not uris:
        raise ShardError(f"{root}: no {split} tiles")
    return uris


def tile_shapes(manifest: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    tile, scale = manifest["params"]["tile"], manifest["params"]["scale"]
    return (tile, tile, 3), (tile // scale, tile // scale, 3)


def decode(batch: dict[str, np.ndarray], manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A numpy batch of rows -> uint8 HR (N, T, T, 3) and LR (N, T/s, T/s, 3)."""
    hr_shape, lr_shape = tile_shapes(manifest)
    hr = np.frombuffer(b"".join(batch["hr"]), np.uint8).reshape(-1, *hr_shape)
    lr = np.frombuffer(b"".join(batch["lr"]), np.uint8).reshape(-1, *lr_shape)
    return hr, lr


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

    Each task reads one shard file and crops every tile in it; the crop runs inside the dataset's
    pipeline, so every pass over it (every epoch) draws fresh crops, from shards in a fresh order.
    Rows: `hr` uint8 (hr_crop, hr_crop, 3), `lr` uint8 (hr_crop/s, hr_crop/s, 3).
    """
    manifest = read_manifest(root)
    if hr_crop > manifest["params"]["tile"]:
        raise ShardError(f"{root}: crop {hr_crop} is larger than the shards' {manifest['params']['tile']} px tiles")

    def read_and_crop(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        uri = str(batch["uri"][0])
        fs, path = storage.resolve(uri)
        try:
            with fs.open_input_file(path) as f:
                table = pq.read_table(f, columns=["hr", "lr"])
        except FileNotFoundError as e:
            raise NotOnThisNode(uri, "shard") from e
        rows = {c: table.column(c).to_numpy(zero_copy_only=False) for c in ("hr", "lr")}
        hr, lr = random_crops(*decode(rows, manifest), hr_crop, np.random.default_rng())
        return {"hr": hr, "lr": lr}

    # One shard per task, no file-listing step, and a small CPU slice per task: the training
    # workers hold most of a node's CPUs, and tasks asking for a whole CPU would wait for ever.
    files = shard_uris(root, manifest, split)
    uris = ray.data.from_items([{"uri": u} for u in files], override_num_blocks=len(files))
    uris.context.custom_execution_callback_classes.append(IdleBackoff)
    uris.context.enable_progress_bars = False  # the training log shows progress
    return uris.randomize_block_order().map_batches(read_and_crop, batch_size=1, num_cpus=DATA_CPUS)
