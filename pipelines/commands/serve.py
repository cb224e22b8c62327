"""`srgan serve`: start the Ray Serve application of pipelines/serve.py on this machine."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.commands import ENGINE_HELP, MODEL_HELP
from pipelines.settings import ENGINE_NAMES, ServeSettings

if TYPE_CHECKING:
    from ray.serve import Application

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the upscaling endpoint (Ray Serve)",
                       description="Serve the generator over HTTP; binds to 127.0.0.1 unless told otherwise.")
    p.add_argument("--model", default=ServeSettings.model, help=MODEL_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--config", type=Path, help="a Serve config YAML (as `serve deploy` takes); its first "
                                                "application's args and deployment settings are used")
    p.add_argument("--tile", type=int, default=ServeSettings.tile, help="LR tile side (default: %(default)s)")
    p.add_argument("--engine", default=ServeSettings.engine, choices=ENGINE_NAMES, metavar="ENGINE", help=ENGINE_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ray import serve

    from pipelines.cluster import ensure_ray
    from pipelines.serve import app

    if args.config:
        target, http = _from_config(args.config)
    else:
        target, http = app({"model": args.model, "tile": args.tile, "engine": args.engine}), {}
    ensure_ray()
    # The proxy's own timeout is a backstop behind the app's 504 (it answers 408 in plain text).
    serve.start(http_options={**http, "host": args.host, "port": args.port})
    log.info("serving on http://%s:%d/ (Ctrl-C to stop)", args.host, args.port)
    serve.run(target, name="srgan", route_prefix="/", blocking=True)
    return 0


def _from_config(path: Path) -> tuple[Application, dict[str, Any]]:
    """The first application of a Serve config file with each deployment's settings applied (by
    name), and the file's http_options other than host and port (the flags decide those)."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from pipelines.serve import build

    raw = yaml.safe_load(path.read_text())
    spec = ServeDeploySchema.parse_obj(raw).applications[0]
    options = {d.name: d.dict(exclude_unset=True, exclude={"name"}) for d in spec.deployments}
    http = {k: v for k, v in (raw.get("http_options") or {}).items() if k not in ("host", "port")}
    return build(ServeSettings.from_args(spec.args), options), http
