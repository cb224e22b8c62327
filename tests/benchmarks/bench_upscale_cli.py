"""Wall time of the whole `srgan upscale` command on one 128x128 image, the shipped models' int8
engines exported beforehand (`srgan export --shipped`, as the images and the install do), against
`python -c "import torch"` alone, in one run; and which heavy packages the command imported.

    python tests/benchmarks/bench_upscale_cli.py [--rounds 7] [--models auto default]

The input is the top-left 128x128 of BSD100's first LR image (PNG). Each round runs every
command once, in turn, so a busy host slows them alike; the table gives the median per command.
The first run of each model (OpenVINO compiling the graph into its cache) is not counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BSD100 = ROOT.parent / "shared" / "data" / "benchmarks" / "BSD100" / "LR_bicubic" / "X4"
SRGAN = [sys.executable, "-m", "pipelines.cli"]
MODULES = """import json, runpy, sys
out, sys.argv = sys.argv[1], ["srgan", *sys.argv[2:]]
try:
    runpy.run_module("pipelines.cli", run_name="__main__")
except SystemExit:
    pass
json.dump(sorted({m.split(".")[0] for m in sys.modules}), open(out, "w"))
"""


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def imported(argv: list[str], out: Path) -> set[str]:
    """Top-level packages `srgan ARGV` imports (run once more, in a process that records them)."""
    subprocess.run([sys.executable, "-c", MODULES, str(out), *argv], check=True, capture_output=True)
    return set(json.loads(out.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", nargs="+", default=["auto", "default"])
    args = parser.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "in.png"
        Image.open(sorted(BSD100.glob("*.png"))[0]).convert("RGB").crop((0, 0, 128, 128)).save(image)
        commands = {f"srgan upscale --model {m}": ["upscale", str(image), "-o", f"{tmp}/out", "--overwrite",
                                                     "--model", m] for m in args.models}
        for argv in commands.values():  # exports nothing where the engines are there; compiles into the cache
            subprocess.run([*SRGAN, *argv], check=True, capture_output=True)
        runs: dict[str, list[float]] = {name: [] for name in [*commands, "python -c 'import torch'"]}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                runs[name].append(seconds([*SRGAN, *argv]))
            runs["python -c 'import torch'"].append(seconds([sys.executable, "-c", "import torch"]))
        heavy = {name: sorted(imported(argv, Path(tmp) / "modules.json") & {"torch", "scipy", "ray", "mlflow"})
                 for name, argv in commands.items()}
    print(f"median wall time over {args.rounds} rounds, one 128x128 PNG:")
    for name, times in runs.items():
        extra = f"  imports of torch/scipy/ray/mlflow: {heavy[name] or 'none'}" if name in heavy else ""
        print(f"  {name:<32} {statistics.median(times):6.2f} s  (min {min(times):.2f}){extra}")


if __name__ == "__main__":
    main()
