"""The result rows of a scan: their columns, how a scored or failed file becomes one, and the tally."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..engine.records import ImageRecord
from .paths import display_path
from .walk import FoundFile

Row = dict[str, Any]

BASE_COLUMNS: tuple[str, ...] = (
    "path", "status", "score", "verdict", "threshold", "detector",
    "width", "height", "format", "error", "size", "mtime_ns",
)
CROP_COLUMNS: tuple[str, ...] = ("crop_mean", "crop_max")


def scan_columns(crops: int) -> tuple[str, ...]:
    """Column order of a scan; with crops, their mean and max sit right after the centre score."""
    if not crops:
        return BASE_COLUMNS
    at = BASE_COLUMNS.index("score") + 1
    return BASE_COLUMNS[:at] + CROP_COLUMNS + BASE_COLUMNS[at:]


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) and make any undecodable character visible."""
    return " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")


def verdict(score: float, threshold: float) -> str:
    """``score > threshold`` is fake, the rule of the accuracy metrics (UnivFD's calculate_acc)."""
    return "fake" if score > threshold else "real"


@dataclass(frozen=True)
class RowContext:
    """What every row of one scan shares."""

    detector: str
    threshold: float
    columns: tuple[str, ...]


def _base(found: FoundFile, context: RowContext) -> Row:
    row: Row = dict.fromkeys(context.columns)
    row.update(
        path=display_path(found.path),
        threshold=context.threshold,
        detector=context.detector,
        size=found.size,
        mtime_ns=found.mtime_ns,
    )
    return row


def error_row(found: FoundFile, reason: str, detail: str, context: RowContext) -> Row:
    row = _base(found, context)
    row.update(status="error", error=one_line(f"{reason}: {detail}"))
    return row


def record_row(found: FoundFile, record: ImageRecord, context: RowContext) -> Row:
    """The row of a file that went through decoding and, when that worked, the detector."""
    if not record.ok:
        row = error_row(found, record.error_reason or "corrupt", record.error or "", context)
    elif record.score is None or not math.isfinite(record.score):
        row = error_row(found, "no-score", "the detector gave no finite score", context)
    else:
        row = _base(found, context)
        row.update(status="ok", score=record.score, verdict=verdict(record.score, context.threshold))
        if "crop_mean" in row and record.crop_scores:
            row.update(crop_mean=sum(record.crop_scores) / len(record.crop_scores), crop_max=max(record.crop_scores))
    row.update(width=record.width, height=record.height, format=record.format)
    return row


def row_key(path: str, size: Any, mtime_ns: Any, detector: str) -> tuple[str, str, str, str]:
    """What makes a recorded row reusable by ``--resume``; values compare as text (CSV holds text)."""
    return (path, "" if size is None else str(size), "" if mtime_ns is None else str(mtime_ns), detector)


def recorded_key(row: Row) -> tuple[str, str, str, str]:
    return row_key(str(row.get("path") or ""), row.get("size"), row.get("mtime_ns"), str(row.get("detector") or ""))


def found_key(found: FoundFile, detector: str) -> tuple[str, str, str, str]:
    return row_key(display_path(found.path), found.size, found.mtime_ns, detector)


@dataclass
class Tally:
    """Counts of verdicts and error reasons, updated row by row (works on typed or CSV-text rows)."""

    fake: int = 0
    real: int = 0
    errors: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return self.fake + self.real + self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.rows,
            "fake": self.fake,
            "real": self.real,
            "errors": self.errors,
            "errors_by_reason": dict(sorted(self.reasons.items())),
        }

    def add(self, rows: Iterable[Row]) -> None:
        for row in rows:
            if row.get("status") == "ok":
                if row.get("verdict") == "fake":
                    self.fake += 1
                else:
                    self.real += 1
            else:
                self.errors += 1
                self.reasons[str(row.get("error") or "unknown").split(":", 1)[0]] += 1
