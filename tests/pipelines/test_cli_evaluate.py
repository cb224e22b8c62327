"""`srgan evaluate` end to end on the shipped Set5 and on a folder without LR files."""

import json
import shutil
import subprocess
import sys
from contextlib import nullcontext

import numpy as np
import pytest

from helpers import conditioned_checkpoint
from pipelines.cli import main
from srgan import ASSETS, DIAL_PAIRS, SHIPPED_MODELS
from srgan.benchmarks import load_pair, set_layout
from srgan.checkpoint import load_generator, save_checkpoint
from srgan.config import load_config
from srgan.degradations import parse_spec
from srgan.images import load_image, save_image
from srgan.inference import upscale
from srgan.metrics import psnr, rgb_to_y
from srgan.models import Generator
from srgan.niqe import niqe


def _run(tmp_path, *args: str) -> dict:
    assert main(["evaluate", *args, "--json", str(tmp_path / "r.json")]) == 0
    return json.loads((tmp_path / "r.json").read_text())


def test_bicubic_on_shipped_set5(tmp_path, capsys):
    result = _run(tmp_path, "--model", "bicubic")["Set5"]
    assert result["images"] == 5
    assert abs(result["psnr"] - 28.42) <= 0.02
    # all four metrics by default, HR's no-reference ones beside them: bicubic blurs (NIQE worse
    # than HR's) and lays no grid pattern
    assert set(result) == {"psnr", "ssim", "niqe", "artifacts", "blocks", "hr_niqe", "hr_artifacts", "hr_blocks",
                           "images"}
    assert result["niqe"] > result["hr_niqe"] + 1
    assert result["artifacts"] < 0.1 and result["hr_artifacts"] < 0.5
    out = capsys.readouterr().out
    assert "Set5" in out and "NIQE" in out and "HR artifacts" in out


def test_hr_as_the_model_gives_its_no_reference_metrics(tmp_path):
    hr = _run(tmp_path, "--model", "hr", "--per-image")["Set5"]
    assert set(hr) == {"niqe", "artifacts", "blocks", "images", "per_image"}
    bicubic = _run(tmp_path, "--model", "bicubic", "--metrics", "niqe,artifacts")["Set5"]
    assert hr["niqe"] == pytest.approx(bicubic["hr_niqe"]) and hr["artifacts"] == pytest.approx(bicubic["hr_artifacts"])
    # the protocol: HR cropped to 4 x LR, then 4 px from each border
    files, lr_dir = set_layout(ASSETS / "benchmarks" / "Set5", 4)
    _, baby, _ = load_pair(files[0], lr_dir, 4)
    assert hr["per_image"]["baby"]["niqe"] == pytest.approx(niqe(baby, crop_border=4))


def test_degraded_sets_are_the_same_bytes_every_run_and_named_in_the_results(tmp_path, capsys):
    runs = []
    for i in range(2):
        result = _run(tmp_path, "--model", "bicubic", "--degrade", "blur:1.5+jpeg:60", "--save-images",
                      str(tmp_path / f"run{i}"))["Set5"]
        runs.append({p.name: p.read_bytes() for p in sorted((tmp_path / f"run{i}" / "Set5" / "lr").glob("*.png"))})
    assert result["degrade"] == "blur:1.5+jpeg:60" and len(runs[0]) == 5 and runs[0] == runs[1]
    assert "LR degraded by blur:1.5+jpeg:60" in capsys.readouterr().out
    clean = _run(tmp_path, "--model", "bicubic")["Set5"]
    assert result["psnr"] < clean["psnr"] - 2 and result["blocks"] > clean["blocks"]
    realworld = _run(tmp_path, "--model", "bicubic", "--degrade", "realworld:0", "--metrics", "psnr")["Set5"]
    assert realworld["psnr"] < clean["psnr"] and realworld["degrade"] == "realworld:0"
    assert main(["evaluate", "--model", "bicubic", "--degrade", "jpeg:low"]) == 2
    assert "--degrade jpeg:low" in capsys.readouterr().err


def test_metrics_subset(tmp_path, capsys):
    result = _run(tmp_path, "--model", "bicubic", "--metrics", "psnr")["Set5"]
    assert set(result) == {"psnr", "images"}
    assert "SSIM" not in capsys.readouterr().out


