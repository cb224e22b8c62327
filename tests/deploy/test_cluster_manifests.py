"""Static checks of cluster/ and infra/: the files a real cluster runs, checked without one.

- KubeRay manifests validate against the KubeRay v1.7.0 CRD schemas (../shared/schemas), offline,
  with unknown fields treated as errors (the API server would prune or refuse them).
- The RayService's serveConfigV2 is Ray's own Serve schema, imports, and equals cluster/serve.yaml
  but for http_options.host.
- Every `srgan` command written in the manifests, the launcher YAML and the READMEs is accepted
  by the real argparse parser; the launcher YAML validates against Ray's launcher schema.
- Every file the Dockerfiles COPY and the launcher mounts exists; the MLflow server commands are
  accepted by mlflow's own CLI.

No Ray is started (importing ray.serve.schema and building the parser does not), no network.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import io
import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from helpers import ROOT, SHARED

# Ray's and mlflow's own deprecation warnings on import (pydantic, SQLAlchemy): not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SCHEMAS = SHARED / "schemas" / "kuberay-v1.7.0"
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayService": "ray.io_rayservices.yaml",
             "RayCluster": "ray.io_rayclusters.yaml"}
KUBERAY = ROOT / "cluster" / "kuberay"
MANIFESTS = sorted(KUBERAY.glob("*.yaml"))
LAUNCHER = ROOT / "cluster" / "launcher" / "aws.yaml"
SERVE_YAML = ROOT / "cluster" / "serve.yaml"
MLFLOW = ROOT / "infra" / "mlflow"
IMAGE_WORKDIR = "/home/ray/srgan-ray"  # WORKDIR of infra/Dockerfile
# Dockerfile -> its build context (the build commands in their headers say the same).
DOCKERFILES = {ROOT / "infra" / "Dockerfile": ROOT, MLFLOW / "Dockerfile": MLFLOW}
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 1 MB each: libyaml if present


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.load_all(path.read_text(), Loader=Loader) if d is not None]


def only(path: Path) -> dict:
    docs = load_all(path)
    assert len(docs) == 1, f"{path.name}: expected one document, found {len(docs)}"
    return docs[0]


# ---------------------------------------------------------------- KubeRay CRD schemas

def strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema in which objects with `properties` refuse unknown fields,
    as the API server does (it prunes them): additionalProperties: false wherever a schema lists
    properties and says nothing about additional ones nor preserves unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("anyOf", "allOf", "oneOf") or (
                key in ("items", "additionalProperties", "not") and isinstance(value, dict)):
            out[key] = strict(value)
        else:
            out[key] = value
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@cache
def crd(kind: str) -> dict:
    path = SCHEMAS / CRD_FILES[kind]
    if not path.is_file():
        pytest.fail(f"KubeRay CRD schema not found at {path}; set SRGAN_SHARED to the shared folder")
    doc = yaml.load(path.read_text(), Loader=Loader)
    assert doc["kind"] == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == kind
    return doc


@cache
def validator(kind: str, version: str) -> jsonschema.Validator:
    doc = crd(kind)
    versions = {v["name"]: v for v in doc["spec"]["versions"]}
    assert version in versions, f"{kind}: the CRD has no version {version} (has {sorted(versions)})"
    schema = strict(versions[version]["schema"]["openAPIV3Schema"])
    jsonschema.Draft4Validator.check_schema(schema)  # OpenAPI 3.0 schemas are a JSON Schema draft 4 dialect
    return jsonschema.Draft4Validator(schema)


def crd_errors(manifest: dict) -> list[str]:
    kind = manifest.get("kind")
    assert kind in CRD_FILES, f"not a KubeRay kind: {kind!r}"
    group, _, version = manifest.get("apiVersion", "").partition("/")
    assert group == crd(kind)["spec"]["group"], f"apiVersion {manifest.get('apiVersion')!r} is not in group ray.io"
    errors = validator(kind, version).iter_errors(manifest)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))]


def docs_of_kind(kind: str) -> list[tuple[Path, dict]]:
    return [(p, d) for p in MANIFESTS for d in load_all(p) if d.get("kind") == kind]


def test_the_manifests_are_there():
    names = {p.name for p in MANIFESTS}
    assert {"rayjob-prepare.yaml", "rayjob-train.yaml", "rayservice.yaml"} <= names
    assert len(docs_of_kind("RayJob")) == 2 and len(docs_of_kind("RayService")) == 1


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_the_kuberay_crd(path):
    for doc in load_all(path):
        errors = crd_errors(doc)
        assert not errors, f"{path.name} ({doc['kind']} {doc['metadata']['name']}):\n  " + "\n  ".join(errors)


@pytest.mark.parametrize("where, field", [
    (("spec",), "entrypointt"),
    (("spec", "rayClusterSpec"), "enableInTreeAutoscaler"),
    (("spec", "rayClusterSpec", "workerGroupSpecs", 0), "gpus"),
    (("spec", "rayClusterSpec", "workerGroupSpecs", 0, "template", "spec", "containers", 0), "gpuCount"),
    (("spec", "rayClusterSpec", "headGroupSpec", "template", "spec", "containers", 0, "resources"), "gpu"),
])
def test_an_unknown_field_fails_validation(where, field):
    manifest = copy.deepcopy(only(KUBERAY / "rayjob-train.yaml"))
    node = manifest
    for key in where:
        node = node[key]
    node[field] = 1
    errors = crd_errors(manifest)
    assert any(repr(field) in e and "not allowed" in e for e in errors), errors


def test_a_wrong_type_fails_validation():
    manifest = copy.deepcopy(only(KUBERAY / "rayservice.yaml"))
    manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = "four"
    assert crd_errors(manifest)


def test_all_manifests_use_the_project_image_and_ray_version():
    for path in MANIFESTS:
        for doc in load_all(path):
            cluster = doc["spec"].get("rayClusterSpec") or doc["spec"]["rayClusterConfig"]
            assert cluster["rayVersion"] == "2.60.0", path.name
            groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
            for group in groups:
                for c in group["template"]["spec"]["containers"]:
                    assert re.fullmatch(r"ghcr\.io/OWNER/srgan-ray:0\.1\.0(-gpu)?", c["image"]), (path.name, c["image"])


# ---------------------------------------------------------------- Serve config

def _fields(model) -> set[str]:
    return set(getattr(model, "model_fields", None) or model.__fields__)  # pydantic 2 / 1


def parse_serve_config(raw: dict):
    """Ray's own Serve config schema (`serve deploy` and KubeRay use it); importing it starts nothing.
    Ray's models ignore unknown keys, which would silently drop a misspelt setting: refused here,
    and the autoscaling_config dicts are checked with Ray's AutoscalingConfig as a deploy would."""
    from ray.serve import schema
    from ray.serve.config import AutoscalingConfig

    def known(d: dict, model, where: str) -> None:
        unknown = sorted(set(d) - _fields(model))
        assert not unknown, f"serve config {where}: unknown keys {unknown}"

    known(raw, schema.ServeDeploySchema, "top level")
    known(raw.get("http_options") or {}, schema.HTTPOptionsSchema, "http_options")
    for app in raw.get("applications") or []:
        known(app, schema.ServeApplicationSchema, f"application {app.get('name')}")
        for dep in app.get("deployments") or []:
            known(dep, schema.DeploymentSchema, f"deployment {dep.get('name')}")
            if isinstance(dep.get("autoscaling_config"), dict):
                known(dep["autoscaling_config"], AutoscalingConfig, f"deployment {dep.get('name')} autoscaling_config")
                validate = getattr(AutoscalingConfig, "model_validate", None) or AutoscalingConfig.parse_obj
                validate(dep["autoscaling_config"])
    parse = getattr(schema.ServeDeploySchema, "model_validate", None) or schema.ServeDeploySchema.parse_obj
    return parse(raw)


