"""Static checks of cluster/ and infra/: the files a real cluster runs, checked without one.

- KubeRay manifests validate against the KubeRay v1.7.0 CRD schemas (../shared/schemas), offline,
  with unknown fields treated as errors (the API server would prune or refuse them).
- The RayService's serveConfigV2 is Ray's own Serve schema, imports, and equals cluster/serve.yaml
  but for http_options.host.
- Every `srgan` command written in the manifests, the launcher YAML and the READMEs is accepted
  by the real argparse parser; the launcher YAML validates against Ray's launcher schema.
- Every file the Dockerfiles COPY and the launcher mounts exists; the MLflow server commands are
  accepted by mlflow's own CLI.
- Access control: every RayJob/RayService requires a Ray token (authOptions), the RayJobs submit
  from the head pod; the launcher binds the dashboard to 127.0.0.1 and starts every node with
  token auth; the RayService serves a pinned model version; the MLflow server runs its basic-auth
  app. The NetworkPolicies (and every plain Kubernetes object) validate against the Kubernetes
  JSON schemas bundled by kubernetes-validate, and a small evaluator of NetworkPolicy semantics
  checks, pod by pod, that each connection the cluster needs is admitted and the others are not.
  No manifest, compose file or template holds a literal secret or puts one on a command line.

No Ray is started (importing ray.serve.schema and building the parser does not), no network.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.metadata
import importlib.util
import io
import json
import re
import shlex
from dataclasses import dataclass, field
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
IMAGE = "ghcr.io/OWNER/srgan-ray:0.1.0"  # the CPU image; the GPU one is IMAGE-gpu
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
                    # the serving image (no torch) only where Serve replicas run: the RayService's workers
                    serving = doc["kind"] == "RayService" and group is not cluster["headGroupSpec"]
                    assert c["image"] == (IMAGE + "-serve" if serving else c["image"]) and \
                        c["image"] in (IMAGE, IMAGE + "-gpu", IMAGE + "-serve"), (path.name, c["image"])


def test_the_build_script_tags_the_image_the_manifests_run():
    name = IMAGE.rsplit("/", 1)[1]  # build_image.sh REGISTRY tags REGISTRY/NAME; here ghcr.io/OWNER
    assert name == f"srgan-ray:{importlib.metadata.version('srgan-ray')}"
    assert re.search(rf"^NAME={name} ", (ROOT / "infra" / "build_image.sh").read_text(), re.M)


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


def test_rayservice_serve_config_equals_cluster_serve_yaml_but_for_the_host_and_model():
    embedded = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    local = yaml.safe_load(SERVE_YAML.read_text())
    assert local["http_options"]["host"] == "127.0.0.1"
    for cfg in (embedded, local):
        del cfg["http_options"]["host"]
        for app in cfg["applications"]:
            del app["args"]["model"]
    assert embedded == local


PINNED_MODEL = re.compile(r"models:/[A-Za-z0-9_.-]+/[0-9]+")  # models:/NAME/VERSION


def pinned_model_error(spec: str, *, shipped_ok: bool) -> str | None:
    """Why a served model spec may change under a running endpoint, or None if it cannot: a
    registered version number is immutable, an @alias (or `latest`) is a pointer anyone with edit
    rights can move, and every replica that starts later would load the new target."""
    from srgan import SHIPPED_MODELS

    if PINNED_MODEL.fullmatch(spec) or (shipped_ok and spec in SHIPPED_MODELS):
        return None
    return f"{spec!r} is not pinned: serve models:/NAME/VERSION" + (" or a shipped model" if shipped_ok else "")


def test_the_served_model_is_a_pinned_version():
    for app in yaml.safe_load(rayservice()["spec"]["serveConfigV2"])["applications"]:
        # the cluster serves a registry version
        assert pinned_model_error(app["args"]["model"], shipped_ok=False) is None
    for app in yaml.safe_load(SERVE_YAML.read_text())["applications"]:
        assert pinned_model_error(app["args"]["model"], shipped_ok=True) is None  # shipped weights: fixed in the image


@pytest.mark.parametrize("spec", ["models:/srgan-generator@srresnet", "models:/srgan-generator/latest",
                                  "models:/srgan-generator", "s3://BUCKET/runs/srresnet/checkpoint"])
def test_a_movable_model_is_caught(spec):
    assert pinned_model_error(spec, shipped_ok=True)


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
    assert config["docker"]["image"] == IMAGE
    assert all(v["docker"]["worker_image"] in (IMAGE, IMAGE + "-gpu")
               for v in workers.values() if "docker" in v)


# Mounted from the user's home, never from the repository: the cluster's Ray token (`ray up` copies
# it to every node; the user's CLI reads the same file).
TOKEN_MOUNT = {"/home/ray/.ray/auth_token": "~/.ray/auth_token"}


def test_launcher_file_mounts_exist():
    config = only(LAUNCHER)
    mounts = dict(config.get("file_mounts") or {})
    assert mounts.items() >= TOKEN_MOUNT.items(), "the launcher gives every node the Ray token"
    for remote in TOKEN_MOUNT:
        del mounts[remote]
    assert mounts, "the launcher mounts cluster/serve.yaml"
    for remote, local in mounts.items():
        assert not Path(local).is_absolute() and not local.startswith("~"), \
            f"{remote}: {local} must be relative to the repository root"
        assert (ROOT / local).exists(), f"file_mounts {remote}: {local} does not exist in the repository"
    for key in ("cluster_synced_files", "rsync_filter"):
        for local in config.get(key) or []:
            assert (ROOT / local).exists(), f"{key}: {local}"


def _ray_start_commands(lines: list[str]) -> list[tuple[dict[str, str], list[str]]]:
    """The `ray start` commands of the launcher's start lines, each with the variables exported
    before it on the same line (`export A=b; ray start ...`)."""
    found = []
    for line in lines:
        exported = {}
        for part in re.split(r"\s*(?:;|&&)\s*", line):
            argv = shlex.split(part)
            if argv[:1] == ["export"]:
                exported.update(a.split("=", 1) for a in argv[1:])
            elif argv[:2] == ["ray", "start"]:
                found.append((exported.copy(), argv))
    return found


def _flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return argv[i + 1]
    return None


def test_launcher_dashboard_binds_loopback_only():
    [(_, head)] = _ray_start_commands(only(LAUNCHER)["head_start_ray_commands"])
    assert "--head" in head
    assert _flag(head, "--dashboard-host") == "127.0.0.1"  # reached through `ray dashboard` (SSH tunnel)
    text = LAUNCHER.read_text()
    assert "ray dashboard cluster/launcher/aws.yaml" in text  # and the file says how


def test_launcher_nodes_require_a_token():
    launcher = only(LAUNCHER)
    starts = _ray_start_commands(launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"])
    assert len(starts) == 2
    for exported, argv in starts:
        assert exported.get("RAY_AUTH_MODE") == "token", argv


def test_the_launcher_checks_catch_an_open_dashboard():
    lines = [c.replace("--dashboard-host=127.0.0.1", "--dashboard-host 0.0.0.0")
             .replace("export RAY_AUTH_MODE=token; ", "") for c in only(LAUNCHER)["head_start_ray_commands"]]
    [(exported, head)] = _ray_start_commands(lines)
    assert _flag(head, "--dashboard-host") == "0.0.0.0" and "RAY_AUTH_MODE" not in exported


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
    assert "pip install --no-cache-dir '.[openvino]'" in run and not re.search(r"torch==", run)  # no torch pin
    stages = [rest.split() for w, rest in ins if w == "FROM"]
    assert stages == [["${BASE_IMAGE}", "AS", "project"], ["project", "AS", "full"], ["project", "AS", "serve"],
                      ["full"]]  # default: full
    assert "srgan export --shipped" in run and "--from=full" in dockerfile.read_text()  # the engines, made once


def test_the_serving_image_installs_pyprojects_pins_without_torch():
    import runpy

    import tomllib

    requirements = runpy.run_path(str(ROOT / "infra" / "serving_requirements.py"))["requirements"]()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {re.sub(r"\[[^]]*\]", "", r).replace("mlflow-skinny", "mlflow")
              for r in [*project["dependencies"], *project["optional-dependencies"]["openvino"]]}
    names = {re.match(r"[a-z0-9_.-]+", r.lower()).group(0) for r in requirements}
    assert all(re.sub(r"\[[^]]*\]", "", r).replace("mlflow-skinny", "mlflow") in pinned for r in requirements)
    assert not names & {"torch", "torchvision", "scikit-image", "scipy", "nncf", "onnx", "mlflow"}, names
    assert {"ray", "openvino", "numpy", "pillow", "mlflow-skinny"} <= names
    assert "ray[serve]==2.60.0" in requirements


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
    assert "mlflow[auth]==3.17.2" in (MLFLOW / "Dockerfile").read_text()


def test_mlflow_docker_compose():
    compose = only(MLFLOW / "docker-compose.yaml")
    services = compose["services"]
    assert {"postgres", "minio", "mlflow"} <= set(services)
    mlflow = services["mlflow"]
    build = mlflow["build"]
    assert (MLFLOW / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()
    argv = mlflow["command"]  # the image's entrypoint is `mlflow`
    assert argv[0] == "server"
    params = parse_mlflow_server(argv[1:])
    assert params["backend_store_uri"].startswith("postgresql://") and "@postgres:" in params["backend_store_uri"]
    assert params["artifacts_destination"].startswith("s3://")
    assert params["host"] == "0.0.0.0"
    # published on the host's loopback unless the operator says otherwise
    assert mlflow["ports"] == ["${MLFLOW_BIND:-127.0.0.1}:5000:5000"]
    assert "ports" not in services["postgres"] and "ports" not in services["minio"]


# ---------------------------------------------------------------- access control: Ray token auth

def ray_cluster_spec(doc: dict) -> dict:
    return doc["spec"].get("rayClusterSpec") or doc["spec"]["rayClusterConfig"]


def kuberay_docs() -> list[tuple[Path, dict]]:
    return [*docs_of_kind("RayJob"), *docs_of_kind("RayService")]


def test_every_ray_cluster_requires_a_token():
    docs = kuberay_docs()
    assert len(docs) == 3
    for path, doc in docs:
        auth = ray_cluster_spec(doc).get("authOptions") or {}
        # explicit: Ray 2.60's `ray start` leaves token auth off in a pod
        assert auth.get("mode") == "token", f"{path.name}: authOptions.mode must be token"
        # KubeRay supports Kubernetes-delegated auth for a standalone RayCluster only
        assert not auth.get("enableK8sTokenAuth"), path.name


def test_the_rayservice_keeps_one_token_across_upgrades():
    # Each RayService upgrade starts a new RayCluster; a generated token would change with it.
    auth = ray_cluster_spec(rayservice())["authOptions"]
    secret = auth.get("secretName")
    assert secret, "the RayService names the Secret holding its token"
    text = (KUBERAY / "rayservice.yaml").read_text()
    assert f"create secret generic {secret} --from-literal=auth_token=" in text, "the manifest says how to create it"


def test_ray_jobs_submit_from_the_head_pod():
    # SidecarMode: the submitter reaches the Jobs API on 127.0.0.1, so no pod outside the Ray
    # cluster needs the dashboard port (the NetworkPolicies admit none but the operator).
    for path, job in docs_of_kind("RayJob"):
        assert job["spec"].get("submissionMode") == "SidecarMode", path.name
        assert "submitterPodTemplate" not in job["spec"] and "submitterConfig" not in job["spec"], path.name


@pytest.mark.parametrize("auth", [{"mode": "Token"}, {"mode": "token", "secret": "x"}, {"mode": True}])
def test_a_wrong_auth_option_fails_validation(auth):
    manifest = copy.deepcopy(only(KUBERAY / "rayjob-prepare.yaml"))
    manifest["spec"]["rayClusterSpec"]["authOptions"] = auth
    assert any(e.startswith("spec.rayClusterSpec.authOptions") for e in crd_errors(manifest)), crd_errors(manifest)


# ---------------------------------------------------------------- access control: NetworkPolicies

K8S = ROOT / "cluster" / "k8s"
RAY_NAMESPACE = "srgan"
# Namespaces of components outside the project, as the policies' PLACEHOLDER comments name them.
OPERATOR_NAMESPACE, MONITORING_NAMESPACE, INGRESS_NAMESPACE = "kuberay-system", "monitoring", "ingress-nginx"


def k8s_docs() -> list[tuple[Path, dict]]:
    """The plain Kubernetes objects of the repository (not KubeRay's, not kustomize's)."""
    mlflow_resources = only(MLFLOW / "k8s" / "kustomization.yaml")["resources"]
    paths = sorted(K8S.glob("*.yaml")) + [MLFLOW / "k8s" / r for r in mlflow_resources]
    return [(p, d) for p in paths for d in load_all(p)]


def network_policies() -> list[dict]:
    return [d for _, d in k8s_docs() if d["kind"] == "NetworkPolicy"]


def k8s_schema_versions() -> list[str]:
    from kubernetes_validate.utils import latest_version

    return ["1.29", latest_version()]  # the oldest Kubernetes still common, and the newest bundled


def k8s_errors(doc: dict, version: str) -> str | None:
    """The first violation of the Kubernetes JSON schema (strict: unknown fields are errors)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
    return None