def test_shipped_generator_is_the_default_and_reaches_srcnn_level(tmp_path):
    assert main(["evaluate", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["Set5"]["psnr"] >= 30.5  # SRCNN: 30.48 dB


def _detail(rgb: np.ndarray) -> float:
    """Mean absolute Laplacian of Y: how much fine detail an image has."""
    y = rgb_to_y(rgb).astype(np.float64)
    return float(np.abs(4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]).mean())


def test_shipped_srgan_trades_psnr_for_natural_detail_without_a_checkerboard(tmp_path):
    result, baseline = _run(tmp_path, "--model", "srgan")["Set5"], _run(tmp_path, "--model", "default")["Set5"]
    # measured: PSNR 28.69 (SRResNet 31.29), NIQE 4.72 (SRResNet 7.95, HR 5.51), artifacts 0.17 (HR 0.13)
    assert 28.0 < result["psnr"] < baseline["psnr"] - 1
    assert result["niqe"] < min(baseline["niqe"], result["hr_niqe"])  # as natural as the photos, by NIQE
    assert result["artifacts"] <= 1.5 * result["hr_artifacts"]  # the SRGAN shipped before: 2.05, 16x HR
    srresnet, srgan = load_generator(SHIPPED_MODELS["default"]), load_generator(SHIPPED_MODELS["srgan"])
    files, lr_dir = set_layout(ASSETS / "benchmarks" / "Set5", 4)
    for path in files:
        lr, _, _ = load_pair(path, lr_dir, 4)
        # the GAN's fine detail is at least twice the PSNR model's (measured 2.2-3.0x; HR 1.5-5.4x)
        assert _detail(upscale(srgan, lr)) > 2 * _detail(upscale(srresnet, lr)), path.name


def test_realworld_holds_up_on_jpeg_inputs_where_the_clean_pair_does_not(tmp_path):
    """On Set5 saved as JPEG q40 (measured, PSNR / blocks, HR 1.03): bicubic 26.34 / 1.50, default
    26.07 / 1.96, srgan 25.17 / 1.74, realworld 26.83 / 1.36; on clean LR realworld 30.44 against
    default's 31.29."""
    scores = {m: _run(tmp_path, "--model", m, "--degrade", "jpeg:40", "--metrics", "psnr,blocks")["Set5"]
              for m in ("bicubic", "default", "realworld")}
    assert scores["realworld"]["psnr"] > max(scores["default"]["psnr"], scores["bicubic"]["psnr"]) + 0.4
    # fewer of the JPEG's blocks carried over than by bicubic, far fewer than by the clean-trained model
    assert scores["realworld"]["blocks"] < min(scores["bicubic"]["blocks"], scores["default"]["blocks"] - 0.4)
    clean = {m: _run(tmp_path, "--model", m, "--metrics", "psnr")["Set5"]["psnr"] for m in ("default", "realworld")}
    assert clean["realworld"] > clean["default"] - 1


def test_checkpoint_on_folder_without_lr(tmp_path, benchmarks):
    (tmp_path / "mine" / "HR").mkdir(parents=True)
    for name in ("bird.png", "head.png"):
        shutil.copy(benchmarks / "Set5" / "HR" / name, tmp_path / "mine" / "HR" / name)
    cfg = load_config("tiny")
    save_checkpoint(tmp_path / "ck", Generator(cfg.model), cfg)
    rc = main(["evaluate", "--model", str(tmp_path / "ck"), "--data", str(tmp_path), "--sets", "mine",
               "--json", str(tmp_path / "r.json"), "--per-image", "--save-images", str(tmp_path / "out")])
    assert rc == 0
    result = json.loads((tmp_path / "r.json").read_text())["mine"]
    assert result["images"] == 2 and set(result["per_image"]) == {"bird", "head"}
    assert (tmp_path / "out" / "mine" / "bird.png").is_file()


def test_image_too_small_for_niqe_is_named(tmp_path, benchmarks, capsys):
    (tmp_path / "small" / "HR").mkdir(parents=True)
    shutil.copy(benchmarks / "Set5" / "HR" / "bird.png", tmp_path / "small" / "HR" / "bird.png")
    save_image(tmp_path / "small" / "HR" / "tiny.png", load_image(benchmarks / "Set5" / "HR" / "bird.png")[:100, :100])
    assert main(["evaluate", "--model", "bicubic", "--data", str(tmp_path), "--sets", "small"]) == 2
    err = capsys.readouterr().err
    assert "tiny.png" in err and "at least one 96x96 block" in err and "Traceback" not in err
    assert main(["evaluate", "--model", "bicubic", "--data", str(tmp_path), "--sets", "small",
                 "--metrics", "psnr,artifacts"]) == 0


def test_evaluate_metrics_import_neither_ray_nor_mlflow_nor_torchvision():
    # the command's module and the metrics it runs, in a fresh process (pipelines.cli's own imports
    # are the CLI's concern)
    code = ("import argparse, sys; from pipelines.commands import evaluate; "
            "sub = argparse.ArgumentParser().add_subparsers(); evaluate.add_parser(sub); "
            "args = sub.choices['evaluate'].parse_args(['--model', 'bicubic']); assert args.run(args) == 0; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow', 'torchvision'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("args, message", [
    (["--model", "/no/such/ckpt"], "no such checkpoint"),
    (["--sets", "Set99"], "Set99: no such folder"),
    (["--metrics", "psnr,lpips"], "unknown metric(s) lpips; choose from psnr, ssim, niqe, artifacts, blocks"),
    (["--model", "hr", "--metrics", "ssim"], "only niqe, artifacts, blocks apply"),
])
def test_bad_arguments_are_one_line_errors(args, message, capsys):
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("pair", DIAL_PAIRS, ids="-".join)
def test_alpha_dials_from_the_psnr_model_to_the_gan(tmp_path, pair):
    psnr_model, gan = pair
    psnr = {}
    for name, args in (("psnr", ["--model", psnr_model]), ("gan", ["--model", gan]),
                       ("0", ["--model", psnr_model, "--alpha", "0"]), ("0.5", ["--model", gan, "--alpha", "0.5"]),
                       ("1", ["--model", gan, "--alpha", "1"])):
        assert main(["evaluate", *args, "--metrics", "psnr", "--json", str(tmp_path / f"{name}.json")]) == 0
        psnr[name] = json.loads((tmp_path / f"{name}.json").read_text())["Set5"]["psnr"]
    assert psnr["0"] == psnr["psnr"] and psnr["1"] == psnr["gan"]  # the ends are the shipped models exactly
    assert psnr["psnr"] > psnr["0.5"] > psnr["gan"]  # monotone: the GAN stayed in its PSNR model's basin


