"""Paths and URIs: every job path may be a local path or any pyarrow filesystem URI (pyarrow is
imported where a path is resolved: the torch-free serving install has none, and needs none)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def is_uri(path: str) -> bool:
    return "://" in path


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path within it) for a local path or a URI such as s3://bucket/key, file:///x."""
    import pyarrow.fs as pafs

    if is_uri(path):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def normalize(path: str) -> str:
    """A URI unchanged; a local path made absolute (Ray tasks may run in another directory)."""
    return path if is_uri(path) else os.path.abspath(path)


def download_folder() -> Path:
    """A fresh local folder for a model fetched from elsewhere, removed when this process exits."""
    folder = Path(tempfile.mkdtemp(prefix="srgan-model-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write via a temporary name and a rename, so readers never see a partial file."""
    fs, path = resolve(uri)
    tmp = path + ".tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, path)
