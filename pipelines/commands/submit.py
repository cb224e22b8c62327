"""`srgan submit`: run `prepare`, `train` or `evaluate` on a Ray cluster through Ray's Jobs API.

    srgan submit train --phase srresnet --data s3://b/shards --address http://HEAD:8265
    srgan submit --status raysubmit_XXXX --address http://HEAD:8265
    srgan submit --stop raysubmit_XXXX

The working directory is packed as the job's runtime_env `working_dir` (so the cluster runs this
checkout's code) and the job's logs are streamed until it ends; the exit code is the job's.
Ray's token authentication stays on: the token is sent from RAY_AUTH_TOKEN, the file
RAY_AUTH_TOKEN_PATH names, or ~/.ray/auth_token (where `ray start` and `ray get-auth-token` keep it).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from pipelines import UsageError

JOBS = ("prepare", "train", "evaluate")
# Never uploaded with the working directory: environments, outputs, local stores.
EXCLUDES = [".venv", ".git", "__pycache__", "*.egg-info", "runs", "outputs", "shards", "mlruns", "mlartifacts",
            "*.db", ".pytest_cache"]


def _own_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="srgan submit", add_help=False)
    p.add_argument("--address", default=os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
                   or "http://127.0.0.1:8265", help="the cluster's dashboard address (default: $RAY_ADDRESS or "
                                                    "http://127.0.0.1:8265)")
    p.add_argument("--working-dir", default=".", help="folder uploaded as the job's code (default: .)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment variable for the job, e.g. MLFLOW_TRACKING_URI=http://mlflow:5000")
    p.add_argument("--entrypoint-cpus", type=float, default=0, help="CPUs reserved for the job's driver")
    p.add_argument("--no-wait", action="store_true", help="submit and return without streaming the logs")
    p.add_argument("--status", metavar="JOB_ID", help="print a job's status and exit")
    p.add_argument("--stop", metavar="JOB_ID", help="stop a job and exit")
    return p


def add_parser(sub: argparse._SubParsersAction) -> None:
    own = _own_options()
    p = sub.add_parser("submit", parents=[own], help="run prepare/train/evaluate on a Ray cluster (Jobs API)",
                       description="Submit a job to a Ray cluster; options of `srgan submit` may come anywhere, "
                                   "everything else goes to the job.")
    p.add_argument("job", nargs="?", choices=JOBS, help="the srgan command to run on the cluster")
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="its arguments")
    p.set_defaults(run=run, job_parsers=sub.choices)  # the other commands' parsers, to check job_args


def _split_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {pair!r} must look like KEY=VALUE")
        env[key] = value
    return env


def entrypoint(job: str, job_args: list[str]) -> str:
    """The job's shell command. `python -m` runs the uploaded working directory's code."""
    return " ".join(["python", "-m", "pipelines.cli", job, *map(shlex.quote, job_args)])


def auth_headers() -> dict[str, str]:
    """A bearer token for Ray's token authentication, from where Ray itself looks for one.

    Sent whenever one exists: Ray's client adds it only when RAY_AUTH_MODE=token is set in the
    client's own environment, while the project's clusters require it (the KubeRay manifests'
    `authOptions`, the launcher's RAY_AUTH_MODE=token; `ray start` alone leaves it off).
    """
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if not token and path.is_file():
        token = path.read_text().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def run(args: argparse.Namespace) -> int:
    from ray.job_submission import JobStatus, JobSubmissionClient

    own, job_args = _own_options().parse_known_args(args.job_args, namespace=args)
    client = JobSubmissionClient(own.address, headers=auth_headers())
    if own.status:
        info = client.get_job_info(own.status)
        print(f"{own.status}: {info.status.value}" + (f" ({info.message})" if info.message else ""))
        return 0
    if own.stop:
        print(f"{own.stop}: {'stop requested' if client.stop_job(own.stop) else 'already finished'}")
        return 0
    if not own.job:
        raise UsageError("name a job to submit (prepare, train or evaluate), or pass --status/--stop JOB_ID")
    _check_job_args(args.job_parsers[own.job], own.job, job_args)
    runtime_env: dict[str, Any] = {"working_dir": own.working_dir, "excludes": EXCLUDES,
                                   "env_vars": _split_env(own.env)}
    job_id = _submit(client, entrypoint=entrypoint(own.job, job_args), runtime_env=runtime_env,
                     entrypoint_num_cpus=own.entrypoint_cpus)
    print(f"submitted {job_id} to {own.address}", flush=True)
    if own.no_wait:
        return 0
    import asyncio

    asyncio.run(_stream(client, job_id))
    status = client.get_job_status(job_id)
    print(f"{job_id}: {status.value}")
    return 0 if status == JobStatus.SUCCEEDED else 1


def _submit(client, wait_s: float = 60, **job: Any) -> str:
    """Submit, waiting while a cluster that just started has no job agent up yet."""
    deadline = time.time() + wait_s
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.time() > deadline:
                raise
            time.sleep(2)


def _check_job_args(parser: argparse.ArgumentParser, job: str, job_args: list[str]) -> None:
    """Parse the job's arguments here first, so a typo fails before anything is uploaded."""
    try:
        parser.parse_args(job_args)
    except SystemExit as e:
        raise UsageError(f"srgan {job} would refuse these arguments (see above)") from e


async def _stream(client, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        sys.stdout.write(lines)
        sys.stdout.flush()
