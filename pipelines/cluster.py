"""Connecting to Ray: one place decides how a job joins a cluster."""

from __future__ import annotations

import logging

import ray

log = logging.getLogger(__name__)


def ensure_ray() -> None:
    """Join the cluster RAY_ADDRESS names, or start a local one; reuse a session already open."""
    if not ray.is_initialized():
        ray.init(logging_level=logging.WARNING)
