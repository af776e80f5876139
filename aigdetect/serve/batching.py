"""Batching across requests: files from concurrent uploads wait in one bounded queue, and one
scoring thread takes them in batches that close at ``max_batch`` files or ``max_wait`` seconds.

A request's files stay together in one batch, so its reports come from one call. The queue counts
files, not requests: a request whose files do not fit is refused at once (429, with a
``Retry-After`` guessed from the last batch's time) rather than left to wait without bound. A
request whose client went away before its batch started is dropped unscored.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .refusals import Refused

Score = Callable[[list[str]], list[dict[str, Any]]]
"""Paths in, one report per path out (``inspect_files`` on the loaded detector)."""


@dataclass
class _Job:
    paths: Sequence[str]
    future: Future[list[dict[str, Any]]]


class BatchQueue:
    """The queue and its scoring thread.

    Args:
        score: scores one batch of paths; it runs in the scoring thread only.
        max_batch: files that close a batch (a single larger request is a batch of its own).
        max_wait_s: how long a batch waits for more files after its first one.
        max_queue: files waiting, at most.
        on_batch: told the size and seconds of every batch scored (metrics).
        on_start: run in the scoring thread before the first batch, and waited for here (its error
            is raised here): what ``score`` needs that must belong to the scoring thread, such as
            decode workers, which the kernel stops when the thread that forked them ends.
    """

    def __init__(self, score: Score, *, max_batch: int, max_wait_s: float, max_queue: int,
                 on_batch: Callable[[int, float], None] | None = None,
                 on_start: Callable[[], None] | None = None) -> None:  # fmt: skip
        self._score = score
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._waiting = 0
        self._closing = False
        self._batch_seconds = 1.0
        self._cond = threading.Condition()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(on_start,), name="aigdetect-serve-scorer", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    @property
    def waiting(self) -> int:
        """Files in the queue, not yet in a batch."""
        return self._waiting

    def submit(self, paths: Sequence[str]) -> Future[list[dict[str, Any]]]:
        """Queue one request's files; the future gets their reports, in order.

        Raises:
            Refused: 429 when the files do not fit in the queue now, 503 when it is closing.
        """
        future: Future[list[dict[str, Any]]] = Future()
        with self._cond:
            if self._closing:
                raise Refused(503, "stopping", "the service is stopping")
            if self._waiting + len(paths) > self.max_queue:
                batches_ahead = math.ceil((self._waiting + len(paths)) / self.max_batch)
                retry = max(1, math.ceil(batches_ahead * self._batch_seconds))
                raise Refused(429, "queue-full", f"the queue is full ({self._waiting} files waiting); retry in {retry} s",
                              {"Retry-After": str(retry)})  # fmt: skip
            self._jobs.append(_Job(paths, future))
            self._waiting += len(paths)
            self._cond.notify_all()
        return future

    def close(self) -> None:
        """Score what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()

    def _take(self) -> list[_Job] | None:
        """The next batch: wait for a first job, then up to ``max_wait_s`` for ``max_batch`` files."""
        with self._cond:
            while not self._jobs and not self._closing:
                self._cond.wait()
            if not self._jobs:
                return None
            deadline = time.monotonic() + self.max_wait_s
            while self._waiting < self.max_batch and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [self._jobs.popleft()]
            files = len(batch[0].paths)
            while self._jobs and files + len(self._jobs[0].paths) <= self.max_batch:
                files += len(self._jobs[0].paths)
                batch.append(self._jobs.popleft())
            self._waiting -= files
            return batch

    def _run(self, on_start: Callable[[], None] | None) -> None:
        try:
            if on_start is not None:
                on_start()
        except BaseException as exc:
            self._start_error = exc
            return
        finally:
            self._started.set()
        while (batch := self._take()) is not None:
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if not live:
                continue
            paths = [path for job in live for path in job.paths]
            started = time.monotonic()
            try:
                reports = self._score(paths)
            except Exception as exc:
                for job in live:
                    job.future.set_exception(exc)
                continue
            elapsed = time.monotonic() - started
            self._batch_seconds = elapsed
            if self._on_batch is not None:
                self._on_batch(len(paths), elapsed)
            offset = 0
            for job in live:
                job.future.set_result(reports[offset : offset + len(job.paths)])
                offset += len(job.paths)