def test_the_kubernetes_objects_validate_against_the_kubernetes_schema():
    docs = k8s_docs()
    kinds = {d["kind"] for _, d in docs}
    assert {"Namespace", "NetworkPolicy", "Service", "Deployment", "StatefulSet", "Job"} <= kinds
    for version in k8s_schema_versions():
        for path, doc in docs:
            error = k8s_errors(doc, version)
            assert error is None, f"{path.name} {doc['kind']} {doc['metadata']['name']} (Kubernetes {version}): {error}"


@pytest.mark.parametrize("change", [
    lambda p: p["spec"].__setitem__("ingres", []),                        # misspelt field
    lambda p: p["spec"].__setitem__("policyTypes", "Ingress"),            # a string, not a list
    lambda p: p["spec"]["podSelector"].__setitem__("matchLabel", {}),     # misspelt selector
])
def test_a_wrong_network_policy_fails_validation(change):
    policy = copy.deepcopy(next(p for p in network_policies() if p["metadata"]["name"] == "mlflow-from-ray"))
    change(policy)
    assert k8s_errors(policy, k8s_schema_versions()[-1])


# A small evaluator of the NetworkPolicy semantics (networking.k8s.io/v1, ingress only) so the
# tests can ask "may this pod open that port on that pod?" of the very policies in the repository.

