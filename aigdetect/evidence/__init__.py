"""The evidence layer: what a file says about its own origin, and one verdict with its reasons.

Each source is a module that turns an opened file into ``Finding`` objects (``credentials`` for
C2PA, ``xmp``, ``exif``, ``pngtext``, ``watermark``); ``fusion`` combines them with the detector's
score. Known generators live in one data table, ``signatures.json``; the C2PA trust lists in
``trust/`` (``trustlists`` loads them, ``validation`` tells integrity from trust). The C2PA library, OpenCV and
pywt are imported only when a file needs them.
"""

from __future__ import annotations

from .collect import collect_evidence, read_metadata_evidence, summarize_c2pa
from .config import EvidenceConfig
from .findings import CLAIMS, ERROR_REASONS, SOURCES, STRENGTHS, EvidenceError, Finding
from .fusion import DEFAULT_BAND_MARGIN, VERDICTS, Fused, default_bands, fuse, validate_bands
from .validation import TRUST_STATES, manifest_trust
from .watermark import WATERMARKS_AVAILABLE, read_watermark_evidence

__all__ = [
    "CLAIMS",
    "DEFAULT_BAND_MARGIN",
    "ERROR_REASONS",
    "SOURCES",
    "STRENGTHS",
    "TRUST_STATES",
    "VERDICTS",
    "WATERMARKS_AVAILABLE",
    "EvidenceConfig",
    "EvidenceError",
    "Finding",
    "Fused",
    "collect_evidence",
    "default_bands",
    "fuse",
    "manifest_trust",
    "read_metadata_evidence",
    "read_watermark_evidence",
    "summarize_c2pa",
    "validate_bands",
]
