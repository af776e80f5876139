"""What scoring reports about each file: plain data, shared by inference, scans and benches."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImageRecord:
    """The outcome for one file: a score (and crop scores) or an error, plus file facts."""

    index: int
    path: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    score: float | None = None
    crop_scores: list[float] = field(default_factory=list)
    error_reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
