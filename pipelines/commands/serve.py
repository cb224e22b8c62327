"""`srgan serve`: start the Ray Serve application of pipelines/serve.py on this machine."""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.commands import ENGINE_HELP, ENGINE_NAMES, MODEL_HELP
from pipelines.settings import ServeSettings

if TYPE_CHECKING:
    from ray.serve import Application

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the upscaling endpoint (Ray Serve)",
                       description="Serve the generator over HTTP; binds to 127.0.0.1 unless told otherwise.")
    p.add_argument("--model", default="default",
                   help=MODEL_HELP)
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

    target = _from_config(args.config) if args.config else app({"model": args.model, "tile": args.tile,
                                                                 "engine": args.engine})
    ensure_ray()
    serve.start(http_options={"host": args.host, "port": args.port})
    log.info("serving on http://%s:%d/ (Ctrl-C to stop)", args.host, args.port)
    serve.run(target, name="srgan", route_prefix="/", blocking=True)
    return 0


def _from_config(path: Path) -> Application:
    """The first application of a Serve config file, with its deployment settings applied."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from pipelines.serve import Upscaler

    spec = ServeDeploySchema.parse_obj(yaml.safe_load(path.read_text())).applications[0]
    options: dict[str, Any] = {}
    for d in spec.deployments:
        options |= d.dict(exclude_unset=True, exclude={"name"})
    return Upscaler.options(**options).bind(asdict(ServeSettings.from_args(spec.args)))