def rayservice() -> dict:
    [(_, doc)] = docs_of_kind("RayService")
    return doc


def test_cluster_serve_yaml_parses_with_rays_schema():
    cfg = parse_serve_config(yaml.safe_load(SERVE_YAML.read_text()))
    assert [a.import_path for a in cfg.applications] == ["pipelines.serve:app"]


def test_rayservice_serve_config_parses_and_imports():
    raw = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    cfg = parse_serve_config(raw)
    assert cfg.http_options.host == "0.0.0.0"  # inside the pod: reachable by the Kubernetes Service
    assert cfg.applications
    for app in cfg.applications:
        module, _, attr = app.import_path.partition(":")
        builder = getattr(importlib.import_module(module), attr)
        assert callable(builder), app.import_path
        builder(app.args)  # the app's args are valid Settings (unknown keys are errors); binds, starts nothing
        deployments = {importlib.import_module(module).Ingress.name, importlib.import_module(module).Upscaler.name}
        assert {d.name for d in app.deployments} <= deployments


def test_a_wrong_serve_config_is_caught():
    from pipelines.serve import app

    raw = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    with pytest.raises(ValueError, match="tiles"):
        app({**raw["applications"][0]["args"], "tiles": 64})  # a misspelt app arg
    for change, expected in [
        (lambda d: d["autoscaling_config"].__setitem__("min_replica", 1), "min_replica"),  # Ray alone ignores it
        (lambda d: d["autoscaling_config"].__setitem__("max_replicas", "two"), "max_replicas"),
        (lambda d: d.__setitem__("max_ongoing_requests", "many"), "max_ongoing_requests"),
    ]:
        broken = copy.deepcopy(raw)
        change(broken["applications"][0]["deployments"][0])
        with pytest.raises(Exception, match=expected):
            parse_serve_config(broken)


