"""Scoring that survives a crashing decoder: a DataLoader worker killed by a signal costs one row.

``engine.infer.score_files`` decodes in worker processes. When one dies (a decoder segfault, the
OOM killer), the loader raises and its pending batches are lost. We then score the files that
were in flight again, in a single worker, halving the group on every crash until the file that
kills its worker is alone; it becomes an error row with reason ``crashed`` and the scan goes on.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass

import torch

from ..data.images import DEFAULT_MAX_PIXELS
from ..engine.infer import ImageRecord, Perturbation, score_files
from ..models.detector import Detector

PREFETCH_FACTOR = 2


@dataclass(frozen=True)
class ScoringOptions:
    device: torch.device
    batch_size: int
    workers: int
    crops: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS
    perturb: Perturbation | None = None


def is_worker_death(exc: BaseException) -> bool:
    """The RuntimeError a DataLoader raises when one of its worker processes died."""
    return isinstance(exc, RuntimeError) and "DataLoader worker" in str(exc)


@contextmanager
def _worker_deaths_not_raised_here() -> Iterator[None]:
    """Keep the DataLoader's SIGCHLD handler from raising while the caller handles a batch.

    That handler raises in whatever code the main thread runs, which could be half-way through
    writing rows. While it is held back, a death is still found by the loader itself, which
    checks its workers whenever it waits for data, so it surfaces inside ``score_files``.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL if previous is None else previous)


def _shift(records: list[ImageRecord], offset: int) -> list[ImageRecord]:
    for record in records:
        record.index += offset
    return records


def _isolate(detector: Detector, paths: Sequence[str], offset: int, options: ScoringOptions) -> list[ImageRecord]:
    """Score ``paths`` in one worker; on a crash, split them until the crashing file is alone."""
    try:
        batches = score_files(
            detector, paths, device=options.device, batch_size=options.batch_size, workers=1,
            crops=options.crops, perturb=options.perturb, max_pixels=options.max_pixels,
        )
        with closing(batches):
            records = [record for batch in batches for record in batch]
    except RuntimeError as exc:
        if not is_worker_death(exc):
            raise
        if len(paths) == 1:
            detail = f"the decoder crashed ({' '.join(str(exc).split())})"
            return [ImageRecord(index=offset, path=os.fsdecode(paths[0]), error_reason="crashed", error=detail)]
        middle = len(paths) // 2
        return _isolate(detector, paths[:middle], offset, options) + _isolate(
            detector, paths[middle:], offset + middle, options
        )
    return _shift(records, offset)


def score_resilient(detector: Detector, paths: Sequence[str], options: ScoringOptions) -> Iterator[list[ImageRecord]]:
    """Like ``score_files`` (batches in input order, errors included), but a dead worker never ends it."""
    start = 0
    in_flight = options.batch_size * (PREFETCH_FACTOR * options.workers + 1)
    while start < len(paths):
        offset = start
        try:
            batches = score_files(
                detector, paths[offset:], device=options.device, batch_size=options.batch_size,
                workers=options.workers, crops=options.crops, perturb=options.perturb, max_pixels=options.max_pixels,
            )
            with closing(batches):
                for records in batches:
                    start += len(records)
                    with _worker_deaths_not_raised_here():
                        yield _shift(records, offset)
            return
        except RuntimeError as exc:
            if not is_worker_death(exc):
                raise
        suspects = paths[start : start + in_flight]
        records = _isolate(detector, suspects, start, options) if suspects else []
        start += len(suspects)
        for first in range(0, len(records), options.batch_size):
            with _worker_deaths_not_raised_here():
                yield records[first : first + options.batch_size]