@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)  # container port name -> number


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: dict, policy_namespace: str, src: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # pods are not addressed by IP in these tests
    ns_selector, pod_selector = peer.get("namespaceSelector"), peer.get("podSelector")
    ns_ok = (selects(ns_selector, {"kubernetes.io/metadata.name": src.namespace}) if ns_selector is not None
             else src.namespace == policy_namespace)
    return ns_ok and (pod_selector is None or selects(pod_selector, src.labels))


def _port_matches(rule_port: dict, port: int, dst: Pod) -> bool:
    if rule_port.get("protocol", "TCP") != "TCP":
        return False
    first = rule_port.get("port")
    if first is None:
        return True
    first = dst.ports.get(first) if isinstance(first, str) else first  # a named port
    return first is not None and first <= port <= rule_port.get("endPort", first)


def admits(policies: list[dict], src: Pod, dst: Pod, port: int) -> bool:
    """Whether a TCP connection from `src` to `dst`:`port` is allowed: a pod no ingress policy
    selects admits everything; one that some policy selects admits what any of them allows."""
    isolating = [p for p in policies if p["metadata"]["namespace"] == dst.namespace
                 and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
                 and selects(p["spec"]["podSelector"], dst.labels)]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get("ingress") or []:
            peers, ports = rule.get("from"), rule.get("ports")  # absent or empty: any peer / any port
            if ((not peers or any(_peer_matches(peer, policy["metadata"]["namespace"], src) for peer in peers))
                    and (not ports or any(_port_matches(rp, port, dst) for rp in ports))):
                return True
    return False


