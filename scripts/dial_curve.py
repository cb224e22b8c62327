"""The perception-distortion dial drawn: PSNR against NIQE at each alpha of a shipped pair, one panel
per (degradation, set), beside a reference system's point (Real-ESRGAN x4plus).

    python scripts/dial_curve.py runs/dial-curve --reference runs/realesrgan/jpeg.json \\
        --pair auto --out docs/images/dial_auto.png

DIR holds <spec>/alpha-<a>.json, `srgan evaluate --alpha a --degrade spec --json` results
(scripts/dial_curve.sh writes them); --reference is scripts/realesrgan_reference.sh's --json
(spec -> set -> means). Up and to the left is better: more faithful, more natural. Each panel
also prints its points as a table row, so the picture's numbers are in the log.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from srgan import dial_pair

W, H, MARGIN = 420, 320, 56  # one panel, px; the margin holds the axes' labels
DIAL, REFERENCE, HR = (31, 119, 180), (214, 39, 40), (120, 120, 120)


def alphas(folder: Path) -> list[tuple[float, dict]]:
    """(alpha, the evaluate JSON) for each alpha-<a>.json in `folder`, by alpha."""
    found = [(float(p.stem.removeprefix("alpha-")), json.loads(p.read_text())) for p in folder.glob("alpha-*.json")]
    return sorted(found, key=lambda pair: pair[0])


def cell(means: dict) -> str:
    return " / ".join(f"{means[k]:.2f}" for k in ("psnr", "niqe", "artifacts", "blocks"))


def panel(title: str, dial: list[tuple[float, dict]], reference: dict | None, font) -> Image.Image:
    """One set under one spec: the dial's points joined in alpha order, the reference as a square,
    the HR images' NIQE as a dashed line."""
    points = [(r["niqe"], r["psnr"]) for _, r in dial] + ([(reference["niqe"], reference["psnr"])] if reference else [])
    hr_niqe = dial[0][1]["hr_niqe"]
    niqes, psnrs = [p[0] for p in points] + [hr_niqe], [p[1] for p in points]
    x0, x1 = min(niqes) - 0.3, max(niqes) + 0.3
    y0, y1 = min(psnrs) - 0.15, max(psnrs) + 0.15
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    left, top, right, bottom = MARGIN, 28, W - 12, H - 40

    def xy(niqe: float, psnr: float) -> tuple[float, float]:
        return (left + (niqe - x0) / (x1 - x0) * (right - left), bottom - (psnr - y0) / (y1 - y0) * (bottom - top))

    d.rectangle((left, top, right, bottom), outline="black")
    d.text((left, 6), title, fill="black", font=font)
    d.text(((left + right) / 2 - 50, H - 20), "NIQE (lower: more natural)", fill="black", font=font)
    d.text((4, (top + bottom) / 2 - 6), "PSNR", fill="black", font=font)
    for value, (a, b) in ((x0, (left, bottom + 4)), (x1, (right - 24, bottom + 4))):
        d.text((a, b), f"{value:.1f}", fill="black", font=font)
    for value, y in ((y0, bottom - 14), (y1, top + 2)):
        d.text((6, y), f"{value:.2f}", fill="black", font=font)
    hx = xy(hr_niqe, y0)[0]
    for y in range(top, bottom, 8):
        d.line((hx, y, hx, min(y + 4, bottom)), fill=HR)
    d.text((hx + 3, bottom - 14), "HR", fill=HR, font=font)
    line = [xy(r["niqe"], r["psnr"]) for _, r in dial]
    d.line(line, fill=DIAL, width=2)
    for (alpha, _), (x, y) in zip(dial, line):
        d.ellipse((x - 4, y - 4, x + 4, y + 4), fill=DIAL)
        d.text((x + 6, y - 6), f"{alpha:g}", fill=DIAL, font=font)
    if reference:
        x, y = xy(reference["niqe"], reference["psnr"])
        d.rectangle((x - 5, y - 5, x + 5, y + 5), fill=REFERENCE)
        d.text((x + 8, y - 6), "Real-ESRGAN", fill=REFERENCE, font=font)
    return img


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="<spec>/alpha-<a>.json results (scripts/dial_curve.sh)")
    p.add_argument("--reference", type=Path, help="scripts/realesrgan_reference.sh's --json")
    p.add_argument("--pair", default="auto", help="a model of the shipped pair dialled (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = p.parse_args()
    reference = json.loads(args.reference.read_text()) if args.reference else {}
    font = ImageFont.load_default(size=13)
    pair = " and ".join(dial_pair(args.pair) or (args.pair,))
    rows = []
    for spec_dir in sorted(d for d in args.folder.iterdir() if d.is_dir()):
        dial = alphas(spec_dir)
        sets = dial[0][1]  # set -> means, each naming the spec it was degraded by
        spec = next(iter(sets.values()))["degrade"]
        panels = []
        for set_name in sets:
            ref = reference.get(spec, {}).get(set_name)
            points = [(a, r[set_name]) for a, r in dial]
            panels.append(panel(f"{set_name}, {spec}: {pair}, alpha 0..1", points, ref, font))
            cells = [f"{a:g}: {cell(r)}" for a, r in points] + ([f"Real-ESRGAN: {cell(ref)}"] if ref else [])
            print(f"{spec} {set_name} (PSNR / NIQE / grid / blocks) " + " | ".join(cells))
        rows.append(panels)
    sheet = Image.new("RGB", (W * max(map(len, rows)), H * len(rows)), "white")
    for i, panels in enumerate(rows):
        for j, img in enumerate(panels):
            sheet.paste(img, (j * W, i * H))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
