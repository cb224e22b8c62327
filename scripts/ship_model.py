"""Copy a checkpoint's generator into the package as a shipped model: weights as float16.

    python scripts/ship_model.py CHECKPOINT [CHECKPOINT ...] srgan/assets/model

float16 halves the file (1.5 M parameters: 3.1 MB); the loader copies the weights into the
float32 model, and the PSNR it gives is the float32 checkpoint's to within 0.01 dB (measured with
`srgan evaluate` on Set5, Set14 and BSD100 before shipping). Several checkpoints of one run are
averaged weight by weight (stochastic weight averaging, Izmailov et al. 2018): for a GAN, whose
weights circle an optimum from checkpoint to checkpoint, the average keeps the texture and loses
the phase-to-phase noise (the shipped SRGAN: docs/results.md, "Photo-realism"). The config is the last one's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from srgan.checkpoint import CONFIG, G_WEIGHTS, read_meta


def main(sources: list[Path], dst: Path) -> None:
    meta = read_meta(sources[-1])  # refuses a folder that is not a checkpoint
    states = [load_file(src / G_WEIGHTS) for src in sources]
    if any(s.keys() != states[0].keys() for s in states):
        sys.exit("the checkpoints hold different generators")
    weights = {k: (sum(s[k].double() for s in states) / len(states)).half() if v.is_floating_point() else v
               for k, v in states[-1].items()}
    dst.mkdir(parents=True, exist_ok=True)
    save_file(weights, dst / G_WEIGHTS)
    averaged = {"averaged_steps": [read_meta(src)["step"] for src in sources]} if len(sources) > 1 else {}
    (dst / CONFIG).write_text(json.dumps({**meta, **averaged, "weights_dtype": "float16"}, indent=2) + "\n")
    print(f"{', '.join(map(str, sources))} -> {dst} ({(dst / G_WEIGHTS).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main([Path(p) for p in sys.argv[1:-1]], Path(sys.argv[-1]))
