"""What each job is told: typed, frozen settings for `prepare`, `train` and `serve`.

The commands build them from their flags; a Serve config's `args` (strings, from `serve run
pipelines.serve:app tile=64`, or YAML values) go through `srgan.config.build`, the one settings
mechanism, where an unknown key or a wrong type is an error naming the key. This module is light
(no Ray, no torch): the CLI reads its defaults before anything heavy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines import UsageError
from srgan import SHIPPED_MODELS
from srgan.config import Config, build
from srgan.images import DEFAULT_MAX_PIXELS

# srgan.engines.ENGINE_CHOICES, named here without importing torch (a test keeps the two equal)
ENGINE_NAMES = ("auto", "eager", "eager-bf16", "eager-fp16", "onnx", "openvino", "openvino-bf16", "openvino-int8")
REGISTERED_MODEL = "srgan-generator"  # MLflow registered model; the phase is its alias


@dataclass(frozen=True)
class PrepareParams:
    """How `srgan prepare` cuts the corpus; recorded in the manifest."""

    scale: int = 4
    tile: int = 128
    stride: int = 128
    val_fraction: float = 0.01
    min_std: float = 0.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    images_per_shard: int = 64  # per task: larger amortizes Ray's per-task cost (bench_prepare.py)

    def __post_init__(self) -> None:
        if self.scale not in (2, 4, 8):
            raise UsageError(f"--scale must be 2, 4 or 8, got {self.scale}")
        if self.tile % self.scale or self.stride % self.scale or self.stride <= 0:
            raise UsageError(f"--tile {self.tile} and --stride {self.stride} must be positive multiples of "
                             f"--scale {self.scale}")
        if not 0 <= self.val_fraction < 1:
            raise UsageError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class TrainJob:
    """One training run of one phase, as `srgan train` describes it."""

    phase: Literal["srresnet", "srgan"]
    data: str  # shard folder or URI
    cfg: Config = field(default_factory=Config)
    workers: int = 1
    gpu: bool = False
    cpus_per_worker: float | None = None
    storage: str = "runs"  # checkpoint root: RUN = storage/name
    name: str | None = None  # default: the phase
    init: str | None = None  # generator to start from: a model spec (pipelines.model_uri)
    val: str | None = None  # HR folder or benchmark set to validate on
    tracking_uri: str | None = None
    experiment: str = "srgan"
    registered_model: str = REGISTERED_MODEL
    max_failures: int = 3

    @property
    def run_name(self) -> str:
        return self.name or self.phase


@dataclass(frozen=True)
class WorkerSetup:
    """What the driver tells every worker: the job resolved for them (config decided for the
    device, absolute paths, the tracking URI) and what only the driver can find out."""

    job: TrainJob
    threads: int  # torch threads per worker: its CPU share, rounded up
    experiment_id: str


@dataclass(frozen=True)
class ServeSettings:
    """What both deployments of the Serve app are told: the Serve config's `args`, or `srgan serve`
    flags. Replica counts, queues and resources are the deployments' own options (cluster/serve.yaml).

    Memory, per Ingress replica: each upscale request reserves its body plus
    `pipelines.serve.request_bytes(pixels)` (decode, canvas, alpha, bicubic work: 100 B per input
    pixel + 20 MB at x4, so 440 MB for a 4 MP upload with a 20 MB body) out of `memory_budget_mb`;
    a request that does not fit is refused with 503. docs/serving.md has the
    per-replica budgets and the pod limits.
    """

    # a shipped model by name (srgan.SHIPPED_MODELS), a checkpoint folder/URI, or models:/NAME@ALIAS;
    # `auto` by default: people upload JPEGs, and the file says how hard it was compressed (docs/real-photos.md)
    model: str = "auto"
    # shipped models a request may name instead (`model=`), each loaded by every Upscaler replica
    models: tuple[str, ...] = tuple(SHIPPED_MODELS)
    tile: int = 128  # LR px per tile core
    pad: int = 24  # LR px of context around each core
    engine: str = "auto"  # one of ENGINE_NAMES (srgan.engines); auto: openvino-int8 on CPU, eager-fp16 on CUDA
    max_body_mb: float = 20.0
    max_pixels: int = 4_000_000  # input pixels; the output has scale^2 times as many
    max_side: int = 4096  # input px per side: long strips are refused from the header
    max_tiles: int = 400  # SR tiles per request (a 4 MP image in 128 px tiles is at most ~290)
    max_batch_size: int = 8  # SR windows per forward pass, across requests
    request_timeout_s: float = 300.0  # body, decode, queue and upscaling; then 504 (encoding streams after)
    max_requests: int = 32  # upscale requests one ingress replica holds at once; more get 503
    memory_budget_mb: int = 2048  # bytes one ingress replica reserves for requests in progress
    retry_after_s: int = 5  # the Retry-After of a 503
    tracking_uri: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINE_NAMES:
            raise UsageError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINE_NAMES)}")
        unknown = [m for m in self.models if m not in SHIPPED_MODELS]
        if unknown:
            raise UsageError(f"models {', '.join(unknown)}: a request may only name shipped models "
                             f"({', '.join(SHIPPED_MODELS)})")

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ServeSettings:
        """From a Serve config's `args` (YAML values, or strings from `serve run ... tile=64`)."""
        return build(cls, args)
