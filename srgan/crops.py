"""Aligned (HR, LR) training tiles from whole images, random training crops from tiles, the
stream of crop batches every training runner draws (`CropStream`, with real-photo degradations
when the config asks), and that stream drawn ahead on a thread (`Prefetched`).

Geometry: HR is first cropped to a multiple of `scale` (top-left kept) and LR is made from the
whole HR image, so an HR tile at (y, x) of side T lines up exactly with the LR tile at
(y/scale, x/scale) of side T/scale. Tiles step by `stride`; the last row and column are placed
flush with the border so every pixel is covered.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from srgan.bicubic import imresize
from srgan.condition import Condition, condition_vectors
from srgan.config import DegradeConfig
from srgan.degradations import degrade, photo_round


def crop_to_multiple(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop (H, W, ...) to the largest multiple of `scale` on each side, top-left kept."""
    return img[: img.shape[0] - img.shape[0] % scale, : img.shape[1] - img.shape[1] % scale]


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles covering [0, length): every `stride`, plus one flush with the end."""
    if length < tile:
        return []
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_pairs(hr: np.ndarray, scale: int, tile: int, stride: int
               ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield (y, x, hr_tile, lr_tile) covering an image.

    Args:
        hr: uint8 (H, W, 3); H and W at least `tile`.
        tile, stride: HR tile side and step, both multiples of `scale`.

    Yields:
        HR offsets y, x and uint8 tiles (tile, tile, 3) and (tile/scale, tile/scale, 3).
    """
    if tile % scale or stride % scale:
        raise ValueError(f"tile ({tile}) and stride ({stride}) must be multiples of scale ({scale})")
    hr = crop_to_multiple(hr, scale)
    lr = imresize(hr, 1 / scale)  # from the whole image: no seams at tile borders
    t = tile // scale
    for y in tile_starts(hr.shape[0], tile, stride):
        for x in tile_starts(hr.shape[1], tile, stride):
            yield y, x, hr[y:y + tile, x:x + tile], lr[y // scale:y // scale + t, x // scale:x // scale + t]


def random_crops(hr: np.ndarray, lr: np.ndarray, hr_crop: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Aligned random crops with a random flip and 90-degree rotation per pair.

    Args:
        hr: uint8 (N, T, T, 3) tiles; lr: uint8 (N, T/s, T/s, 3), the aligned LR tiles.
        hr_crop: HR crop side, a multiple of s and at most T.

    Returns:
        uint8 (N, hr_crop, hr_crop, 3) and (N, hr_crop/s, hr_crop/s, 3), contiguous.
    """
    scale = hr.shape[1] // lr.shape[1]
    lc = hr_crop // scale
    if hr_crop % scale or lc > lr.shape[1]:
        raise ValueError(f"crop {hr_crop} must be a multiple of {scale} and fit the {hr.shape[1]} px tiles")
    out_hr = np.empty((len(hr), hr_crop, hr_crop, 3), np.uint8)
    out_lr = np.empty((len(lr), lc, lc, 3), np.uint8)
    ys = rng.integers(0, lr.shape[1] - lc + 1, len(hr))
    xs = rng.integers(0, lr.shape[2] - lc + 1, len(hr))
    rots, flips = rng.integers(0, 4, len(hr)), rng.random(len(hr)) < 0.5
    for i, (y, x, k, flip) in enumerate(zip(ys, xs, rots, flips)):
        h = hr[i, y * scale:(y + lc) * scale, x * scale:(x + lc) * scale]
        l = lr[i, y:y + lc, x:x + lc]
        if flip:
            h, l = h[:, ::-1], l[:, ::-1]
        out_hr[i], out_lr[i] = np.rot90(h, k), np.rot90(l, k)
    return out_hr, out_lr


def degrade_crops(hr: np.ndarray, lr: np.ndarray, cfg: DegradeConfig, key: list[int]
                  ) -> tuple[np.ndarray, list[Condition]]:
    """LR crops for `hr` through the real-photo pipeline (srgan.degradations.degrade): crop i is
    drawn with an RNG seeded by (*key, i), kept as its clean `lr` with probability `cfg.clean_prob`,
    else made from that `lr` by one round of `cfg.photo` with probability `cfg.photo_prob`.

    Args:
        hr: uint8 (N, H, W, 3) crops; lr: uint8 (N, H/s, W/s, 3), their clean (bicubic) LR.

    Returns:
        uint8 (N, H/s, W/s, 3), a new array, and each crop's condition from its draws.
    """
    out, scale, conditions = lr.copy(), hr.shape[1] // lr.shape[1], []
    for i in range(len(hr)):
        rng = np.random.default_rng([*key, i])
        condition = Condition()
        if rng.random() >= cfg.clean_prob:
            draw = photo_round(lr[i], cfg.photo, rng) if rng.random() < cfg.photo_prob else degrade(
                hr[i], cfg, scale, rng)
            out[i], condition = draw
        conditions.append(condition)
    return out, conditions


class CropStream:
    """Batches of random aligned training crops from blocks of tiles, epoch after epoch.

    Each epoch walks the blocks `blocks()` gives, in their order, shuffles each block's tiles and
    crops them (`random_crops`) with an RNG seeded by (seed, rank, epoch, block index), and with
    `degrade` enabled makes each crop's LR by the real-photo pipeline seeded by those and the
    crop's index (`degrade_crops`), each crop's condition the draws that made it (clean otherwise):
    the stream is a function of those and of the blocks alone.
    `position` (epoch, batches drawn in it) goes into a checkpoint; a stream started at a saved
    position goes on with the batch an uninterrupted run would have drawn next, which is what
    makes a resumed run end with the same weights.

    Args:
        blocks: called once per epoch; yields (hr, lr) uint8 tiles (N, T, T, 3), (N, T/s, T/s, 3).
        batch_size, hr_crop: crops per batch and their HR side.
        seed, rank: the run's seed and this worker's rank (each rank draws its own crops).
        position: where to start, (epoch, batches already drawn in it).
        degrade: the real-photo degradations; None or not enabled: the tiles' own (bicubic) LR.
        conditions: the condition names the model takes (srgan.condition.CONDITIONS), in its order.

    Yields:
        (lr, hr, condition) uint8 (batch_size, hr_crop/s, hr_crop/s, 3), (batch_size, hr_crop, hr_crop, 3)
        and float32 (batch_size, len(conditions)), the crops' condition vectors.
    """

    def __init__(self, blocks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], batch_size: int,
                 hr_crop: int, seed: int = 0, rank: int = 0, position: tuple[int, int] = (0, 0),
                 degrade: DegradeConfig | None = None, conditions: tuple[str, ...] = ()):
        self.blocks, self.batch_size, self.hr_crop, self.seed, self.rank = blocks, batch_size, hr_crop, seed, rank
        self.epoch, self.drawn = position
        self.degrade = degrade if degrade is not None and degrade.enabled else None
        self.conditions = conditions

    @property
    def position(self) -> tuple[int, int]:
        return self.epoch, self.drawn

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        while True:
            n = 0
            for n, batch in enumerate(self._epoch(self.epoch), start=1):
                if n > self.drawn:  # a resumed stream passes over what was trained on
                    self.drawn = n
                    yield batch
            if not n:
                raise ValueError(f"the training data gave no batch of {self.batch_size} crops")
            self.epoch, self.drawn = self.epoch + 1, 0

    def _epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        left = None  # (hr, lr, condition) crops carried over to the next block's batches
        for b, (hr, lr) in enumerate(self.blocks()):
            rng = np.random.default_rng([self.seed, self.rank, epoch, b])
            order = rng.permutation(len(hr))  # a block holds an image's tiles side by side: mix them
            hr, lr = random_crops(hr[order], lr[order], self.hr_crop, rng)
            conditions = [Condition()] * len(hr)
            if self.degrade is not None:
                lr, conditions = degrade_crops(hr, lr, self.degrade, [self.seed, self.rank, epoch, b])
            crops = (hr, lr, condition_vectors(conditions, self.conditions))
            if left is not None:
                crops = tuple(np.concatenate(pair) for pair in zip(left, crops))
            hr, lr, cond = crops
            full = len(hr) // self.batch_size * self.batch_size
            for i in range(0, full, self.batch_size):
                yield lr[i:i + self.batch_size], hr[i:i + self.batch_size], cond[i:i + self.batch_size]
            left = hr[full:], lr[full:], cond[full:]


class Prefetched:
    """A `CropStream` drawn `depth` batches ahead on a thread of its own, so that cropping and
    degrading overlap the training step (NumPy, SciPy's FFT and Pillow release the GIL for most of
    their work). The same batches in the same order; `position` is the stream's position after the
    last batch handed out, what a checkpoint must record (the thread is ahead of it)."""

    def __init__(self, stream: CropStream, depth: int = 2):
        self.stream, self.depth, self.position = stream, depth, stream.position

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        ready: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()

        def draw() -> None:
            try:
                for batch in self.stream:
                    item = (self.stream.position, batch)
                    while not stop.is_set():
                        try:
                            ready.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            pass
                    if stop.is_set():
                        return
            except BaseException as e:  # handed to the consumer, which raises it
                ready.put((None, e))

        threading.Thread(target=draw, daemon=True, name="crops").start()
        try:
            while True:
                position, batch = ready.get()
                if position is None:
                    raise batch
                self.position = position
                yield batch
        finally:
            stop.set()  # the consumer is done: the thread stops after the batch it is drawing
