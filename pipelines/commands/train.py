"""`srgan train`: the command line of a training job (pipelines/train.py on Ray Train, or
pipelines/train_local.py in this process with `--local`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.settings import REGISTERED_MODEL, TrainJob
from srgan.config import PHASES, PRESETS, load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train SRResNet, then SRGAN, with Ray Train (DDP) and MLflow",
                       description="Distributed training on Ray Train (or --local: one process, no Ray). "
                                   "Re-running the same command resumes.")
    p.add_argument("--phase", required=True, choices=PHASES, help="srresnet (pixel loss) or srgan (GAN)")
    p.add_argument("--data", required=True, help="shard folder or URI written by `srgan prepare` "
                                                 "(with --local, also a folder of HR images)")
    p.add_argument("--val", help="folder of HR images (or a benchmark set) to validate on, e.g. Set5/HR")
    p.add_argument("--preset", default="paper", choices=list(PRESETS), help="config preset (default: %(default)s)")
    p.add_argument("--config", type=Path, help="YAML file of config overrides")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set srresnet.steps=5000 (repeatable)")
    p.add_argument("--local", action="store_true",
                   help="train in this process without Ray or MLflow: checkpoints and metrics.jsonl in --storage/NAME")
    p.add_argument("--workers", type=int, default=1, help="training workers (default: %(default)s)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--cpus-per-worker", type=float,
                   help="CPUs each worker reserves (default: the cluster's CPUs less one, shared)")
    p.add_argument("--storage", default="runs", help="checkpoint root, local path or URI (default: %(default)s)")
    p.add_argument("--name", help="run name; the same name resumes (default: the phase)")
    p.add_argument("--init", help="checkpoint folder, URI or models:/NAME@ALIAS to start the generator from "
                                  "(required for --phase srgan)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.add_argument("--experiment", default="srgan", help="MLflow experiment (default: %(default)s)")
    p.add_argument("--register-as", default=REGISTERED_MODEL,
                   help="registered model name; the phase is its alias (default: %(default)s)")
    p.add_argument("--max-failures", type=int, default=3,
                   help="worker-group restarts allowed after a failure (default: %(default)s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    job = TrainJob(phase=args.phase, data=args.data, cfg=load_config(args.preset, args.config, args.set),
                   workers=args.workers, gpu=args.gpu, cpus_per_worker=args.cpus_per_worker, storage=args.storage,
                   name=args.name, init=args.init, val=args.val, tracking_uri=args.tracking_uri,
                   experiment=args.experiment, registered_model=args.register_as, max_failures=args.max_failures)
    if args.local:
        from pipelines.train_local import run_local

        m = run_local(job)
        print(f"done: phase {job.phase}, step {m['step']}; checkpoint {m['checkpoint']}")
        return 0
    from pipelines.train import run_training

    result = run_training(job)
    m = result.metrics or {}
    print(f"done: phase {job.phase}, step {m.get('step')}; MLflow run {m.get('mlflow_run_id')} "
          f"(model {m.get('model_uri', '-')}); checkpoint {result.checkpoint.path if result.checkpoint else '-'}")
    return 0
