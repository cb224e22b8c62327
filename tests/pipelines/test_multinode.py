"""A real two-node Ray cluster on loopback (`ray start`), driven through `srgan submit` (Jobs API,
token authentication on): training placed across nodes survives losing a node, and a submitted
`prepare` writes the same shards as a local run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import BENCHMARKS, ROOT, checkpoint_registered, free_port
from pipelines.cli import main
from pipelines.prepare import run_prepare
from pipelines.settings import PrepareParams

pytestmark = [pytest.mark.ray, pytest.mark.slow]
RAY = str(Path(sys.executable).with_name("ray"))



class Cluster:
    """A head and worker nodes, each a `ray start --block` in its own process group."""

    def __init__(self, tmp: Path):
        self.tmp, self.gcs, self.dashboard = tmp, free_port(), free_port()
        self.ray_tmps: list[str] = []
        # The nodes run in this venv, as an activated one would: a job's `python` is this Python.
        self.env = {**os.environ, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
                    "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, head: bool = False) -> None:
        # Fixed default ports (the dashboard agent's 52365 first) are taken by the test session's own
        # Ray instance on this machine: every node gets free ones.
        ports = [f"--{flag}={free_port()}" for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                         "metrics-export-port", "runtime-env-agent-port")]
        # Each node its own temp folder, as on separate machines (a shared one lets one node's runtime-env
        # agent delete another's job folders), and a short one: it holds unix sockets (107 bytes at most).
        self.ray_tmps.append(tempfile.mkdtemp(prefix="srg", dir="/tmp"))
        common = ["--block", "--num-cpus=1", "--node-ip-address=127.0.0.1", f'--resources={{"{name}": 1}}',
                  f"--temp-dir={self.ray_tmps[-1]}", *ports]
        if head:
            args = ["--head", f"--port={self.gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard}",
                    "--include-dashboard=true"]
        else:
            args = [f"--address=127.0.0.1:{self.gcs}"]
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - the node process owns it
        self.nodes[name] = subprocess.Popen([RAY, "start", *common, *args], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_for_nodes()

    def alive_nodes(self) -> int:
        import httpx

        try:
            r = httpx.get(f"{self.address}/nodes?view=summary", timeout=5,
                          headers=_auth_headers())
            return sum(1 for n in r.json()["data"]["summary"] if n["raylet"]["state"] == "ALIVE")
        except Exception:  # the dashboard is not up yet
            return 0

    def wait_for_nodes(self) -> None:
        deadline = time.time() + 120
        while self.alive_nodes() < sum(1 for p in self.nodes.values() if p.poll() is None):
            if time.time() > deadline:
                pytest.fail(f"ray nodes did not come up; see {self.tmp}/*.log")
            time.sleep(1)

    def kill(self, name: str) -> None:
        os.killpg(self.nodes[name].pid, signal.SIGKILL)
        self.nodes[name].wait()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"

    def stop(self) -> None:
        for name, proc in self.nodes.items():
            if proc.poll() is None:
                self.kill(name)
        for folder in self.ray_tmps:
            shutil.rmtree(folder, ignore_errors=True)


def _auth_headers() -> dict:
    from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled

    return get_auth_headers_if_auth_enabled({})


@pytest.fixture(scope="module")
def cluster(ray_session, tmp_path_factory):
    # ray_session: this process learns from its ray.init that token auth is on; without it Ray's
    # get_auth_headers_if_auth_enabled sends no token and the dashboard answers 401 (this module
    # first in a shuffled run: the head never looked alive).
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start("head", head=True)
        c.start("node2")
        yield c
    finally:
        c.stop()


def submit(cluster: Cluster, *args: str) -> int:
    return main(["submit", *args, "--address", cluster.address, "--working-dir", str(ROOT)])


def test_train_across_nodes_survives_losing_one(cluster, tiny_shards, tmp_path, capfd):
    storage = tmp_path / "runs"
    killed: list[str] = []

    def kill_node2_then_replace() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and not checkpoint_registered(storage / "across"):
            time.sleep(0.1)
        cluster.kill("node2")
        killed.append("node2")
        time.sleep(3)
        cluster.start("node3")  # the replacement a KubeRay worker group or the autoscaler would bring

    killer = threading.Thread(target=kill_node2_then_replace, daemon=True)
    killer.start()
    rc = submit(cluster, "train", "--phase", "srresnet", "--data", tiny_shards, "--preset", "tiny",
                "--set", "srresnet.steps=40", "--set", "train.checkpoint_every=5", "--set", "train.val_every=1000",
                "--set", "model.norm=none", "--workers", "2", "--cpus-per-worker", "0.75",
                "--storage", str(storage), "--name", "across",
                "--env", f"MLFLOW_TRACKING_URI=sqlite:///{tmp_path}/mlflow.db")
    killer.join(timeout=60)
    out = capfd.readouterr().out
    assert rc == 0, out[-3000:]
    assert killed
    placements = dict(re.findall(r"rank (\d) of 2 on node (\w+)", out))
    assert len(placements) == 2 and placements["0"] != placements["1"], placements  # two nodes
    resumed = [int(s) for s in re.findall(r"resumed at step (\d+)", out)]
    assert resumed and min(resumed) >= 5  # the new group started from a checkpoint
    assert "done: phase srresnet, step 40;" in out


def test_submitted_prepare_matches_a_local_run(cluster, ray_session, tmp_path):
    inputs = [str(BENCHMARKS / "Set5" / "HR")]
    local = run_prepare(inputs, str(tmp_path / "local"), PrepareParams(tile=96, images_per_shard=2))
    rc = submit(cluster, "prepare", *inputs, "--out", f"file://{tmp_path}/remote", "--tile", "96",
                "--images-per-shard", "2")
    assert rc == 0
    remote = json.loads((tmp_path / "remote" / "manifest.json").read_text())
    assert remote["images_processed"] == 5
    assert remote["content_hash"] == local["content_hash"]


def test_status_stop_and_bad_job_args(cluster, capsys):
    assert main(["submit", "train", "--phase", "nope", "--address", cluster.address]) == 2
    assert "would refuse these arguments" in capsys.readouterr().err
    assert main(["submit", "evaluate", "--address", cluster.address, "--working-dir", str(ROOT), "--no-wait"]) == 0
    job_id = re.search(r"submitted (\S+)", capsys.readouterr().out).group(1)
    assert main(["submit", "--status", job_id, "--address", cluster.address]) == 0
    assert job_id in capsys.readouterr().out
    assert main(["submit", "--stop", job_id, "--address", cluster.address]) == 0
