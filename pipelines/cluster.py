"""Connecting to Ray, and the one rule of multi-node paths: every node must see them."""

from __future__ import annotations

import logging
import os
import socket

import ray

from pipelines import storage

log = logging.getLogger(__name__)

# Worker set-up for a local Ray (see without_dashboard); the tests' Ray session uses it too.
LOCAL_RUNTIME_ENV = {"worker_process_setup_hook": "pipelines.cluster.without_dashboard"}


def ensure_ray() -> None:
    """Join the cluster RAY_ADDRESS names, or start a local one (without the dashboard, whose
    processes cost a laptop a good share of a core); reuse a session already open."""
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level=logging.WARNING)
    else:
        # Idle workers live on: with the default 1 s, the worker of each data task that feeds training
        # was killed and a new one started (about 1.5 s of CPU each) every few seconds on a 2-core node.
        ray.init(logging_level=logging.WARNING, include_dashboard=False,
                 runtime_env=LOCAL_RUNTIME_ENV,
                 _system_config={"idle_worker_killing_time_threshold_ms": 600_000})


def without_dashboard() -> None:
    """Worker set-up on a local Ray without the dashboard: Ray Train's placement-group cleaner asks
    the State API (which the dashboard serves) about the controller every second and warns each time
    it cannot; the warning says nothing a local user can act on. In a quiet job, also `quiet()`."""
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)
    if os.environ.get(QUIET):
        quiet()


# A quiet job (`srgan demo`) shows on its console what its user needs, the job's own progress and
# results, and leaves the libraries' INFO logs, their notes and progress bars (Ray's, Ray Train's,
# Ray Data's, Serve's, MLflow's, NNCF's, gRPC's fork() notes) to Ray's log files. The variables
# reach every process the local Ray starts (set before ray.init: the raylet and its workers inherit
# them); Ray Train and Serve take their levels from their own configs (QUIET_LEVEL).
QUIET = "SRGAN_QUIET"
QUIET_LEVEL = "ERROR"
QUIET_ENV = {QUIET: "1", "GRPC_VERBOSITY": "ERROR", "RAY_DATA_LOG_LEVEL": QUIET_LEVEL,
             "MLFLOW_LOGGING_LEVEL": QUIET_LEVEL, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
             "PYTHONWARNINGS": "ignore::DeprecationWarning"}
# ray's own level is set by ray.init; its token-authentication note (a local Ray needs no action) and
# Serve's driver-side logger have their own
QUIET_LOGGERS = ("ray", "ray.serve", "ray._private.authentication.authentication_token_setup", "alembic", "nncf",
                 "httpx", "torch.utils.cpp_extension")
OWN_LOGGERS = ("srgan", "pipelines")


def quiet() -> None:
    """This process's libraries log errors only; the job's own loggers stay at INFO. The root logger
    goes to WARNING, for the libraries that log under their file's name (Ray Train's reports)."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(QUIET_LEVEL)


def warn_if_local(path: str | None, what: str) -> None:
    """Warn when a plain local path is used on a cluster of several nodes."""
    if not path or storage.is_uri(path) or path.startswith("models:/"):
        return
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    if nodes > 1:
        log.warning("%s %s is a local path on a %d-node cluster: every node must see it (a shared filesystem "
                    "mounted at the same place); otherwise use a URI such as s3://bucket/...", what, path, nodes)


class NotOnThisNode(FileNotFoundError):
    """A local path the driver sees and the node running a task does not."""

    def __init__(self, path: str, what: str):
        super().__init__(f"{what} {path} does not exist on node {socket.gethostname()} "
                         f"({ray.get_runtime_context().get_node_id()[:12]}): a local path must be on a filesystem "
                         "every node shares; use a URI (s3://, gs://) or a shared mount")
