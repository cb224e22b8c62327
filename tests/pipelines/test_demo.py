"""`srgan demo` end to end (shortened: a few fine-tuning steps) on the data shipped in the package."""

import pytest
from PIL import Image

from pipelines.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_demo_runs_the_whole_pipeline(ray_session, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "4"]) == 0
    assert f"outputs in {out}" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    for expected in ("**prepare**", "**train**", "| bicubic | 28.42 |", "answered 200 with a 288x288 image",
                     "shipped generator"):
        assert expected in report, expected
    assert Image.open(out / "comparison.png").size == (768, 256)
    assert Image.open(out / "bird_x4_from_endpoint.png").size == (288, 288)
    assert len(list((out / "sr").glob("*.png"))) == 5
    assert main(["demo", "--out", str(out), "--steps", "4"]) == 2  # an existing demo is kept ...
    assert "--overwrite" in capsys.readouterr().err
