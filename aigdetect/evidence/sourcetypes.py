"""IPTC digital source types, as XMP and C2PA state them, sorted into what they say about origin.

Values are URIs such as ``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia``
(C2PA also uses ``http://c2pa.org/digitalsourcetype/...``); the last path segment names the type.

GenAI is what the C2PA asset-signals rubric calls GenAI (``GENAI_SOURCE_TYPES``). IPTC's
``algorithmicMedia`` is *not* among them: IPTC defines it as made by an algorithm not trained on
data (a gradient, a fractal), which is exactly what the C2PA SDK's test images are.
"""

from __future__ import annotations

import re

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
C2PA_PREFIX = "http://c2pa.org/digitalsourcetype/"
GENAI_SOURCE_TYPES: frozenset[str] = frozenset(
    {
        IPTC_PREFIX + "trainedAlgorithmicMedia",
        IPTC_PREFIX + "compositeWithTrainedAlgorithmicMedia",
        IPTC_PREFIX + "compositeSynthetic",
        C2PA_PREFIX + "trainedAlgorithmicData",
    }
)
"""The rubric's GenAI source types, as full URIs (the rubric compares them exactly)."""
AI_TYPES: frozenset[str] = frozenset({"trainedAlgorithmicMedia", "compositeSynthetic", "trainedAlgorithmicData"})
"""Made by a generative model, or of synthetic parts that may be: claim ``ai``."""
AI_EDIT_TYPES: frozenset[str] = frozenset({"compositeWithTrainedAlgorithmicMedia"})
"""Partly made by a generative model (a capture or drawing with generated parts): claim ``ai-edited``."""
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
    """``ai``, ``ai-edited``, ``camera`` or ``none`` for a short type name."""
    if name in AI_TYPES:
        return "ai"
    if name in AI_EDIT_TYPES:
        return "ai-edited"
    return "camera" if name in CAPTURE_TYPES else "none"
