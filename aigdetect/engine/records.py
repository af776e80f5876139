"""What scoring reports about each file: plain data, shared by inference, scans and benches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..evidence import Finding


@dataclass
class ImageRecord:
    """The outcome for one file: a score (and crop scores) or an error, plus file facts.

    ``size`` and ``mtime_ns`` come from the descriptor the pixels were read from; ``findings`` are
    the evidence the file carries about itself (empty when evidence was not read);
    ``device_decode_refused`` says why the batched device decoder gave the file back to the CPU.
    """

    index: int
    path: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    score: float | None = None
    crop_scores: list[float] = field(default_factory=list)
    error_reason: str | None = None
    error: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    findings: list[Finding] = field(default_factory=list)
    device_decode_refused: str | None = None
    media: bool = False  # not an image, but it carries Content Credentials: findings only, never a score

    @property
    def ok(self) -> bool:
        return self.error is None
