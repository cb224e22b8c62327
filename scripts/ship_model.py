"""Copy a checkpoint's generator into the package as a shipped model: weights as float16.

    python scripts/ship_model.py CHECKPOINT srgan/assets/model

float16 halves the file (1.5 M parameters: 3.1 MB); the loader copies the weights into the
float32 model, and the PSNR it gives is the float32 checkpoint's to within 0.01 dB (measured with
`srgan evaluate` on Set5, Set14 and BSD100 before shipping).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from srgan.checkpoint import CONFIG, G_WEIGHTS, read_meta


def main(src: Path, dst: Path) -> None:
    meta = read_meta(src)  # refuses a folder that is not a checkpoint
    weights = {k: v.half() if v.is_floating_point() else v for k, v in load_file(src / G_WEIGHTS).items()}
    dst.mkdir(parents=True, exist_ok=True)
    save_file(weights, dst / G_WEIGHTS)
    (dst / CONFIG).write_text(json.dumps({**meta, "weights_dtype": "float16"}, indent=2) + "\n")
    print(f"{src} -> {dst} ({(dst / G_WEIGHTS).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
