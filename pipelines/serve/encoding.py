"""The response's encoding, streamed: Pillow's encoder in a thread of its own hands chunks to the
event loop, so an answer is never held whole; and glibc told to give freed image memory back."""

import asyncio
import contextlib
import ctypes
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from PIL import Image

from srgan.images import write_image

CHUNK = 1 << 20  # bytes per streamed piece of the response: bounds what the proxy holds per request


class _Pipe:
    """A write-only file for Pillow's encoder thread that hands ~CHUNK pieces to the event loop
    through a bounded queue: the encoder waits while the client is slow, so the response is
    never held whole, and it stops (raises) once the reader is gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        self.loop, self.queue, self.buf, self.reader_gone = loop, queue, bytearray(), False

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            self.put(bytes(self.buf))
            self.buf.clear()

    def put(self, item: Any) -> None:
        if self.reader_gone:
            raise BrokenPipeError("the client went away")
        asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop).result()


_END = object()


def _encode_into(pipe: _Pipe, img: Image.Image, fmt: str, quality: int) -> None:
    try:
        write_image(pipe, img, fmt, quality)
        pipe.flush()
        pipe.put(_END)
    except BaseException as e:
        with contextlib.suppress(BrokenPipeError):
            pipe.put(e)  # to the reader, which raises it; nobody to tell if it is gone


async def encoded_chunks(img: Image.Image, fmt: str, quality: int, on_done: Callable[[], None]
                         ) -> AsyncIterator[bytes]:
    """The encoding of `img`, produced by a thread of its own (a slow client holds that thread, not
    one of the shared executor's) and yielded as it comes; `on_done()` runs when it ends, however
    it ends (callers also tie it to the generator's collection: a stream never started has no
    `finally` to run)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=4)
    pipe = _Pipe(loop, queue)
    threading.Thread(target=_encode_into, args=(pipe, img, fmt, quality), daemon=True, name="encode").start()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        pipe.reader_gone = True
        while not queue.empty():  # unblock an encoder waiting to put, so that it sees reader_gone
            queue.get_nowait()
        on_done()


def give_freed_memory_back() -> None:
    """Make glibc return freed image buffers to the system. By default it serves large blocks from
    its heaps once a large mmapped block has been freed (its mmap threshold climbs to 32 MB) and
    keeps up to 8 heaps a core for a threaded process; freed canvases then stay resident, and the
    Ingress's RSS rose 28% in a 10-minute soak though nothing leaked. A fixed 1 MiB threshold
    (buffers above it are mmapped and unmapped when freed) and 2 heaps keep it flat. No-op where
    the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold, m_arena_max = -3, -8  # glibc's mallopt parameters (malloc.h)
    libc.mallopt(m_mmap_threshold, 1 << 20)
    libc.mallopt(m_arena_max, 2)

