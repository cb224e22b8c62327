"""`srgan evaluate`: PSNR/SSIM with the paper's protocol, NIQE, grid artifacts and JPEG blocks over
benchmark sets, on their own LR or on LR degraded by a named spec (`--degrade`)."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import UsageError
from pipelines.commands import ALPHA_HELP, ENGINE_HELP, MODEL_HELP, alpha, check_alpha
from pipelines.settings import ENGINE_NAMES
from srgan import ASSETS
from srgan.metrics import METRIC_NAMES, NO_REFERENCE

if TYPE_CHECKING:
    from srgan.benchmarks import Upscaler

# result key -> (column title, format); hr_* are the HR images' own no-reference scores
COLUMNS = {"psnr": ("PSNR (dB)", ".2f"), "ssim": ("SSIM", ".4f"), "niqe": ("NIQE", ".2f"),
           "artifacts": ("artifacts", ".2f"), "blocks": ("blocks", ".2f"), "hr_niqe": ("HR NIQE", ".2f"),
           "hr_artifacts": ("HR artifacts", ".2f"), "hr_blocks": ("HR blocks", ".2f")}
DEGRADE_HELP = ("degrade each set's LR before upscaling, by a named seeded spec (the same bytes every run): "
                "jpeg:Q (Pillow JPEG, quality 1-100), noise:SIGMA (Gaussian, grey levels), blur:SIGMA "
                "(Gaussian, LR px), joined by + and applied in order (blur:1.5+jpeg:60); or realworld:SEED, "
                "one draw per HR image of the realworld preset's Real-ESRGAN rounds (not its photo round)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="PSNR/SSIM/NIQE/grid artifacts/JPEG blocks on Set5/Set14/BSD100 or any "
                                        "folder of HR images",
                       description="PSNR and SSIM on the Y channel and NIQE, `scale` pixels cropped from each "
                                   "border; grid artifacts and JPEG blocks (srgan.artifacts) on the whole image. "
                                   "No-reference metrics are given for the HR images too (HR NIQE, ...).")
    p.add_argument("--model", default="default",
                   help="'bicubic', 'hr' (the HR images themselves: NIQE and artifacts only), " + MODEL_HELP)
    p.add_argument("--data", type=Path, default=ASSETS / "benchmarks",
                   help="folder holding <Set>/HR and optionally <Set>/LR_bicubic/X<scale> "
                        "(default: the Set5 shipped with the project)")
    p.add_argument("--sets", default="Set5", help="comma-separated set names under --data (default: %(default)s)")
    p.add_argument("--metrics", help=f"comma-separated, from {','.join(METRIC_NAMES)} "
                                     f"(default: all; {','.join(NO_REFERENCE)} with --model hr)")
    p.add_argument("--scale", type=int, default=4, help="upscaling factor (default: %(default)s)")
    p.add_argument("--json", type=Path, help="write the results as JSON to this file")
    p.add_argument("--degrade", metavar="SPEC", help=DEGRADE_HELP)
    p.add_argument("--save-images", type=Path, help="write SR images to DIR/<Set>/<name>.png (and with --degrade "
                                                    "the degraded LR to DIR/<Set>/lr/<name>.png)")
    p.add_argument("--per-image", action="store_true", help="print and save per-image figures")
    p.add_argument("--alpha", type=alpha, metavar="A", help=ALPHA_HELP)
    p.add_argument("--engine", default="eager", choices=ENGINE_NAMES, metavar="ENGINE", help=ENGINE_HELP)
    p.add_argument("--condition", choices=["read", "true"], default="read",
                   help="what a conditioned model (auto) is told of each LR: 'read' from the LR file as a user's "
                        "upload would be (srgan.condition), or the degradation spec's 'true' values, the model's "
                        "ceiling (default: %(default)s; blind models ignore it)")
    p.set_defaults(run=run)


def _metrics(args: argparse.Namespace) -> list[str]:
    if args.metrics is None:
        return list(NO_REFERENCE if args.model == "hr" else METRIC_NAMES)
    from srgan.benchmarks import check_metrics

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    try:
        check_metrics(metrics, reference=args.model != "hr")
    except ValueError as e:
        raise UsageError(f"--metrics {args.metrics}: {e}") from None
    return metrics


def _upscaler(args: argparse.Namespace) -> tuple[Upscaler | None, str, bool]:
    """The upscaler to evaluate, how the table names it, and whether it is told each LR's condition."""
    check_alpha(args.model, args.alpha)
    if args.model == "hr":
        return None, "hr", False
    if args.model == "bicubic":
        from srgan.benchmarks import bicubic_upscaler

        return bicubic_upscaler(args.scale), "bicubic", False
    from pipelines.model_uri import load_engine  # torch and the model code only when a model runs
    from srgan.inference import upscale

    engine = load_engine(args.model, args.engine, alpha=args.alpha)
    if engine.scale != args.scale:
        raise UsageError(f"--model {args.model} upscales x{engine.scale}, but --scale is {args.scale}")
    model = args.model if args.alpha is None else f"alpha {args.alpha:g}"
    if engine.conditions:
        model += f", condition {args.condition}"
    return partial(upscale, engine), f"{model} (engine {engine.name})", bool(engine.conditions)


def run(args: argparse.Namespace) -> int:
    from srgan.benchmarks import evaluate_set  # SciPy's metrics and degradations: only when evaluating
    from srgan.degradations import parse_spec

    metrics = _metrics(args)
    spec = parse_spec(args.degrade) if args.degrade else None
    upscaler, label, conditioned = _upscaler(args)
    if spec is not None:
        label += f", LR degraded by {spec.text}"
    results = {}
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        save_dir = args.save_images / name if args.save_images else None
        results[name] = evaluate_set(upscaler, args.data / name, args.scale, save_dir, metrics, spec,
                                     args.condition if conditioned else None)
        if spec is not None:
            results[name]["degrade"] = spec.text
        if conditioned:
            results[name]["condition"] = args.condition
    print(format_table(results, label, args.per_image))
    if args.json:
        if not args.per_image:
            results = {k: {m: v for m, v in r.items() if m != "per_image"} for k, r in results.items()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def format_table(results: dict, model: str, per_image: bool) -> str:
    keys = [k for k in COLUMNS if k in next(iter(results.values()), {})]
    widths = [max(len(COLUMNS[k][0]) + 2, 9) for k in keys]

    def row(label: str, images: str, values: dict) -> str:
        cells = "".join(f"{values[k]:>{w}{COLUMNS[k][1]}}" for k, w in zip(keys, widths))
        return f"{label:<14}{images:>7}{cells}"

    header = "".join(f"{COLUMNS[k][0]:>{w}}" for k, w in zip(keys, widths))
    lines = [f"model: {model}", f"{'set':<14}{'images':>7}{header}"]
    for name, r in results.items():
        lines.append(row(name, str(r["images"]), r))
        if per_image:
            lines += [row(f"  {img}", "", m) for img, m in r["per_image"].items()]
    return "\n".join(lines)
