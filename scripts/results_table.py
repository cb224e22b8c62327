"""A Markdown table of `srgan evaluate --json` results: one row per file, PSNR / SSIM / NIQE /
grid artifacts / blocks per set, and the HR images' own NIQE, artifacts and blocks as the last row.

    python scripts/results_table.py runs/pd/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FORMATS = {"psnr": ".2f", "ssim": ".4f", "niqe": ".2f", "artifacts": ".2f", "blocks": ".2f"}
NO_REFERENCE = ("niqe", "artifacts", "blocks")


def main(paths: list[Path]) -> None:
    results = {p.stem: json.loads(p.read_text()) for p in paths}
    sets = list(next(iter(results.values())))
    print("| | " + " | ".join(f"{s} PSNR / SSIM / NIQE / artifacts / blocks" for s in sets) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for name, r in results.items():
        cells = [" / ".join(format(r[s][m], f) if m in r[s] else "-" for m, f in FORMATS.items()) for s in sets]
        print(f"| {name} | " + " | ".join(cells) + " |")
    hr = next(iter(results.values()))
    if all("hr_niqe" in hr[s] for s in sets):
        cells = ["- / - / " + " / ".join(format(hr[s][f"hr_{m}"], FORMATS[m]) if f"hr_{m}" in hr[s] else "-"
                                         for m in NO_REFERENCE) for s in sets]
        print("| HR | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main([Path(p) for p in sys.argv[1:]])
