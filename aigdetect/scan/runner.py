"""The scan itself: list the files, skip what ``--resume`` may keep, score the rest, write rows.

Rows follow the byte order of the paths. Entries that cannot be scored (reported by the walker)
take their place in that order, so a resumed or sharded scan lines up with a plain one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..engine.infer import Perturbation, resolve_device, score_files
from ..errors import ConfigError, InputError
from ..models.detector import Detector
from ..models.identity import detector_id
from .config import ScanConfig
from .rows import Row, RowContext, Tally, error_row, found_key, record_row, recorded_key, scan_columns
from .shard import select_shard
from .walk import FoundFile, walk_paths
from .writers import Recorded, open_writer, read_recorded


@dataclass(frozen=True)
class ScanProgress:
    """Reported after every written batch: files done and to do in this run, and errors among them."""

    done: int
    total: int
    errors: int


ProgressCallback = Callable[[ScanProgress], None]


@dataclass
class ScanSummary:
    """The outcome of a scan; ``tally`` counts every row of the output, kept ones included.

    Attributes:
        out: the output file, or None for a stream.
        output_format: csv, json or jsonl.
        detector: the detector id written in each row.
        threshold: the verdict threshold.
        tally: fake, real and error counts over the whole output.
        scored: rows produced by this run.
        resumed: rows kept from an earlier run by ``--resume``.
        elapsed_s: wall time of the scoring.
    """

    out: str | None
    output_format: str
    detector: str
    threshold: float
    tally: Tally = field(default_factory=Tally)
    scored: int = 0
    resumed: int = 0
    elapsed_s: float = 0.0

    @property
    def images_per_s(self) -> float | None:
        return self.scored / self.elapsed_s if self.elapsed_s > 0 and self.scored else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.tally.as_dict(),
            "scored": self.scored,
            "resumed": self.resumed,
            "threshold": self.threshold,
            "detector": self.detector,
            "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": None if self.images_per_s is None else round(self.images_per_s, 2),
        }


def _resumable(config: ScanConfig, files: Sequence[FoundFile], context: RowContext) -> list[Recorded]:
    """Rows of the earlier output that still describe a file of this scan, each file once."""
    if not config.resume or config.out is None:
        return []
    previous = read_recorded(config.out, config.output_format, context.columns)
    wanted = {found_key(f, context.detector) for f in files}
    kept: list[Recorded] = []
    seen: set[tuple[str, str, str, str]] = set()
    for item in previous.rows:
        key = recorded_key(item.row)
        if key not in wanted or key in seen:
            continue
        try:
            threshold = float(item.row["threshold"])
        except (TypeError, ValueError):
            raise InputError(f"{config.out}: a row has no valid threshold; the file is damaged") from None
        if threshold != context.threshold:
            raise ConfigError(
                f"{config.out} was written at threshold {threshold}, this scan uses {context.threshold}; "
                f"resume with `threshold` {threshold} or write to a new `out`"
            )
        kept.append(item)
        seen.add(key)
    return kept


def _row_batches(
    detector: Detector, todo: Sequence[FoundFile], context: RowContext, options: dict[str, Any]
) -> Iterator[list[Row]]:
    """Rows for ``todo`` in order, one list per scored batch, unscorable entries slotted in between."""
    scorable = [i for i, f in enumerate(todo) if f.problem is None]
    emitted = 0
    for records in score_files(detector, [todo[i].path for i in scorable], **options):
        by_position = {scorable[r.index]: r for r in records}
        last = scorable[records[-1].index]
        rows = []
        for position in range(emitted, last + 1):
            found = todo[position]
            if found.problem is not None:
                rows.append(error_row(found, *found.problem, context))
            else:
                rows.append(record_row(found, by_position[position], context))
        emitted = last + 1
        yield rows
    tail = [error_row(f, *f.problem, context) for f in todo[emitted:] if f.problem is not None]
    if tail:
        yield tail


def run_scan(
    detector: Detector,
    config: ScanConfig,
    *,
    stream: TextIO | None = None,
    progress: ProgressCallback | None = None,
    perturb: Perturbation | None = None,
) -> ScanSummary:
    """Scan ``config.paths`` and write one row per entry to ``config.out`` (or ``stream``).

    Args:
        detector: the model that scores the images.
        config: what to scan and how.
        stream: where rows go when ``config.out`` is None.
        progress: called after every written batch.
        perturb: applied to each decoded image before cropping (robustness studies; tests use it
            to make a decoder worker crash on purpose).

    Returns:
        The counts over the whole output and the speed of this run.

    Raises:
        InputError: a PATH does not exist, or the output to resume is damaged.
        ConfigError: the output to resume was written with other columns or another threshold.
    """
    device = resolve_device(config.runtime.device)
    files = select_shard(
        walk_paths(config.paths, recursive=config.recursive, follow_symlinks=config.follow_symlinks), config.shard
    )
    threshold = float(detector.threshold if config.threshold is None else config.threshold)
    context = RowContext(detector_id(detector), threshold, scan_columns(config.crops))
    kept = _resumable(config, files, context)
    kept_keys = {recorded_key(item.row) for item in kept}
    todo = [f for f in files if found_key(f, context.detector) not in kept_keys]
    options = dict(
        device=device,
        batch_size=config.runtime.batch_size_for(device.type),
        workers=config.runtime.workers_for(device.type),
        crops=config.crops,
        max_pixels=config.max_pixels,
        perturb=perturb,
    )
    summary = ScanSummary(config.out, config.output_format, context.detector, threshold, resumed=len(kept))
    summary.tally.add(item.row for item in kept)
    writer = open_writer(
        config.output_format, context.columns, out=config.out, stream=stream, kept=[item.text for item in kept]
    )
    started = time.perf_counter()
    errors = 0
    try:
        if progress:
            progress(ScanProgress(0, len(todo), 0))
        for rows in _row_batches(detector, todo, context, options):
            writer.write(rows)
            summary.tally.add(rows)
            summary.scored += len(rows)
            errors += sum(1 for row in rows if row["status"] != "ok")
            if progress:
                progress(ScanProgress(summary.scored, len(todo), errors))
        summary.elapsed_s = time.perf_counter() - started
        writer.finish(summary.as_dict())
    finally:
        writer.close()
    return summary
