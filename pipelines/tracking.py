"""MLflow: one experiment per project, one run per training phase, models registered by name.

The embedded default is a SQLite file in the working directory (MLflow 3 refuses the plain file
store) with artifacts beside it; `--tracking-uri` or MLFLOW_TRACKING_URI points at a real server.
Only the driver (experiment set-up) and rank 0 of a training run call into this module.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from pipelines import storage

log = logging.getLogger(__name__)
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
MODEL_ARTIFACT = "model"  # artifact folder of the logged model; the checkpoint sits under it


def tracking_uri(uri: str | None = None) -> str:
    """The explicit URI, else MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def ensure_experiment(uri: str, name: str) -> str:
    """Create the experiment if needed; returns its id. A local store keeps artifacts in ./mlartifacts
    (absolute, because Ray workers run in another directory)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = Path(DEFAULT_ARTIFACTS).resolve().as_uri() if uri.startswith("sqlite:") else None
    return client.create_experiment(name, artifact_location=location)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def start_run(uri: str, experiment_id: str, run_name: str, run_id: str | None) -> str:
    """Start (or, on resume, re-open) the phase's run in this process; returns its id."""
    mlflow.set_tracking_uri(uri)
    run = mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id, run_name=run_name)
    return run.info.run_id


def log_params(params: dict[str, Any]) -> None:
    """Nested params (the resolved config) as flat `section.key` params."""
    mlflow.log_params(flatten(params))


def end_run() -> None:
    mlflow.end_run()


def log_metrics(metrics: dict[str, float], step: int) -> None:
    mlflow.log_metrics(metrics, step=step)


def log_image(rgb, name: str) -> None:
    mlflow.log_image(rgb, name)


def log_model(checkpoint_dir: str | Path, registered_name: str, alias: str) -> str:
    """Log a checkpoint folder as the run's model and register it; returns `models:/NAME@ALIAS`.
    MLflow's own notes of the registration (printed to stderr) give way to one log line."""
    with contextlib.redirect_stderr(io.StringIO()):
        info = mlflow.pyfunc.log_model(name=MODEL_ARTIFACT,
                                       python_model=str(Path(__file__).parent / "mlflow_model.py"),
                                       artifacts={"checkpoint": str(checkpoint_dir)},
                                       registered_model_name=registered_name)
    client = MlflowClient()
    client.set_registered_model_alias(registered_name, alias, info.registered_model_version)
    log.info("registered the model as %s version %s, alias %s", registered_name, info.registered_model_version, alias)
    return f"models:/{registered_name}@{alias}"


def download_checkpoint(model_uri: str, tracking: str | None = None) -> Path:
    """Fetch a registered model (`models:/NAME@ALIAS` or `models:/NAME/VERSION`) and return the
    checkpoint folder inside it."""
    mlflow.set_tracking_uri(tracking_uri(tracking))
    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(storage.download_folder())))
    found = list(local.rglob("config.json"))
    if not found:
        raise FileNotFoundError(f"{model_uri}: no srgan checkpoint inside the model's artifacts")
    return found[0].parent
