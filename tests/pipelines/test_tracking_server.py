"""Training logs to a real `mlflow server` on loopback, started by the test."""

import subprocess
import sys
import time

import httpx
import pytest
import torch
from mlflow.tracking import MlflowClient

from helpers import free_port
from pipelines import tracking
from pipelines.settings import TrainJob
from pipelines.train import run_training
from srgan.checkpoint import load_generator
from srgan.config import load_config

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{folder}/server.db",
                             "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"mlflow server did not start on {url}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_training_logs_to_a_real_server(tiny_shards, mlflow_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = TrainJob(phase="srresnet", data=tiny_shards, cfg=load_config("tiny"), storage=str(tmp_path / "runs"),
              cpus_per_worker=0.5, tracking_uri=mlflow_server, experiment="server-test", registered_model="served")
    result = run_training(job)
    client = MlflowClient(mlflow_server)
    run = client.get_run(result.metrics["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "server-test"
    assert len(client.get_metric_history(run.info.run_id, "train/g_loss")) == 4
    assert client.get_model_version_by_alias("served", "srresnet").run_id == run.info.run_id
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the embedded default
    g = load_generator(tracking.download_checkpoint("models:/served@srresnet", mlflow_server))
    assert g(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)
