"""The `srgan prepare` job: Ray Data turns an HR image corpus into aligned LR/HR tile shards.

    list inputs (driver) -> groups of N image URIs -> Ray Data map, one task per group:
        read bytes -> decode and validate (core loader) -> crop to a multiple of scale
        -> LR by the core bicubic from the whole image -> aligned tiles -> drop flat tiles
        -> one zstd Parquet shard per split, written by the task itself
    -> the driver collects each group's small summary and writes manifest.json last.

Tile pixels never travel through Ray's object store: each task writes its own shards and
returns counts, so memory stays flat however large the corpus is. Shard names come from the
group index, so a re-run with the same inputs writes identical files.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray

from pipelines import code_version, shards, storage
from pipelines.cluster import NotOnThisNode, ensure_ray, warn_if_local
from pipelines.settings import PrepareParams
from srgan.crops import crop_to_multiple, tile_pairs
from srgan.images import UNREADABLE, ImageError, decode_image

log = logging.getLogger(__name__)

LIST_SUFFIXES = (".txt", ".lst", ".list")  # an input file with one of these names lists image paths
TOO_SMALL, FLAT, ERROR, NOT_FOUND = "too_small", "flat", "error", "not_found"


class PrepareError(RuntimeError):
    """The job as a whole cannot go on (nothing to read, nothing usable, output in the way)."""


# ---------------------------------------------------------------- listing (driver)

def _uri(prefix: str, path: str) -> str:
    return prefix + path if prefix else path


def _glob(fs: pafs.FileSystem, pattern: str) -> list[str]:
    """Files on `fs` matching `pattern`, where `**/` also matches no folder at all, as in glob."""
    base = pattern[: min(pattern.index(c) for c in "*?[" if c in pattern)].rsplit("/", 1)[0] or "/"
    found = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return sorted(f.path for f in found if f.type == pafs.FileType.File
                  and (fnmatch.fnmatch(f.path, pattern) or fnmatch.fnmatch(f.path, pattern.replace("**/", ""))))


def _list_one(inp: str) -> tuple[list[str], str | None]:
    """The image URIs one input names, or an error message."""
    fs, path = storage.resolve(inp)
    prefix = inp[: inp.index("://") + 3] if storage.is_uri(inp) else ""
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory and not prefix:  # local: keep dangling links, to report them
        return sorted(str(p) for p in Path(path).rglob("*") if not p.is_dir()), None
    if info.type == pafs.FileType.Directory:
        found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        return sorted(_uri(prefix, f.path) for f in found if f.type != pafs.FileType.Directory), None
    if info.type == pafs.FileType.File and path.lower().endswith(LIST_SUFFIXES):
        base = path.rsplit("/", 1)[0]
        lines = [ln.strip() for ln in storage.read_bytes(inp).decode().splitlines()]
        entries = [ln for ln in lines if ln and not ln.startswith("#")]
        return [e if storage.is_uri(e) or e.startswith("/") else _uri(prefix, f"{base}/{e}") for e in entries], None
    if info.type == pafs.FileType.File:
        return [inp if prefix else path], None
    if any(c in path for c in "*?["):
        matches = _glob(fs, path) if prefix else sorted(glob.glob(path, recursive=True))
        return [_uri(prefix, m) for m in matches], None if matches else "no files match this pattern"
    return [], "no such file or folder"


def expand_inputs(inputs: list[str]) -> tuple[list[str], list[dict]]:
    """Folders (recursive), globs, list files and URIs -> (image URIs in input order, bad inputs)."""
    uris, bad = [], []
    for inp in inputs:
        try:
            found, problem = _list_one(inp)
        except OSError as e:
            found, problem = [], f"cannot list ({e})"
        uris += found
        if problem:
            bad.append({"uri": inp, "reason": NOT_FOUND, "detail": problem})
    return uris, bad


# ---------------------------------------------------------------- one group (Ray task)

def split_of(uri: str, val_fraction: float) -> str:
    """Deterministic train/val by source: all tiles of an image land on the same side."""
    h = int.from_bytes(hashlib.sha256(uri.encode()).digest()[:8], "big") / 2**64
    return "val" if h < val_fraction else "train"


def _tiles_of(uri: str, p: PrepareParams) -> tuple[list[tuple[int, int, bytes, bytes]], int]:
    """([(y, x, hr bytes, lr bytes)], flat tiles dropped) for one image; ImageError if unusable."""
    try:
        data = storage.read_bytes(uri)
    except OSError as e:
        raise ImageError(uri, f"cannot read ({e})", UNREADABLE) from e
    rgb = crop_to_multiple(decode_image(data, uri, p.max_pixels).rgb, p.scale)
    if min(rgb.shape[:2]) < p.tile:
        raise ImageError(uri, f"{rgb.shape[1]}x{rgb.shape[0]} is smaller than one {p.tile} px tile", TOO_SMALL)
    tiles = list(tile_pairs(rgb, p.scale, p.tile, p.stride))
    kept = [(y, x, hr.tobytes(), lr.tobytes()) for y, x, hr, lr in tiles
            if p.min_std <= 0 or hr.std() >= p.min_std]
    return kept, len(tiles) - len(kept)


def process_group(row: dict[str, Any], params: PrepareParams, out: str) -> dict[str, Any]:
    """Tile every image of one group and write its shards; return a JSON summary of what happened."""
    fs, root = storage.resolve(out)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:  # the driver made it: this node cannot see it
        raise NotOnThisNode(out, "--out")
    columns = {s: {"source": [], "y": [], "x": [], "hr": [], "lr": []} for s in shards.SPLITS}
    images, skipped, flat = [], [], 0
    for uri in row["uris"]:
        try:
            tiles, dropped = _tiles_of(uri, params)
        except ImageError as e:
            skipped.append({"uri": uri, "reason": e.reason, "detail": e.problem})
            continue
        except Exception as e:  # a bug or an exotic file must not stop a million-image job: record it
            skipped.append({"uri": uri, "reason": ERROR, "detail": f"{type(e).__name__}: {e}"})
            continue
        split = split_of(uri, params.val_fraction)
        cols = columns[split]
        for y, x, hr, lr in tiles:
            cols["source"].append(uri)
            cols["y"].append(y)
            cols["x"].append(x)
            cols["hr"].append(hr)
            cols["lr"].append(lr)
        flat += dropped
        images.append({"uri": uri, "split": split, "tiles": len(tiles), "flat": dropped})
    written = [shards.write_shard(out, split, row["group"], cols, params.tile, params.scale)
               for split, cols in columns.items() if cols["source"]]
    return {"summary": json.dumps({"images": images, "skipped": skipped, "flat": flat, "shards": written})}


# ---------------------------------------------------------------- the job (driver)

def _clear_output(out: str, overwrite: bool) -> None:
    """Refuse a non-empty output folder unless --overwrite; then remove the manifest first, so an
    interrupted re-run never leaves an old manifest that claims the new shards are complete."""
    fs, path = storage.resolve(out)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        fs.create_dir(path, recursive=True)
        return
    entries = fs.get_file_info(pafs.FileSelector(path))
    if not entries:
        return
    if not overwrite:
        raise FileExistsError(f"--out {out} is not empty; pass --overwrite to replace it")
    foreign = [e.base_name for e in entries if e.base_name not in (shards.MANIFEST, *shards.SPLITS)]
    if foreign:
        raise FileExistsError(f"--out {out} holds {', '.join(sorted(foreign)[:5])}, which is not a shard folder's; "
                              "refusing to overwrite it")
    if fs.get_file_info(storage.join(path, shards.MANIFEST)).type == pafs.FileType.File:
        fs.delete_file(storage.join(path, shards.MANIFEST))
    fs.delete_dir_contents(path)


def run_prepare(inputs: list[str], out: str, params: PrepareParams, overwrite: bool = False) -> dict[str, Any]:
    """Run the whole job; returns the manifest (also written to OUT/manifest.json)."""
    start = time.time()
    out = storage.normalize(out)
    _clear_output(out, overwrite)
    uris, skipped = expand_inputs(inputs)
    if not uris:
        raise PrepareError(f"no input files found in {', '.join(inputs)}")
    groups = [{"group": i, "uris": uris[j:j + params.images_per_shard]}
              for i, j in enumerate(range(0, len(uris), params.images_per_shard))]
    ensure_ray()
    for path in (*inputs, out):
        warn_if_local(path, "input" if path != out else "--out")
    ds = ray.data.from_items(groups, override_num_blocks=min(len(groups), 10_000))
    ds = ds.map(partial(process_group, params=params, out=out))
    summaries = [json.loads(r["summary"]) for r in ds.iter_rows()]
    manifest = _manifest(inputs, params, uris, skipped, summaries, time.time() - start)
    shards.write_manifest(out, manifest)
    if not manifest["images_processed"]:
        raise PrepareError(f"none of the {len(uris)} input files could be used; reasons are in "
                           f"{storage.join(out, shards.MANIFEST)}")
    return manifest


def _manifest(inputs: list[str], params: PrepareParams, uris: list[str], skipped: list[dict],
              summaries: list[dict], duration: float) -> dict[str, Any]:
    images = [i for s in summaries for i in s["images"]]
    skipped = skipped + [k for s in summaries for k in s["skipped"]]
    written = sorted((w for s in summaries for w in s["shards"]), key=lambda w: w["path"])
    tiles = {split: sum(w["rows"] for w in written if w["split"] == split) for split in shards.SPLITS}
    return {
        "format": shards.FORMAT, "code_version": code_version(), "inputs": inputs,
        "params": asdict(params), "inputs_found": len(uris), "images_processed": len(images),
        "images_skipped": len(skipped), "skip_reasons": dict(Counter(k["reason"] for k in skipped)),
        "tiles": tiles, "flat_tiles_dropped": sum(s["flat"] for s in summaries),
        "sources": {split: sum(1 for i in images if i["split"] == split) for split in shards.SPLITS},
        "skipped": skipped, "shards": written, "content_hash": shards.content_hash(written),
        "duration_s": round(duration, 2),
    }
