"""`srgan prepare` on a real local Ray cluster: every input accounted for, deterministic shards."""

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from helpers import DATA, bomb_png, encode
from pipelines import shards
from pipelines.cli import main
from pipelines.ingest import training_tiles, worker_batches
from pipelines.prepare import expand_inputs, run_prepare, split_of
from pipelines.settings import PrepareParams
from srgan.bicubic import imresize
from srgan.metrics import psnr

pytestmark = pytest.mark.ray



def plant_bad_files(folder):
    """One file per kind of bad input, and the reason `prepare` must give for each."""
    folder.mkdir()
    good = encode(Image.effect_noise((200, 150), 40).convert("RGB"))
    bomb = bomb_png(40000, 40000)
    files = {"zero.png": (b"", "empty"), "text.png": (b"just some text\n", "not_an_image"),
             "truncated.png": (good[: len(good) // 2], "corrupt"), "bomb.png": (bomb, "too_many_pixels"),
             "tiny.png": (encode(Image.new("RGB", (64, 64))), "too_small")}
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    os.symlink(folder / "gone.png", folder / "dangling.png")  # unreadable: its target does not exist
    return {str(folder / n): r for n, (_, r) in files.items()} | {str(folder / "dangling.png"): "unreadable"}


def read_back(out, manifest):
    tables = {s["path"]: pq.read_table(out / s["path"]) for s in manifest["shards"]}
    return tables


def test_training_corpus_every_input_accounted(ray_session, tmp_path):
    bad = plant_bad_files(tmp_path / "bad")
    listing = tmp_path / "bad.txt"
    listing.write_text("# planted bad files\n" + "\n".join(sorted(bad)) + "\n")
    t91, bsd = DATA / "train" / "T91", DATA / "train" / "BSD200"
    inputs = [f"file://{t91}", f"{bsd}/*.png", str(listing), str(tmp_path / "missing_folder")]
    out = tmp_path / "shards"
    manifest = run_prepare(inputs, str(out), PrepareParams(val_fraction=0.05))

    assert manifest["inputs_found"] == 291 + len(bad)
    assert manifest["images_processed"] + manifest["images_skipped"] == manifest["inputs_found"] + 1
    skipped = {s["uri"]: s["reason"] for s in manifest["skipped"]}
    assert skipped.pop(str(tmp_path / "missing_folder")) == "not_found"
    for path, reason in bad.items():
        assert skipped.pop(path) == reason, path
    assert all(uri.startswith(f"file://{t91}/") for uri in skipped)  # what is left is T91, too small
    assert set(skipped.values()) == {"too_small"} and len(skipped) == 7
    assert manifest["images_processed"] == 284

    tables = read_back(out, manifest)
    sources = {split: set() for split in shards.SPLITS}
    for entry in manifest["shards"]:
        table = tables[entry["path"]]
        assert table.num_rows == entry["rows"]
        assert table.schema.field("hr").type.byte_width == 128 * 128 * 3
        sources[entry["split"]] |= set(table.column("source").to_pylist())
    assert manifest["tiles"]["train"] + manifest["tiles"]["val"] == sum(t.num_rows for t in tables.values()) == 2903
    assert sources["train"] and sources["val"] and not sources["train"] & sources["val"]
    assert len(sources["train"] | sources["val"]) == 284
    assert all(split_of(s, 0.05) == "val" for s in sources["val"])


@pytest.fixture(scope="module")
def small_shards(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "shards"
    inputs = [str(DATA / "benchmarks" / "Set5" / "HR"), str(DATA / "benchmarks" / "Set14" / "HR")]
    manifest = run_prepare(inputs, str(out), PrepareParams(tile=96, stride=64, val_fraction=0.2, images_per_shard=4))
    return inputs, out, manifest


def test_rerun_gives_identical_shards(small_shards, tmp_path):
    inputs, _, first = small_shards
    again = run_prepare(inputs, str(tmp_path / "again"), PrepareParams(tile=96, stride=64, val_fraction=0.2,
                                                                      images_per_shard=4))
    assert again["content_hash"] == first["content_hash"]
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in first["shards"]]
    assert again["images_processed"] == 19


def test_training_tiles_come_in_a_seeded_order_and_workers_crop_them_fresh_each_epoch(small_shards):
    _, out, _ = small_shards
    ds = training_tiles(str(out), 64, seed=3)
    sources = [[b["hr"][:, :4, :4].tobytes() for b in ds.iter_batches(batch_size=None)] for _ in range(2)]
    assert sources[0] == sources[1] and len(sources[0]) > 1  # the same blocks in the same order, pass after pass
    stream = iter(worker_batches(ds.iterator(), 8, 64, seed=0, rank=0))
    first = next(stream)
    lr, hr, cond = first
    assert hr.shape == (8, 64, 64, 3) and lr.shape == (8, 16, 16, 3) and hr.dtype == np.uint8
    assert cond.shape == (8, 0)  # a blind model: no condition columns
    for h, l in zip(hr, lr):  # LR came from the whole image: compare away from the crop's border
        assert psnr(imresize(h, 0.25), l, 3) > 30
    again = next(iter(worker_batches(ds.iterator(), 8, 64, seed=0, rank=0)))
    assert np.array_equal(again[1], hr)  # the stream is a function of the seed, the rank and the data
    other_rank = next(iter(worker_batches(ds.iterator(), 8, 64, seed=0, rank=1)))
    assert not np.array_equal(other_rank[1], hr)
    epoch_two = next(iter(worker_batches(ds.iterator(), 8, 64, seed=0, rank=0, position=(1, 0))))
    assert not np.array_equal(epoch_two[1], hr)


def test_output_in_the_way_is_refused(small_shards, capsys):
    inputs, out, _ = small_shards
    assert main(["prepare", *inputs, "--out", str(out)]) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err


def test_overwrite_refuses_a_folder_that_is_not_shards(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("precious")
    assert main(["prepare", str(DATA / "benchmarks" / "Set5" / "HR"), "--out", str(tmp_path), "--overwrite"]) == 2
    assert "not a shard folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_nothing_usable_exits_nonzero(ray_session, tmp_path, capsys):
    bad = plant_bad_files(tmp_path / "bad")
    assert main(["prepare", str(tmp_path / "bad"), "--out", str(tmp_path / "out")]) == 1
    assert f"none of the {len(bad)} input files could be used" in capsys.readouterr().err


def test_incomplete_folder_is_refused_by_the_reader(small_shards, tmp_path):
    _, out, _ = small_shards
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part-00000.parquet").write_bytes((out / small_shards[2]["shards"][0]["path"]).read_bytes())
    with pytest.raises(shards.ShardError, match="did not finish"):
        training_tiles(str(tmp_path), 64)


def test_expand_inputs_forms(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("a/1.png", "a/b/2.png", "a/b/3.jpg"):
        (tmp_path / p).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("a/1.png\n\n# comment\n" + str(tmp_path / "a/b/3.jpg") + "\n")
    uris, bad = expand_inputs([str(tmp_path / "a"), f"{tmp_path}/a/**/*.png", str(tmp_path / "list.txt"),
                               f"file://{tmp_path}/a/b", f"file://{tmp_path}/a/**/*.jpg", f"{tmp_path}/none*.png"])
    a = str(tmp_path / "a")
    assert uris == [f"{a}/1.png", f"{a}/b/2.png", f"{a}/b/3.jpg",  # the folder, recursively
                    f"{a}/1.png", f"{a}/b/2.png",  # the glob
                    f"{a}/1.png", f"{a}/b/3.jpg",  # the list file, relative and absolute lines
                    f"file://{a}/b/2.png", f"file://{a}/b/3.jpg",  # a file:// folder
                    f"file://{a}/b/3.jpg"]  # a file:// glob
    assert [b["detail"] for b in bad] == ["no files match this pattern"]
