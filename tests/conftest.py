"""Fixtures shared by the test tiers: core/ (one process), pipelines/ (the CLI, and a local Ray
shared by the whole session), deploy/ (manifests validated offline). Helpers are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from helpers import BENCHMARKS


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    if not BENCHMARKS.is_dir():
        pytest.fail(f"benchmark data not found at {BENCHMARKS}; set SRGAN_SHARED to the shared folder")
    return BENCHMARKS


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory) -> Path:
    """Engines exported from generators go to a session folder, never to the user's ~/.cache; the
    CLI's subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("srgan-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRGAN_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def shipped_int8(engine_cache):
    """The shipped SRResNet as openvino-int8 (the CPU default), exported once per session into the
    cache, where `load_engine("default")` finds it."""
    from srgan import SHIPPED_MODELS
    from srgan.checkpoint import load_generator
    from srgan.graphs import open_engine

    engine = open_engine("openvino-int8", load_generator(SHIPPED_MODELS["default"]), shipped="default")
    assert engine.name == "openvino-int8", "the openvino extra is not installed (scripts/install.sh installs it)"
    return engine


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (2 CPUs, no dashboard), shut down at the end."""
    import ray

    from pipelines.cluster import LOCAL_RUNTIME_ENV

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")  # report() costs ~2 s otherwise
    # Serve's controller gives its proxy 5 s to come up and 10 s per health check (3 misses and it is
    # killed): on this 2-core machine with a training run beside the suite, serve.start lost its
    # proxy that way. The suite tests the app, not Ray's patience: 30 s each.
    for name in ("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S"):
        os.environ.setdefault(name, "30")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
             runtime_env=LOCAL_RUNTIME_ENV)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_shards(ray_session, tmp_path_factory) -> str:
    """Shards of Set5 + Set14 in 64 px tiles: enough for the tiny preset's 32 px crops."""
    from pipelines.prepare import run_prepare
    from pipelines.settings import PrepareParams

    out = tmp_path_factory.mktemp("tiny") / "shards"
    run_prepare([str(BENCHMARKS / "Set5" / "HR"), str(BENCHMARKS / "Set14" / "HR")], str(out),
                PrepareParams(tile=64, stride=64, val_fraction=0.0, images_per_shard=8))
    return str(out)


@pytest.fixture(autouse=True)
def _autograd_left_on():
    """Code run in-process (the CLI) must not switch autograd off for the process: later tests train."""
    import torch

    yield
    assert torch.is_grad_enabled(), "this test left autograd disabled for the whole process"