@pytest.mark.parametrize("args, message", [
    (["--alpha", "1.5"], "not a number from 0 to 1"),
    (["--model", "bicubic", "--alpha", "0.5"], "does not apply to --model bicubic"),
])
def test_bad_alpha_is_an_error(args, message, capsys):
    with pytest.raises(SystemExit) if "1.5" in args else nullcontext():
        assert main(["evaluate", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_conditioned_model_is_evaluated_on_the_condition_read_from_each_file_or_the_true_one(tmp_path):
    from srgan.benchmarks import load_input
    from srgan.condition import Condition, read_condition
    from srgan.images import decode_image

    g, folder = conditioned_checkpoint(tmp_path / "conditioned")
    args = ["--model", str(folder), "--degrade", "jpeg:40", "--metrics", "psnr", "--per-image"]
    read, true = (_run(tmp_path, *args, "--condition", mode)["Set5"] for mode in ("read", "true"))
    assert read["condition"] == "read" and true["condition"] == "true"  # the JSON names which
    assert {m["condition"] for m in true["per_image"].values()} == {str(Condition(40))}
    files, lr_dir = set_layout(ASSETS / "benchmarks" / "Set5", 4)
    test = load_input(files[0], lr_dir, 4, parse_spec("jpeg:40"))
    told = read_condition(decode_image(test.file))  # read from the JPEG's own tables
    assert read["per_image"][files[0].stem]["condition"] == str(told) and told.jpeg_quality == pytest.approx(40, abs=5)
    assert read["per_image"][files[0].stem]["psnr"] == pytest.approx(psnr(upscale(g, test.lr, told), test.hr, 4))