def test_rayservice_serve_config_equals_cluster_serve_yaml_but_for_the_host():
    embedded = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    local = yaml.safe_load(SERVE_YAML.read_text())
    assert local["http_options"]["host"] == "127.0.0.1"
    for cfg in (embedded, local):
        del cfg["http_options"]["host"]
    assert embedded == local


def test_rayservice_autoscales():
    spec = rayservice()["spec"]["rayClusterConfig"]
    assert spec["enableInTreeAutoscaling"] is True
    [group] = spec["workerGroupSpecs"]
    assert group["minReplicas"] < group["maxReplicas"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    head_ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    serve_port = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])["http_options"]["port"]
    assert head_ports["serve"] == serve_port


# ---------------------------------------------------------------- srgan commands

def _comment_commands(text: str) -> list[str]:
    """`srgan ...` commands written in YAML comments: a comment that starts with one, or the part
    of a `ray job submit ... -- srgan ...` line after the `--`."""
    found = []
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            continue
        m = re.search(r"(?:^\s*#\s+|\s--\s)(srgan\s.*)$", line)
        if m:
            found.append(m.group(1).strip())
    return found


def _readme_commands(path: Path) -> list[str]:
    """`srgan ...` commands in the fenced code blocks of a README (continuation lines joined)."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", path.read_text(), flags=re.S)
    found = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0]  # a trailing comment
            m = re.search(r"(?:^\s*|\s--\s)(srgan\s.*)$", line)
            if m:
                found.append(m.group(1).strip())
    return found


def srgan_commands() -> list[tuple[str, str]]:
    """(where, command) for every srgan command in cluster/ (manifests, launcher, README)."""
    cmds = [(f"{p.name} entrypoint", d["spec"]["entrypoint"]) for p, d in docs_of_kind("RayJob")]
    for path in [*MANIFESTS, LAUNCHER]:
        cmds += [(f"{path.name} comment", c) for c in _comment_commands(path.read_text())]
    launcher = only(LAUNCHER)
    for key in ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands"):
        for line in launcher.get(key) or []:
            cmds += [(f"{LAUNCHER.name} {key}", m.group(1).strip())
                     for m in [re.search(r"(?:^|[;&|]\s*)(srgan\s[^;&|]*)", line)] if m]
    for readme in (ROOT / "cluster" / "README.md", ROOT / "infra" / "README.md"):
        if readme.is_file():
            cmds += [(readme.relative_to(ROOT).as_posix(), c) for c in _readme_commands(readme)]
    return cmds


def parse_srgan(cmd: str):
    from pipelines.cli import get_args_parser

    argv = shlex.split(cmd)
    assert argv[0] == "srgan", cmd
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return get_args_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"the srgan parser refuses {cmd!r}: {err.getvalue().strip()}")


def test_every_srgan_command_is_accepted_by_the_real_parser():
    cmds = srgan_commands()
    assert {c.split()[1] for _, c in cmds} >= {"prepare", "train"}
    assert any(w.startswith("aws.yaml") for w, _ in cmds), "the launcher YAML shows no srgan command"
    for where, cmd in cmds:
        args = parse_srgan(cmd)  # fails the test, naming the command, if argparse refuses it
        assert args.command == shlex.split(cmd)[1], (where, cmd)


def test_the_parser_check_catches_a_wrong_flag():
    with pytest.raises(pytest.fail.Exception, match="--gpus"):
        parse_srgan("srgan train --phase srresnet --data s3://BUCKET/shards --gpus 4")


def _rayjob(name: str) -> dict:
    return only(KUBERAY / name)


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_prepare_job():
    job = _rayjob("rayjob-prepare.yaml")
    args = parse_srgan(job["spec"]["entrypoint"])
    assert args.command == "prepare"
    assert args.inputs == ["s3://BUCKET/hr-images"] and args.out == "s3://BUCKET/shards"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    [group] = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" not in limits


def test_train_job():
    job = _rayjob("rayjob-train.yaml")
    args = parse_srgan(job["spec"]["entrypoint"])
    assert (args.command, args.phase, args.gpu, args.name) == ("train", "srresnet", True, "srresnet")
    assert args.data == "s3://BUCKET/shards" and args.storage.startswith("s3://")  # shared by every node
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    cluster = job["spec"]["rayClusterSpec"]
    [group] = cluster["workerGroupSpecs"]
    container = group["template"]["spec"]["containers"][0]
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus >= 1 and group["replicas"] * gpus >= args.workers == 4
    assert int(container["resources"]["limits"]["cpu"]) >= args.cpus_per_worker
    # --val is a folder of the image (WORKDIR + a path the Dockerfile copies from the repo)
    assert args.val.startswith(IMAGE_WORKDIR + "/")
    rel = args.val[len(IMAGE_WORKDIR) + 1:]
    assert (ROOT / rel).is_dir()
    assert any(Path(rel).is_relative_to(src) for src in copied_sources(ROOT / "infra" / "Dockerfile")), rel
    # MLflow: the in-cluster URI of infra/mlflow/k8s's Service, on the driver (head) and workers
    uri = mlflow_k8s_uri()
    for c in (cluster["headGroupSpec"]["template"]["spec"]["containers"][0], container):
        assert _env(c)["MLFLOW_TRACKING_URI"] == uri


# ---------------------------------------------------------------- cluster launcher

def test_launcher_validates_against_rays_launcher_schema():
    spec = importlib.util.find_spec("ray")  # the schema file ships with Ray; ray itself is not imported
    schema = json.loads((Path(spec.submodule_search_locations[0]) / "autoscaler" / "ray-schema.json").read_text())
    config = only(LAUNCHER)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(config)]
    assert not errors, "\n".join(errors)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    workers = {k: v for k, v in types.items() if k != config["head_node_type"]}
    assert any("g5" in v["node_config"]["InstanceType"] or v.get("resources", {}).get("GPU") for v in workers.values())
    assert re.fullmatch(r"ghcr\.io/OWNER/srgan-ray:0\.1\.0", config["docker"]["image"])
    assert all(re.fullmatch(r"ghcr\.io/OWNER/srgan-ray:0\.1\.0(-gpu)?", v["docker"]["worker_image"])
               for v in workers.values() if "docker" in v)


def test_launcher_file_mounts_exist():
    config = only(LAUNCHER)
    mounts = config.get("file_mounts") or {}
    assert mounts, "the launcher mounts cluster/serve.yaml"
    for remote, local in mounts.items():
        assert not Path(local).is_absolute(), f"{remote}: {local} must be relative to the repository root"
        assert (ROOT / local).exists(), f"file_mounts {remote}: {local} does not exist in the repository"
    for key in ("cluster_synced_files", "rsync_filter"):
        for local in config.get(key) or []:
            assert (ROOT / local).exists(), f"{key}: {local}"


# ---------------------------------------------------------------- Dockerfiles

def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [ln for ln in dockerfile.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def copied_sources(dockerfile: Path) -> list[str]:
    sources = []
    for word, rest in instructions(dockerfile):
        if word not in ("COPY", "ADD"):
            continue
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue  # from another stage or image, not from the context
        paths = [a for a in args if not a.startswith("--")]
        assert len(paths) >= 2, f"{dockerfile}: {word} {rest}"
        sources += paths[:-1]
    return sources


@pytest.mark.parametrize("dockerfile", list(DOCKERFILES), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_dockerfile_copies_only_files_that_exist(dockerfile):
    context = DOCKERFILES[dockerfile]
    for src in copied_sources(dockerfile):
        assert (context / src).exists(), f"{dockerfile.relative_to(ROOT)} copies {src}, missing from {context}"


def test_project_image():
    dockerfile = ROOT / "infra" / "Dockerfile"
    ins = instructions(dockerfile)
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1].strip('"') for w, rest in ins if w == "ARG" and "=" in rest}
    assert args["BASE_IMAGE"] == "rayproject/ray:2.60.0-py311"
    assert "rayproject/ray:2.60.0-py311-gpu" in dockerfile.read_text()  # the GPU build's base
    assert ("WORKDIR", IMAGE_WORKDIR) in ins
    sources = {s.rstrip("/") for s in copied_sources(dockerfile)}
    assert {"pyproject.toml", "README.md", "srgan", "pipelines", "cluster/serve.yaml"} <= sources
    run = " ".join(rest for w, rest in ins if w == "RUN")
    assert "pip install --no-cache-dir ." in run and not re.search(r"torch==", run)  # no torch pin


# ---------------------------------------------------------------- MLflow server

def mlflow_k8s_uri() -> str:
    svc = next(d for d in load_all(MLFLOW / "k8s" / "mlflow.yaml") if d["kind"] == "Service")
    port = svc["spec"]["ports"][0]["port"]
    return f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local:{port}"


def parse_mlflow_server(args: list[str]) -> dict:
    import click
    from mlflow.cli import server

    try:
        return server.make_context("server", list(args)).params  # parses only; starts nothing
    except click.ClickException as e:
        pytest.fail(f"mlflow server refuses {args}: {e.format_message()}")


def test_mlflow_kubernetes_manifests():
    kustomization = only(MLFLOW / "k8s" / "kustomization.yaml")
    for res in kustomization["resources"]:
        for doc in load_all(MLFLOW / "k8s" / res):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], res
    deployment = next(d for d in load_all(MLFLOW / "k8s" / "mlflow.yaml") if d["kind"] == "Deployment")
    [c] = deployment["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["mlflow", "server"]
    params = parse_mlflow_server(c["args"])
    assert params["backend_store_uri"].startswith("postgresql://")
    assert params["artifacts_destination"].startswith("s3://") and params["serve_artifacts"]
    assert params["host"] == "0.0.0.0"  # in the container only; the ClusterIP Service decides exposure
    # the Host header the Ray pods send must be allowed by MLflow's DNS-rebinding protection
    host = mlflow_k8s_uri().removeprefix("http://")
    from mlflow.server.security_utils import is_allowed_host_header

    assert is_allowed_host_header(params["allowed_hosts"].split(","), host)
    assert c["ports"][0]["containerPort"] == params["port"]
    assert "psycopg2" in (MLFLOW / "Dockerfile").read_text() and "boto3" in (MLFLOW / "Dockerfile").read_text()
    assert "mlflow==3.17.2" in (MLFLOW / "Dockerfile").read_text()


def test_mlflow_docker_compose():
    compose = only(MLFLOW / "docker-compose.yaml")
    services = compose["services"]
    assert {"postgres", "minio", "mlflow"} <= set(services)
    mlflow = services["mlflow"]
    build = mlflow["build"]
    assert (MLFLOW / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()
    [command] = mlflow["command"]
    argv = shlex.split(command.replace("$$", "$"))  # compose's escape for a literal $
    assert argv[:3] == ["exec", "mlflow", "server"]
    params = parse_mlflow_server(argv[3:])
    assert params["backend_store_uri"].startswith("postgresql://") and "@postgres:" in params["backend_store_uri"]
    assert params["artifacts_destination"].startswith("s3://")
    assert params["host"] == "0.0.0.0"
    # published on the host's loopback unless the operator says otherwise
    assert mlflow["ports"] == ["${MLFLOW_BIND:-127.0.0.1}:5000:5000"]
    assert "ports" not in services["postgres"] and "ports" not in services["minio"]
