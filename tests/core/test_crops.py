"""Tile geometry and training crops (core, no Ray)."""

import numpy as np
import pytest

from srgan.bicubic import imresize
from srgan.condition import Condition
from srgan.config import DegradeConfig, DegradeRound
from srgan.crops import CropStream, Prefetched, degrade_crops, random_crops, tile_pairs, tile_starts
from srgan.degradations import jpeg, to_uint8
from srgan.metrics import psnr


def test_tile_starts_cover_and_end_flush():
    assert tile_starts(300, 128, 128) == [0, 128, 172]
    assert tile_starts(256, 128, 128) == [0, 128]
    assert tile_starts(128, 128, 64) == [0]
    assert tile_starts(100, 128, 128) == []


def test_tile_pairs_are_aligned_cuts_of_one_lr(rng):
    hr = rng.integers(0, 256, (301, 259, 3), dtype=np.uint8)
    lr_full = imresize(hr[:300, :256], 0.25)
    tiles = list(tile_pairs(hr, 4, 128, 128))
    assert [(y, x) for y, x, _, _ in tiles] == [(y, x) for y in (0, 128, 172) for x in (0, 128)]
    for y, x, h, l in tiles:
        assert h.shape == (128, 128, 3) and l.shape == (32, 32, 3)
        assert (h == hr[y:y + 128, x:x + 128]).all()
        assert (l == lr_full[y // 4:y // 4 + 32, x // 4:x // 4 + 32]).all()


def test_tile_pairs_reject_misaligned_tile():
    with pytest.raises(ValueError, match="multiples of scale"):
        list(tile_pairs(np.zeros((64, 64, 3), np.uint8), 4, 30, 32))


def smooth_image(rng, size):
    """A smooth random image, so a bicubic downscale of a crop matches the crop of the downscale."""
    small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
    return imresize(small, 16)


def test_random_crops_stay_aligned_through_flips_and_rotations(rng):
    hr = np.stack([smooth_image(rng, 128) for _ in range(16)])
    lr = np.stack([imresize(h, 0.25) for h in hr])
    out_hr, out_lr = random_crops(hr, lr, 96, rng)
    assert out_hr.shape == (16, 96, 96, 3) and out_lr.shape == (16, 24, 24, 3)
    for h, l in zip(out_hr, out_lr):
        assert psnr(imresize(h, 0.25), l, 2) > 35  # misaligned, unflipped or unrotated pairs fall far below


def test_random_crops_differ_between_draws(rng):
    hr = np.stack([smooth_image(rng, 128) for _ in range(8)])
    lr = np.stack([imresize(h, 0.25) for h in hr])
    a, _ = random_crops(hr, lr, 64, np.random.default_rng(1))
    b, _ = random_crops(hr, lr, 64, np.random.default_rng(2))
    assert not (a == b).all()


def tiles(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_crop_stream_resumes_where_it_stopped():
    blocks = [tiles(7, 0), tiles(5, 1), tiles(6, 2)]  # 18 tiles: 4 batches of 4 an epoch, across block borders
    stream = CropStream(lambda: blocks, 4, 16, seed=1)
    straight = [b for _, b in zip(range(10), stream)]
    assert all(lr.shape == (4, 4, 4, 3) and hr.shape == (4, 16, 16, 3) and cond.shape == (4, 0)
               for lr, hr, cond in straight)
    first = CropStream(lambda: blocks, 4, 16, seed=1)
    it = iter(first)
    for _ in range(6):  # into the second epoch
        next(it)
    assert first.position == (1, 2)
    rest = [b for _, b in zip(range(4), CropStream(lambda: blocks, 4, 16, seed=1, position=first.position))]
    for (lr, hr, _), (lr2, hr2, _) in zip(straight[6:], rest):
        assert np.array_equal(lr, lr2) and np.array_equal(hr, hr2)
    assert not np.array_equal(straight[0][1], straight[4][1])  # each epoch draws fresh crops


def test_crop_stream_without_a_full_batch_is_an_error():
    with pytest.raises(ValueError, match="no batch of 8 crops"):
        next(iter(CropStream(lambda: [tiles(3)], 8, 16)))


def test_prefetched_stream_yields_the_plain_streams_batches_and_positions():
    blocks = [tiles(7, 0), tiles(5, 1), tiles(6, 2)]
    plain = CropStream(lambda: blocks, 4, 16, seed=1, position=(0, 1))
    expected = []
    for batch in plain:
        expected.append((batch, plain.position))
        if len(expected) == 9:
            break
    ahead = Prefetched(CropStream(lambda: blocks, 4, 16, seed=1, position=(0, 1)), depth=3)
    assert ahead.position == (0, 1)
    for ((lr, hr, _), position), got in zip(expected, ahead):
        assert np.array_equal(got[0], lr) and np.array_equal(got[1], hr)
        assert ahead.position == position  # the consumer's position, though the thread is ahead of it
    resumed = Prefetched(CropStream(lambda: blocks, 4, 16, seed=1, position=expected[4][1]))
    assert np.array_equal(next(iter(resumed))[1], expected[5][0][1])


def test_prefetched_stream_raises_the_streams_error():
    with pytest.raises(ValueError, match="no batch of 8 crops"):
        next(iter(Prefetched(CropStream(lambda: [tiles(3)], 8, 16))))


def test_degraded_stream_is_seeded_by_crop_and_resumes_with_the_same_degradations_and_conditions():
    rng = np.random.default_rng(0)
    hr = np.stack([smooth_image(rng, 64) for _ in range(6)])
    blocks = [(hr, np.stack([imresize(h, 0.25) for h in hr]))]
    cfg = DegradeConfig(enabled=True, clean_prob=0.3, photo_prob=0.5)

    def batches(position=(0, 0), n=5):
        return [b for _, b in zip(range(n), CropStream(lambda: blocks, 4, 32, seed=2, position=position,
                                                       degrade=cfg, conditions=("jpeg", "noise")))]
    first, again = batches(), batches()
    clean = [b for b, _ in zip(CropStream(lambda: blocks, 4, 32, seed=2), range(5))]
    for (lr, hr_, cond), (lr2, hr2, cond2), (clean_lr, clean_hr, _) in zip(first, again, clean):
        assert np.array_equal(lr, lr2) and np.array_equal(hr_, hr2)  # the same draws twice
        assert np.array_equal(cond, cond2) and cond.shape == (4, 2) and cond.dtype == np.float32  # and conditions
        assert np.array_equal(hr_, clean_hr) and lr.shape == clean_lr.shape == (4, 8, 8, 3)
    kept = [(np.array_equal(a, b), c) for (lr, _, cond), (clean_lr, _, _) in zip(first, clean)
            for a, b, c in zip(lr, clean_lr, cond)]
    assert 0 < sum(k for k, _ in kept) < len(kept)  # clean_prob leaves some crops clean, degrades the others
    assert all(not c.any() for k, c in kept if k)  # a crop left clean has the clean condition
    assert any(c.any() for k, c in kept if not k)  # the degraded ones tell their JPEG and noise
    resumed = batches((3, 0), 2)  # one batch an epoch (6 tiles): resumed at the fourth
    for a, b in zip(first[3:], resumed, strict=True):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[2], b[2])  # the same LR and conditions


def test_photo_crops_are_their_clean_lr_through_the_photo_round():
    rng = np.random.default_rng(1)
    hr = np.stack([smooth_image(rng, 64) for _ in range(4)])
    lr = np.stack([imresize(h, 0.25) for h in hr])
    only_jpeg = DegradeRound(blur_prob=0.0, resize_probs=(0.0, 0.0, 1.0), noise_prob=0.0, jpeg_quality=(50, 50))
    out, conditions = degrade_crops(hr, lr, DegradeConfig(enabled=True, photo_prob=1.0, photo=only_jpeg), [0])
    assert all(np.array_equal(o, to_uint8(jpeg(l.astype(np.float32) / 255, 50))) for o, l in zip(out, lr))
    assert conditions == [Condition(jpeg_quality=50)] * 4