def test_the_evaluator_reads_policies_as_kubernetes_does():
    a, b = Pod("x", {"app": "a"}), Pod("x", {"app": "b"})
    deny = {"metadata": {"namespace": "x"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    allow_a = {"metadata": {"namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "a"}}}], "ports": [{"port": 80}]}]}}
    assert admits([], a, b, 80) and not admits([deny], a, b, 80)
    assert admits([deny, allow_a], a, b, 80) and not admits([deny, allow_a], a, b, 81)
    assert not admits([deny, allow_a], Pod("y", {"app": "a"}), b, 80)  # a podSelector alone: own namespace only
    both = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}},
            "podSelector": {"matchLabels": {"app": "a"}}}
    anded = {"metadata": {"namespace": "x"}, "spec": {"podSelector": {}, "ingress": [{"from": [both]}]}}
    assert admits([anded], Pod("y", {"app": "a"}), b, 1) and not admits([anded], Pod("y", {"app": "c"}), b, 1)


def _template_pod(namespace: str, template: dict, **extra: str) -> Pod:
    ports = {p["name"]: p["containerPort"]
             for c in template["spec"]["containers"] for p in c.get("ports", []) if "name" in p}
    return Pod(namespace, {**(template.get("metadata", {}).get("labels") or {}), **extra}, ports)


def project_pods() -> dict[str, Pod]:
    """Every pod the repository's manifests create, with the labels it will carry: the template's,
    plus those KubeRay adds to Ray pods (ray.io/node-type is one it does not let templates set)."""
    pods = {}
    for _, doc in kuberay_docs():
        cluster = ray_cluster_spec(doc)
        ns = doc["metadata"]["namespace"]
        groups = [("head", cluster["headGroupSpec"]), *(("worker", g) for g in cluster["workerGroupSpecs"])]
        for node_type, group in groups:
            pod = _template_pod(ns, group["template"], **{"ray.io/node-type": node_type, "ray.io/is-ray-node": "yes",
                                                           "ray.io/cluster": doc["metadata"]["name"] + "-x7k2p"})
            pods[f"{pod.labels.get('app.kubernetes.io/component')}-{node_type}"] = pod
    for _, doc in k8s_docs():
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            pod = _template_pod(doc["metadata"]["namespace"], doc["spec"]["template"])
            pods[pod.labels.get("app", doc["metadata"]["name"])] = pod
    return pods


OUTSIDERS = {
    "operator": Pod(OPERATOR_NAMESPACE, {"app.kubernetes.io/name": "kuberay-operator"}),
    "prometheus": Pod(MONITORING_NAMESPACE, {"app.kubernetes.io/name": "prometheus"}),
    "ingress": Pod(INGRESS_NAMESPACE, {"app.kubernetes.io/name": "ingress-nginx"}),
    "stray pod in srgan": Pod(RAY_NAMESPACE, {"app": "debug"}),
    "stray pod in mlflow": Pod("mlflow", {"app": "debug"}),
    # a pod elsewhere that copies the Ray pods' labels: labels alone must not let it in
    "look-alike in default": Pod("default", {"app.kubernetes.io/name": "srgan-ray",
                                             "app.kubernetes.io/component": "train", "ray.io/node-type": "worker"}),
    "operator look-alike": Pod("default", {"app.kubernetes.io/name": "kuberay-operator"}),
}
RANDOM_PORT = 47315  # a port Ray, NCCL or Gloo may pick at run time
COMPONENTS = ("prepare", "train", "serve")

# (source, destination, port, admitted?) — what each pod needs, and what it must not get.
EXPECTED = [
    *[case for c in COMPONENTS for case in [
        (f"{c}-worker", f"{c}-head", 6379, True),          # workers register with the GCS
        (f"{c}-worker", f"{c}-head", RANDOM_PORT, True),   # raylet / object manager / worker ports
        (f"{c}-head", f"{c}-worker", 52365, True),         # the dashboard calls each node's agent
        (f"{c}-head", f"{c}-worker", RANDOM_PORT, True),
        (f"{c}-worker", f"{c}-worker", RANDOM_PORT, True),  # objects, NCCL/Gloo between workers
        ("operator", f"{c}-head", 8265, True),             # KubeRay drives the head's dashboard
        ("operator", f"{c}-head", 6379, False),
        ("operator", f"{c}-head", 10001, False),
        ("operator look-alike", f"{c}-head", 8265, False),
        ("stray pod in srgan", f"{c}-head", 8265, False),
        ("stray pod in srgan", f"{c}-head", 6379, False),
        ("stray pod in srgan", f"{c}-head", 10001, False),
        ("stray pod in srgan", f"{c}-worker", RANDOM_PORT, False),
        ("look-alike in default", f"{c}-head", 6379, False),
        ("prometheus", f"{c}-head", 8080, True),
        ("prometheus", f"{c}-worker", 8080, True),
        ("prometheus", f"{c}-head", 8265, False),
        ("ingress", f"{c}-head", 8265, False),
        (f"{c}-worker", "mlflow", 5000, True),              # runs, models, artifacts (proxied)
        (f"{c}-head", "mlflow", 5000, True),
        (f"{c}-worker", "postgres", 5432, False),
        (f"{c}-worker", "minio", 9000, False),
    ]],
    # workloads are kept apart: a serve replica (it decodes untrusted uploads) cannot reach training
    ("serve-worker", "train-head", 6379, False),
    ("serve-worker", "train-worker", RANDOM_PORT, False),
    ("prepare-worker", "serve-head", 6379, False),
    ("train-worker", "prepare-head", 8265, False),
    # the endpoint: every serve node runs a proxy; the operator probes them, the ingress forwards
    ("ingress", "serve-head", 8000, True),
    ("ingress", "serve-worker", 8000, True),
    ("operator", "serve-worker", 8000, True),
    ("ingress", "train-head", 8000, False),
    ("stray pod in srgan", "serve-worker", 8000, False),
    # MLflow and its stores
    ("stray pod in srgan", "mlflow", 5000, False),
    ("look-alike in default", "mlflow", 5000, False),
    ("stray pod in mlflow", "mlflow", 5000, False),
    ("mlflow", "postgres", 5432, True),
    ("stray pod in mlflow", "postgres", 5432, False),
    ("minio", "postgres", 5432, False),
    ("mlflow", "minio", 9000, True),
    ("minio-create-bucket", "minio", 9000, True),
    ("mlflow", "minio", 9001, False),                      # the console: port-forward only
    ("stray pod in mlflow", "minio", 9000, False),
    ("postgres", "minio", 9000, False),
]


def test_the_pods_the_policies_are_about_exist():
    pods = project_pods()
    expected = {f"{c}-{t}" for c in COMPONENTS for t in ("head", "worker")}
    expected |= {"mlflow", "postgres", "minio", "minio-create-bucket"}
    assert expected <= set(pods), sorted(pods)
    assert {p.namespace for name, p in pods.items() if name.endswith(("-head", "-worker"))} == {RAY_NAMESPACE}


@pytest.mark.parametrize("src, dst, port, allowed", EXPECTED, ids=lambda v: str(v))
def test_network_policies_admit_what_each_pod_needs_and_nothing_else(src, dst, port, allowed):
    pods = {**project_pods(), **OUTSIDERS}
    verdict = admits(network_policies(), pods[src], pods[dst], port)
    assert verdict is allowed, f"{src} -> {dst}:{port} should be {'admitted' if allowed else 'refused'}"


def test_every_pod_of_the_project_is_isolated():
    # default-deny ingress covers every pod of both namespaces: a stray pod next to it gets nothing
    policies = network_policies()
    for name, pod in project_pods().items():
        stray = Pod(pod.namespace, {"app": "debug"})
        assert not admits(policies, stray, pod, 1), f"{name} is not isolated"
    for ns in (RAY_NAMESPACE, "mlflow"):
        assert any(p["metadata"]["namespace"] == ns and p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
                   for p in policies), f"no default-deny ingress policy in {ns}"


def test_the_declared_ports_are_reachable_by_their_clients():
    # every port a container declares is admitted from the client that uses it
    pods, policies = project_pods(), network_policies()
    clients = {"mlflow": "train-worker", "postgres": "mlflow", "minio": "mlflow"}
    for name, pod in pods.items():
        client = clients.get(name) or (name.replace("-head", "-worker") if name.endswith("-head") else None)
        for port_name, port in pod.ports.items():
            if name == "minio" and port_name == "console":
                continue  # port-forward only
            assert client and admits(policies, pods[client], pod, port), f"{name}:{port_name} ({port}) unreachable"


def test_the_kuberay_manifests_run_in_the_policies_namespace():
    namespace = only(K8S / "namespace.yaml")["metadata"]["name"]
    assert namespace == RAY_NAMESPACE
    assert {d["metadata"].get("namespace") for _, d in kuberay_docs()} == {namespace}
    ray_side = {p["metadata"]["namespace"] for p in network_policies()} - {"mlflow"}
    assert ray_side == {namespace}


# ---------------------------------------------------------------- access control: no secret in a file

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL|AUTH_KEY|PRIVATE_KEY", re.I)
REFERENCE = r"(?:\$\(\w+\)|\$\{\w+(?::?[-?][^}]*)?\}|\$\$?\{?\w+\}?)"  # $(VAR) k8s, ${VAR} compose, $VAR / $$VAR shell
URI_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:([^@\s/'\"]+)@", re.I)
KEY_LITERALS = [re.compile(p) for p in (
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",            # AWS access key id
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"(?<!sha256:)\b[0-9a-f]{32,}\b",            # a long hex string (not an image digest): a password, a token
    r"(?<![\w/.-])[A-Za-z0-9+/]{40,}={0,2}(?![\w/.-])",  # a long base64 string
)]


def text_secrets(text: str) -> list[str]:
    """Literal credentials in a file's text: a password inside a URI (one that is not a reference
    to a variable), a key of a well-known shape, a long random-looking string."""
    found = [f"password in URI {m.group(0)!r}" for m in URI_CREDENTIALS.finditer(text)
             if not re.fullmatch(REFERENCE, m.group(1))]
    return found + [f"key-like literal {m.group(0)[:12]}..." for rx in KEY_LITERALS for m in rx.finditer(text)]


def _walk(node: Any):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from _walk(child)


def _secret_references(arg: str) -> list[str]:
    names = re.findall(r"\$\$?[({]?(\w+)", arg)
    return [n for n in names if SECRET_NAME.search(n)]


def manifest_secrets(doc: Any) -> list[str]:
    """In parsed Kubernetes / compose YAML: a secret-named env var with a literal value (it must
    come from a Secret, secretKeyRef, or from .env, ${VAR}), and a secret expanded into a command
    line (`ps` shows every process's arguments; the environment is private to its user)."""
    found = []
    for node in _walk(doc):
        if not isinstance(node, dict):
            continue
        env = node.get("env")
        for entry in env if isinstance(env, list) else []:
            literal = "value" in entry and not re.fullmatch(REFERENCE, str(entry["value"]))
            if SECRET_NAME.search(entry.get("name", "")) and literal:
                found.append(f"env {entry['name']} has a literal value")
        if isinstance(node.get("environment"), dict):  # docker compose
            for name, value in node["environment"].items():
                if SECRET_NAME.search(name) and value is not None and not re.fullmatch(REFERENCE, str(value)):
                    found.append(f"environment {name} has a literal value")
        for key in ("command", "args", "entrypoint"):
            args = node.get(key)
            for arg in [args] if isinstance(args, str) else args if isinstance(args, list) else []:
                found += [f"{key} expands {name} on a command line" for name in _secret_references(str(arg))]
    return found


def scanned_files() -> list[Path]:
    files = [p for top in (ROOT / "cluster", ROOT / "infra") for p in top.rglob("*") if p.is_file()]
    suffixes = (".yaml", ".yml", ".ini", ".example", ".env")
    return sorted(p for p in files if p.suffix in suffixes or p.name.startswith("Dockerfile"))


def test_no_manifest_or_compose_file_holds_a_secret():
    files = scanned_files()
    names = {"docker-compose.yaml", "mlflow.yaml", "rayservice.yaml", "aws.yaml", ".env.example", "basic_auth.ini"}
    assert names <= {p.name for p in files}
    problems = []
    for path in files:
        text = path.read_text()
        problems += [f"{path.relative_to(ROOT)}: {s}" for s in text_secrets(text)]
        if path.suffix in (".yaml", ".yml"):
            for doc in load_all(path):
                problems += [f"{path.relative_to(ROOT)}: {s}" for s in manifest_secrets(doc)]
    launcher = only(LAUNCHER)
    for line in launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"]:
        problems += [f"aws.yaml: {name} on a command line" for name in _secret_references(line)]
    assert not problems, "\n".join(problems)


def test_the_env_template_leaves_every_secret_empty():
    values = dict(line.split("=", 1) for line in (MLFLOW / ".env.example").read_text().splitlines()
                  if line.strip() and not line.lstrip().startswith("#"))
    secrets = {k: v for k, v in values.items() if SECRET_NAME.search(k)}
    assert secrets.keys() >= {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MLFLOW_ADMIN_PASSWORD",
                              "MLFLOW_FLASK_SECRET_KEY"}
    assert all(v.strip() == "" for v in secrets.values()), secrets  # compose's ${VAR:?} refuses to start until filled
    assert ".env" in (MLFLOW / ".gitignore").read_text().split()


@pytest.mark.parametrize("bad", [
    {"env": [{"name": "POSTGRES_PASSWORD", "value": "hunter2hunter2"}]},
    {"environment": {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI"}},
    {"args": ["--backend-store-uri", "postgresql://mlflow:$(POSTGRES_PASSWORD)@postgres:5432/mlflow"]},
    {"command": ["exec mlflow server --backend-store-uri postgresql://mlflow:$${POSTGRES_PASSWORD}@postgres/mlflow"]},
    {"command": 'mc alias set local http://minio:9000 "$$MINIO_ROOT_USER" "$$MINIO_ROOT_PASSWORD"'},
])
def test_the_secret_scan_catches_a_secret_in_a_manifest(bad):
    assert manifest_secrets({"spec": {"containers": [bad]}})


@pytest.mark.parametrize("bad", [
    "url: postgresql://mlflow:s3cr3t-pw@postgres:5432/mlflow",
    "key: AKIAIOSFODNN7EXAMPLE",
    "token: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "-----BEGIN OPENSSH PRIVATE KEY-----",
])
def test_the_secret_scan_catches_a_literal_key(bad):
    assert text_secrets(bad)
    assert not text_secrets("http://$(MINIO_ROOT_USER):$(MINIO_ROOT_PASSWORD)@minio:9000 and http://${U}:${P}@minio:9000")


# ---------------------------------------------------------------- access control: MLflow authentication

def mlflow_auth_config(path: Path, monkeypatch) -> Any:
    """MLflow's own reader of the auth app's config file. Loaded from its file: importing the
    package mlflow.server.auth would need the `auth` extra (Flask-WTF), which only the server image has."""
    import mlflow

    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(path))
    for var in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    source = Path(mlflow.__file__).parent / "server" / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("_mlflow_auth_config", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.read_auth_config()


def test_the_mlflow_server_image_enables_authentication(monkeypatch):
    from urllib.parse import urlsplit

    dockerfile = MLFLOW / "Dockerfile"
    ins = instructions(dockerfile)
    run = " ".join(r for w, r in ins if w == "RUN")
    assert re.search(r'"mlflow\[auth\]==3\.17\.2"', run), "basic-auth needs the auth extra (Flask-WTF)"
    env = dict(r.split("=", 1) for w, r in ins if w == "ENV")
    copies = [shlex.split(r) for w, r in ins if w == "COPY"]
    assert any(c[-2] == "basic_auth.ini" and c[-1] == env["MLFLOW_AUTH_CONFIG_PATH"] for c in copies)
    config = mlflow_auth_config(MLFLOW / "basic_auth.ini", monkeypatch)
    assert config.admin_password is None  # from MLFLOW_AUTH_ADMIN_PASSWORD (a Secret), never the file
    assert urlsplit(config.database_uri).scheme.startswith("postgresql")
    assert urlsplit(config.database_uri).password is None  # libpq takes PGPASSWORD from the environment
    assert config.default_permission in {"READ", "USE", "EDIT", "MANAGE", "DENY", "NO_PERMISSIONS"}


def _secret_env(container: dict) -> dict[str, tuple[str, str]]:
    return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


def test_the_mlflow_server_requires_a_login_on_kubernetes():
    from urllib.parse import urlsplit

    deployment = next(d for d in load_all(MLFLOW / "k8s" / "mlflow.yaml") if d["kind"] == "Deployment")
    [c] = deployment["spec"]["template"]["spec"]["containers"]
    params = parse_mlflow_server(c["args"])
    assert params["app_name"] == "basic-auth"
    assert urlsplit(params["backend_store_uri"]).password is None
    secrets = _secret_env(c)
    assert {"PGPASSWORD", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
            "AWS_SECRET_ACCESS_KEY"} <= set(secrets)


def test_the_mlflow_server_requires_a_login_in_docker_compose():
    from urllib.parse import urlsplit

    mlflow = only(MLFLOW / "docker-compose.yaml")["services"]["mlflow"]
    argv = mlflow["command"]
    assert "entrypoint" not in mlflow and ("ENTRYPOINT", '["mlflow"]') in instructions(MLFLOW / "Dockerfile")
    assert argv[0] == "server"
    params = parse_mlflow_server(argv[1:])
    assert params["app_name"] == "basic-auth"
    assert urlsplit(params["backend_store_uri"]).password is None
    env = mlflow["environment"]
    for name in ("PGPASSWORD", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD",
                 "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", env[name]), (name, env[name])  # from .env, never written here


def test_the_ray_pods_log_in_to_mlflow():
    for path, doc in kuberay_docs():
        cluster = ray_cluster_spec(doc)
        for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
            for c in group["template"]["spec"]["containers"]:
                if "MLFLOW_TRACKING_URI" not in _env(c):
                    continue
                secrets = _secret_env(c)
                assert secrets.get("MLFLOW_TRACKING_USERNAME", ("",))[0] == "srgan-mlflow", path.name
                assert secrets.get("MLFLOW_TRACKING_PASSWORD", ("",))[0] == "srgan-mlflow", path.name
