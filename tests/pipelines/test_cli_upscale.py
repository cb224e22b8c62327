"""`srgan upscale`: files and folders, offline, existing outputs kept, bad files reported and the
run goes on, outputs written whole or not at all, colliding outputs refused before any work."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import conditioned_checkpoint
from pipelines.cli import main
from srgan.checkpoint import load_generator, save_checkpoint
from srgan.config import load_config
from srgan.images import Decoded, load_image
from srgan.inference import upscale_image
from srgan.models import Generator


@pytest.fixture
def checkpoint(tmp_path):
    cfg = load_config("tiny")
    torch.manual_seed(0)
    return str(save_checkpoint(tmp_path / "ck", Generator(cfg.model), cfg))


def test_folder_in_files_out(tmp_path, benchmarks, checkpoint, capsys):
    src = tmp_path / "in" / "sub"
    src.mkdir(parents=True)
    for name in ("bird.png", "head.png"):
        shutil.copy(benchmarks / "Set5" / "LR_bicubic" / "X4" / name, src / name)
    (src / "broken.png").write_bytes(b"not an image")
    rgba = tmp_path / "logo.png"
    Image.new("RGBA", (6, 5), (10, 20, 30, 40)).save(rgba)

    rc = main(["upscale", str(tmp_path / "in"), str(rgba), "-o", str(tmp_path / "out"), "--model", checkpoint,
               "--tile", "16", "--pad", "4", "--engine", "eager"])
    assert rc == 1  # one input failed, and is named
    captured = capsys.readouterr()
    assert "broken.png: not an image in a supported format" in captured.err
    assert "upscaled 3" in captured.out
    bird = load_image(tmp_path / "out" / "sub" / "bird.png")
    expected = upscale_image(load_generator(checkpoint), Decoded(load_image(src / "bird.png"), None, False), 16, 4)
    assert np.array_equal(bird, np.asarray(expected))
    logo = Image.open(tmp_path / "out" / "logo.png")
    assert logo.mode == "RGBA" and logo.size == (24, 20)


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, benchmarks, checkpoint, capsys):
    src = benchmarks / "Set5" / "LR_bicubic" / "X4" / "bird.png"
    out = tmp_path / "out"
    out.mkdir()
    (out / "bird.jpg").write_bytes(b"precious")
    args = ["upscale", str(src), "-o", str(out), "--model", checkpoint, "--format", "jpeg", "--engine", "eager"]
    assert main(args) == 0
    assert (out / "bird.jpg").read_bytes() == b"precious" and "kept 1 existing" in capsys.readouterr().out
    assert main([*args, "--overwrite"]) == 0
    assert Image.open(out / "bird.jpg").size == (288, 288)


def test_missing_input_is_an_error(tmp_path, checkpoint, capsys):
    assert main(["upscale", str(tmp_path / "nothing.png"), "-o", str(tmp_path), "--model", checkpoint]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_a_file_that_fails_in_any_way_is_recorded_and_the_run_goes_on(tmp_path, benchmarks, checkpoint, capsys):
    lr = benchmarks / "Set5" / "LR_bicubic" / "X4"
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(lr / "bird.png", src / "sub" / "bird.png")
    shutil.copy(lr / "head.png", src / "head.png")
    Image.new("RGB", (4200, 2)).save(src / "wide.png")  # x4 is over webp's 16383 px
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where the output folder should be")  # an OSError, not an ImageError

    rc = main(["upscale", str(src), "-o", str(out), "--model", checkpoint, "--tile", "16", "--pad", "4",
               "--format", "webp"])
    captured = capsys.readouterr()
    assert rc == 1 and "upscaled 1" in captured.out and "failed 2" in captured.out
    assert "sub/bird.png" in captured.err and "wide.png: a 16800x8 image is over the webp limit" in captured.err
    assert Image.open(out / "head.webp").size == (Image.open(lr / "head.png").width * 4,
                                                  Image.open(lr / "head.png").height * 4)
    assert sorted(p.name for p in out.iterdir()) == ["head.webp", "sub"]  # no partial file, no temp file left


def test_inputs_that_would_write_the_same_output_are_refused_before_any_work(tmp_path, checkpoint, capsys):
    for name in ("a.jpg", "a.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    rc = main(["upscale", str(tmp_path / "a.jpg"), str(tmp_path / "a.png"), "-o", str(tmp_path / "out"),
               "--model", checkpoint])
    assert rc == 2
    err = capsys.readouterr().err
    assert "would write the same output" in err and "a.jpg" in err and "a.png" in err
    assert not (tmp_path / "out").exists()


def test_a_model_fetched_from_a_uri_leaves_no_copy_behind(tmp_path, benchmarks, checkpoint):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    bird = benchmarks / "Set5" / "LR_bicubic" / "X4" / "bird.png"
    subprocess.run([sys.executable, "-m", "pipelines.cli", "upscale", str(bird), "-o", str(tmp_path / "out"),
                    "--model", f"file://{checkpoint}", "--engine", "eager"],
                   env={**os.environ, "TMPDIR": str(scratch)}, check=True, capture_output=True)
    assert (tmp_path / "out" / "bird.png").is_file()
    assert not list(scratch.glob("srgan-model-*"))  # the downloaded copy went with the process


def test_a_conditioned_model_is_told_what_each_file_says_or_what_the_flags_set(tmp_path, benchmarks, checkpoint,
                                                                              capsys):
    from srgan.condition import Condition, read_condition
    from srgan.images import decode_image, read_bytes

    g, folder = conditioned_checkpoint(tmp_path / "conditioned")
    folder = str(folder)
    src = tmp_path / "bird.jpg"
    Image.open(benchmarks / "Set5" / "LR_bicubic" / "X4" / "bird.png").save(src, quality=50)
    decoded = decode_image(read_bytes(src))
    flags = ["--model", folder, "--tile", "16", "--pad", "4", "--engine", "eager"]

    def expected(condition):
        return np.asarray(upscale_image(g, decoded, 16, 4, condition=condition))
    assert main(["upscale", str(src), "-o", str(tmp_path / "read"), *flags]) == 0
    assert np.array_equal(load_image(tmp_path / "read" / "bird.png"), expected(read_condition(decoded)))
    assert main(["upscale", str(src), "-o", str(tmp_path / "set"), *flags, "--jpeg-quality", "none",
                 "--noise", "4"]) == 0
    assert np.array_equal(load_image(tmp_path / "set" / "bird.png"), expected(Condition(None, 4.0)))
    capsys.readouterr()
    assert main(["upscale", str(src), "-o", str(tmp_path / "bad"), *flags, "--jpeg-quality", "0"]) == 2
    assert "jpeg" in capsys.readouterr().err
    assert main(["upscale", str(src), "-o", str(tmp_path / "blind"), "--model", checkpoint, "--noise", "3"]) == 2
    assert "blind" in capsys.readouterr().err
