"""IPTC digital source types, as XMP and C2PA state them, sorted into what they say about origin.

Values are URIs such as ``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia``
(C2PA also uses ``http://c2pa.org/digitalsourcetype/...``); the last path segment names the type.
"""

from __future__ import annotations

import re

AI_TYPES: frozenset[str] = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia"})
"""Made, or partly made, by a generative model or another algorithm: claim ``ai``."""
CAPTURE_TYPES: frozenset[str] = frozenset(
    {"digitalCapture", "computationalCapture", "compositeCapture", "negativeFilm", "positiveFilm", "print"}
)
"""Recorded from the physical world (a sensor, a scan of film or a print): claim ``camera``."""
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


def type_name(value: str) -> str | None:
    """The type's short name (``trainedAlgorithmicMedia``) from its URI or bare name, or None."""
    name = value.strip().rstrip("/").rsplit("/", 1)[-1]
    return name if _NAME.fullmatch(name) else None


def origin(name: str) -> str:
    """``ai``, ``camera`` or ``none`` for a short type name."""
    if name in AI_TYPES:
        return "ai"
    return "camera" if name in CAPTURE_TYPES else "none"
