"""The shard format, owned here alone: `prepare` writes it, training reads it (`pipelines.ingest`).

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
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import storage
from srgan import UserError
from srgan.config import read_document

FORMAT = "srgan-shards/1"
MANIFEST = "manifest.json"
SPLITS = ("train", "val")


class ShardError(UserError):
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
    return read_document(lambda: storage.read_bytes(storage.join(root, MANIFEST)), storage.join(root, MANIFEST),
                         FORMAT, ShardError, "missing: not a shard folder, or `srgan prepare` did not finish")


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


def read_shard(uri: str, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """One shard file's tile pairs: uint8 HR (N, T, T, 3) and LR (N, T/s, T/s, 3)."""
    fs, path = storage.resolve(uri)
    with fs.open_input_file(path) as f:
        table = pq.read_table(f, columns=["hr", "lr"])
    return decode({c: table.column(c).to_numpy(zero_copy_only=False) for c in ("hr", "lr")}, manifest)


def read_tiles(root: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Every tile pair of one split, in memory (a single-process run): as `read_shard`, concatenated."""
    manifest = read_manifest(root)
    pairs = [read_shard(uri, manifest) for uri in shard_uris(root, manifest, split)]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
