"""`srgan prepare`: the command line of the Ray Data job in pipelines/prepare.py."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipelines.settings import PrepareParams


def summary_table(m: dict[str, Any], manifest_uri: str) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(m["skip_reasons"].items()))
    rate = m["images_processed"] / max(m["duration_s"], 1e-9)
    rows = [("inputs found", m["inputs_found"]),
            ("images processed", m["images_processed"]),
            ("skipped", f"{m['images_skipped']}" + (f"  ({reasons})" if reasons else "")),
            ("tiles train / val", f"{m['tiles']['train']} / {m['tiles']['val']}"),
            ("flat tiles dropped", m["flat_tiles_dropped"]),
            ("shards", len(m["shards"])),
            ("content hash", m["content_hash"][:16]),
            ("duration", f"{m['duration_s']:.1f} s  ({rate:.1f} images/s)"),
            ("manifest", manifest_uri)]
    return "\n".join(f"{k:<20}{v}" for k, v in rows)


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = PrepareParams()
    p = sub.add_parser("prepare", help="HR image corpus -> LR/HR tile shards (Ray Data)",
                       description="Tile a corpus of HR images into aligned LR/HR pairs in Parquet shards, "
                                   "with a manifest that accounts for every input.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="folders (recursive), globs, .txt/.lst files listing paths, or URIs (s3://, gs://, file://)")
    p.add_argument("--out", required=True, help="output folder or URI")
    p.add_argument("--scale", type=int, default=d.scale, help="downscaling factor (default: %(default)s)")
    p.add_argument("--tile", type=int, default=d.tile, help="HR tile side in px (default: %(default)s)")
    p.add_argument("--stride", type=int, default=d.stride, help="HR tile step in px (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of source images held out for validation (default: %(default)s)")
    p.add_argument("--min-std", type=float, default=d.min_std,
                   help="drop HR tiles whose pixel std is below this, 0-255 scale (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels,
                   help="refuse images with more pixels than this (default: %(default)s)")
    p.add_argument("--images-per-shard", type=int, default=d.images_per_shard,
                   help="source images per task and per shard file (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing shard folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    params = PrepareParams(scale=args.scale, tile=args.tile, stride=args.stride, val_fraction=args.val_fraction,
                           min_std=args.min_std, max_pixels=args.max_pixels, images_per_shard=args.images_per_shard)
    from pipelines import shards, storage
    from pipelines.prepare import PrepareError, run_prepare

    try:
        manifest = run_prepare(args.inputs, args.out, params, args.overwrite)
    except PrepareError as e:
        print(f"srgan prepare: error: {e}", file=sys.stderr)
        return 1
    print(summary_table(manifest, storage.join(storage.normalize(args.out), shards.MANIFEST)))
    return 0
