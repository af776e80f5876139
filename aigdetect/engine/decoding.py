"""The decode side of a scoring run, which can start before the model exists.

Importing torch and building a CLIP model take seconds on one core. A scan starts its decode
workers first, and ``Decoding.ahead_of`` lets a thread gather their answers while the model loads,
so that the first batches are ready when it is. Plain Python: nothing here imports torch, so the
workers are forked before it is loaded.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..data.decoder_messages import own_native_stderr
from .pool import OrderedPool
from .reading import FileReader, ReadItem, ReadOptions

T = TypeVar("T")

PREFETCH_BATCHES = 2
"""Batches the decode workers may run ahead of the one being assembled; with the task each worker
holds, this bounds what waits in memory (two batches of 12-megapixel JPEG bytes with ``gpu_decode``)."""
POOL_DEPTH = 2
"""Tasks queued on one decode worker, so that it never waits for its next file."""
AHEAD_BYTES = 64 << 20
"""Decoded pixels gathered at most while the model loads (445 centre crops of 224 pixels)."""
MAX_AHEAD = 4096
"""Answers gathered at most while the model loads, whatever their size (each also holds a record)."""


def decode_window(batch_size: int, workers: int) -> int:
    """Files handed to the workers but not yet taken, at most."""
    return batch_size * PREFETCH_BATCHES + workers * POOL_DEPTH


def ahead_limit(reading: ReadOptions, window: int) -> int:
    """Answers ``ahead_of`` may gather: ``AHEAD_BYTES`` of uint8 crops, never fewer than ``window``
    (what the pool holds anyway); JPEG bytes for the device decoder are whole files, so they keep to
    ``window``."""
    if reading.jpeg_bytes:
        return window
    crop = 3 * reading.size * reading.size * (1 + reading.crops)
    return max(window, min(MAX_AHEAD, AHEAD_BYTES // crop))


class Decoding:
    """Answers ``(record, payload)`` for ``items`` in order, from ``workers`` processes (``OrderedPool``:
    a crashing decoder costs its file alone). Each worker owns its descriptor 2, so what native
    decoders write there goes into the file's row, not onto the terminal (``decoder_messages``).

    Args:
        items: the files; read lazily, as the workers need more.
        reading: what a worker reads of each file.
        workers: decode processes; 0 decodes in this process, as it is iterated.
        window: files handed out but not yet taken, at most (``decode_window``).
    """

    def __init__(self, items: Iterable[ReadItem], reading: ReadOptions, *, workers: int, window: int) -> None:
        self.reading = reading
        self.workers = workers
        pool = OrderedPool(FileReader(reading), workers=workers, window=window, depth=POOL_DEPTH, setup=own_native_stderr)
        self._answers = pool.map(enumerate(items))
        self._ready: deque[Any] = deque()
        self._done = False
        self._error: Exception | None = None

    def ahead_of(self, work: Callable[[], T], limit: int) -> T:
        """Run ``work`` in this thread while another gathers up to ``limit`` answers.

        The first answer is taken here, so the workers are forked by this thread before the other
        starts: a fork copies locks held by other threads (an import in progress, say) in their
        held state. With no workers, ``work`` just runs.
        """
        if self.workers == 0 or not self._take():
            return work()
        stop = threading.Event()
        gatherer = threading.Thread(target=self._gather, args=(stop, limit), name="aigdetect-decode-ahead", daemon=True)
        gatherer.start()
        try:
            return work()
        finally:
            stop.set()
            gatherer.join()

    def _take(self) -> bool:
        """Move the pool's next answer to the ready queue; False once there is none. A failing pool
        (a ``WorkerError``) is re-raised where the answers are read, after those before it."""
        if self._done:
            return False
        try:
            self._ready.append(next(self._answers))
            return True
        except StopIteration:
            self._done = True
        except Exception as exc:
            self._error = exc
            self._done = True
        return False

    def _gather(self, stop: threading.Event, limit: int) -> None:
        while not stop.is_set() and len(self._ready) < limit and self._take():
            pass

    def __iter__(self) -> Iterator[Any]:
        while self._ready:
            yield self._ready.popleft()
        if self._error is not None:
            raise self._error
        if not self._done:
            yield from self._answers

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        self._ready.clear()
        self._answers.close()
