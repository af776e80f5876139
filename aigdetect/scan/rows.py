"""The result rows of a scan: how a scored or failed file becomes one (columns in ``results.schema``), and the tally.

A row's ``verdict`` is the fused one (evidence first, then the score in bands around the
threshold, see ``evidence.fusion``); ``model_verdict`` is the score alone at the threshold
(``fake``/``real``), as the benchmark protocols count it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..engine.records import ImageRecord
from ..evidence import fuse
from ..results.paths import display_path
from ..results.schema import Row
from .walk import FoundFile


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) and make any undecodable character visible."""
    return " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")


def model_verdict(score: float, threshold: float) -> str:
    """``score > threshold`` is fake, the rule of the accuracy metrics (UnivFD's calculate_acc)."""
    return "fake" if score > threshold else "real"


@dataclass(frozen=True)
class RowContext:
    """What every row of one scan shares."""

    detector: str
    engine: str
    threshold: float
    bands: tuple[float, float]
    columns: tuple[str, ...]


def _base(record: ImageRecord, context: RowContext) -> Row:
    row: Row = dict.fromkeys(context.columns)
    row.update(
        path=display_path(record.path),
        threshold=context.threshold,
        detector=context.detector,
        engine=context.engine,
        size=record.size,
        mtime_ns=record.mtime_ns,
        evidence=[],
    )
    return row


def record_row(record: ImageRecord, context: RowContext) -> Row:
    """The row of one entry: a file that went through a decode worker (and, when that worked, the
    detector), or an entry the walk could not score. Size and time are those of the descriptor the
    worker decoded, or, for an entry never opened, those the walk saw."""
    row = _base(record, context)
    if not record.ok:
        row.update(status="error", error_reason=record.error_reason or "corrupt", error_detail=one_line(record.error or ""))
    elif record.media:  # a video, audio or PDF file with credentials: their verdict, no score, no model verdict
        fused = fuse(record.findings, None, context.threshold, context.bands)
        row.update(status="ok", verdict=fused.verdict, generator=fused.generator, evidence=[f.to_dict() for f in record.findings])
    elif record.score is None or not math.isfinite(record.score):
        row.update(status="error", error_reason="no-score", error_detail="the detector gave no finite score")
    else:
        row.update(status="ok", score=record.score, model_verdict=model_verdict(record.score, context.threshold))
        fused = fuse(record.findings, record.score, context.threshold, context.bands)
        row.update(verdict=fused.verdict, generator=fused.generator, evidence=[f.to_dict() for f in record.findings])
        if "crop_mean" in row and record.crop_scores:
            row.update(crop_mean=sum(record.crop_scores) / len(record.crop_scores), crop_max=max(record.crop_scores))
    row.update(width=record.width, height=record.height, format=record.format, sha256=record.sha256)
    return row


RowKey = tuple[str, str, str, str]


def row_key(path: str, size: Any, mtime_ns: Any, detector: str) -> RowKey:
    """What makes a recorded row reusable by ``resume``; values compare as text (CSV holds text)."""
    return (path, "" if size is None else str(size), "" if mtime_ns is None else str(mtime_ns), detector)


def recorded_key_of(row: Row) -> RowKey:
    return row_key(str(row.get("path") or ""), row.get("size"), row.get("mtime_ns"), str(row.get("detector") or ""))


def found_key(found: FoundFile, detector: str) -> RowKey:
    return row_key(display_path(found.path), found.size, found.mtime_ns, detector)


@dataclass
class Tally:
    """Counts per fused verdict, per model verdict and per error reason, updated row by row
    (works on typed rows and on rows read back from CSV text)."""

    verdicts: Counter[str] = field(default_factory=Counter)
    model: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(self.reasons.values())

    @property
    def rows(self) -> int:
        return sum(self.verdicts.values()) + self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.rows,
            "verdicts": dict(sorted(self.verdicts.items())),
            "model_verdicts": dict(sorted(self.model.items())),
            "errors": self.errors,
            "errors_by_reason": dict(sorted(self.reasons.items())),
        }

    def add_counts(self, other: Tally) -> None:
        """Add another tally's counts (a block counted where it was written)."""
        self.verdicts.update(other.verdicts)
        self.model.update(other.model)
        self.reasons.update(other.reasons)

    def add(self, rows: Iterable[Row]) -> None:
        for row in rows:
            if row.get("status") == "ok":
                self.verdicts[str(row.get("verdict") or "unknown")] += 1
                self.model[str(row.get("model_verdict") or "unknown")] += 1
            else:
                self.reasons[str(row.get("error_reason") or "unknown")] += 1
