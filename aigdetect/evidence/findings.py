"""What one evidence source says about one file: a ``Finding``, small, typed and JSON-safe.

The vocabulary is closed, so reports, CSV cells and the fusion rules can rely on it:

- ``source``: where the finding comes from (``SOURCES``).
- ``claim``: what it says about the image's origin (``CLAIMS``):
  ``ai`` (made with generative AI), ``ai-edited`` (a capture or non-AI creation with generative
  parts or edits), ``camera`` (captured by a camera), ``edited`` (edited, with no AI named),
  ``tampered`` (Content Credentials that fail an integrity check: a hash, the signature, a required
  assertion; an untrusted or expired signer is not tampering), ``none`` (the source is present but
  states no origin) and ``error`` (the source could not be read; the detail is ``reason: text`` with a reason from ``ERROR_REASONS``).
- ``strength``: how much weight it can bear (``STRENGTHS``): ``strong`` (cryptographically bound:
  a trusted C2PA signature, a decoded watermark), ``moderate`` (anyone can write it, but it states
  an AI origin against the writer's interest to hide it), ``weak`` (informative only), or None
  for a finding read back from a CSV cell, which does not record it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import AigdetectError

SOURCES: tuple[str, ...] = ("c2pa", "xmp", "exif", "png-text", "watermark")
CLAIMS: tuple[str, ...] = ("ai", "ai-edited", "camera", "edited", "tampered", "none", "error")
STRENGTHS: tuple[str, ...] = ("strong", "moderate", "weak")
ERROR_REASONS: tuple[str, ...] = ("too-large", "too-deep", "malformed", "refused", "unsupported", "unreadable")
"""Why a source could not be read: over a size cap, nested too deep, not well-formed, refused on
principle (XML with a DTD or entities), a container the reader does not handle, an I/O failure."""

MAX_DETAIL = 300
MAX_GENERATOR = 80


class EvidenceError(AigdetectError):
    """A finding or fusion input is not valid (a bad value in a results file, or bands out of order)."""


class MetadataError(EvidenceError):
    """One source's metadata cannot be used; readers turn it into an ``error`` finding, never raise it on.

    Attributes:
        reason: one of ``ERROR_REASONS``.
        text: what was wrong, for the finding's detail.
    """

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(f"{reason}: {text}")
        self.reason = reason
        self.text = text


def clean_text(value: str, limit: int) -> str:
    """One printable line of at most ``limit`` characters from untrusted text.

    Control, format and separator characters (newlines, bidi overrides, NULs) become spaces, runs
    of spaces collapse, and longer text is cut with an ellipsis, so a file cannot break a CSV row,
    a terminal line or a report.
    """
    chars = [" " if unicodedata.category(c)[0] in "CZ" else c for c in value[: limit * 4]]
    text = " ".join("".join(chars).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Finding:
    """One statement about the file's origin, from one source (see the module docstring)."""

    source: str
    claim: str
    strength: str | None
    detail: str
    generator: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise EvidenceError(f"finding source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.claim not in CLAIMS:
            raise EvidenceError(f"finding claim must be one of {', '.join(CLAIMS)}, got {self.claim!r}")
        if self.strength is not None and self.strength not in STRENGTHS:
            raise EvidenceError(f"finding strength must be one of {', '.join(STRENGTHS)}, got {self.strength!r}")
        if not isinstance(self.detail, str) or not self.detail or clean_text(self.detail, MAX_DETAIL) != self.detail:
            raise EvidenceError(f"finding detail must be one non-empty printable line, got {self.detail!r}")
        if self.claim == "error" and self.detail.split(":", 1)[0] not in ERROR_REASONS:
            raise EvidenceError(f"an error finding's detail must start with one of {', '.join(ERROR_REASONS)}:")
        if self.generator is not None and (
            not isinstance(self.generator, str)
            or not self.generator
            or clean_text(self.generator, MAX_GENERATOR) != self.generator
        ):
            raise EvidenceError(f"finding generator must be None or one short printable line, got {self.generator!r}")

    @classmethod
    def error(cls, source: str, reason: str, text: str) -> Finding:
        """A source that could not be read: ``reason`` from ``ERROR_REASONS``, ``text`` says why."""
        return cls(source, "error", "weak", clean_text(f"{reason}: {text}", MAX_DETAIL))

    @classmethod
    def make(cls, source: str, claim: str, strength: str | None, detail: str, generator: str | None = None) -> Finding:
        """A finding from untrusted text: detail and generator are cleaned and cut to size first."""
        name = clean_text(generator, MAX_GENERATOR) if generator else None
        return cls(source, claim, strength, clean_text(detail, MAX_DETAIL), name or None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Finding:
        """Rebuild a finding from ``to_dict`` output, refusing unknown keys and values.

        Raises:
            EvidenceError: a missing or unknown key, or a value outside the closed vocabulary.
        """
        if not isinstance(data, dict):
            raise EvidenceError(f"a finding must be an object, got {type(data).__name__}")
        required = {"source", "claim", "strength", "detail"}
        keys = set(data)
        if not required <= keys or not keys <= required | {"generator"}:
            raise EvidenceError(f"a finding has the keys source, claim, strength, detail and generator, got {sorted(keys)}")
        for key in required:
            if not isinstance(data[key], str):
                raise EvidenceError(f"finding {key} must be a string, got {type(data[key]).__name__}")
        return cls(data["source"], data["claim"], data["strength"], data["detail"], data.get("generator"))

    def compact(self) -> str:
        """``source:claim:detail`` for a CSV cell; cells join findings with ``"; "``, so ``;`` becomes ``,``."""
        return f"{self.source}:{self.claim}:{self.detail.replace(';', ',')}"
