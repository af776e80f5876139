"""One explained verdict from the evidence findings and the detector's score.

Rules, in order (the first that applies decides):

1. **Tampered credentials.** A C2PA manifest that fails validation (a hash, the signature or the
   certificate) gives ``tampered-credentials``: the file claims a provenance it cannot back. Only
   strong AI evidence from another source (a trusted AI manifest, a decoded watermark) overrides it,
   giving ``ai-generated`` with the tampering among the reasons.
2. **AI evidence.** A valid C2PA manifest declaring an AI digital source type (strong when trusted,
   moderate when not), a decoded known watermark (strong), or generator metadata in XMP, EXIF or PNG
   text (moderate: anyone can write metadata, but nobody hides a real photo by labelling it AI) gives
   ``ai-generated``, whatever the score, with the evidence named.
3. **AI edits.** Without AI evidence of rule 2: a valid C2PA manifest chain whose asset signals show
   generative parts in a capture or non-AI creation (``partlyGenAICreation``,
   ``compositionMayContainGenAI`` or ``perceptibleGenAI`` in the active manifest or an ingredient's,
   such as generative fill on a photograph), or XMP stating ``compositeWithTrainedAlgorithmicMedia``,
   gives ``ai-edited`` (a real capture or drawing with generated parts: neither a generated image
   nor an untouched photograph), whatever the score.
4. **Camera credentials.** A valid, trusted C2PA manifest of a camera capture gives ``camera-signed``,
   unless the detector's score is in the likely-AI band: then ``conflict``, for a person to look at.
   Credentials never override the model silently.
5. **The score**, in bands around the detector's calibrated threshold: ``likely-ai`` at or above the
   high edge, ``likely-real`` at or below the low edge, ``inconclusive`` between them or without a
   score (undecodable pixels).

What the rules do not do: the absence of metadata, of credentials or of a watermark is never
evidence of a real photograph (most pipelines strip metadata; most generators embed nothing), and
weak findings (camera makers in EXIF, untrusted camera manifests, edits) are reported but decide
nothing. A score alone never gives a hard real/fake answer: the bands keep the scores a detector is
unsure of, where errors on new generators and recompressed images concentrate, out of both verdicts.

**Default bands** are 2 logits either side of the threshold: a factor of e² ≈ 7.4 in the odds,
0.12 and 0.88 at a threshold of 0.5. The margin is symmetric in logit space so that it means the
same confidence whatever the calibrated threshold is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..fileio import finite
from .findings import EvidenceError, Finding

VERDICTS: tuple[str, ...] = (
    "ai-generated",
    "ai-edited",
    "likely-ai",
    "inconclusive",
    "likely-real",
    "camera-signed",
    "conflict",
    "tampered-credentials",
)
DEFAULT_BAND_MARGIN = 2.0
"""Half-width of the inconclusive band, in logits of the score (see the module docstring)."""
_LABELS = {"c2pa": "C2PA", "xmp": "XMP", "exif": "EXIF", "png-text": "PNG text", "watermark": "watermark"}
_STRENGTH_ORDER = {"strong": 0, "moderate": 1, "weak": 2}


@dataclass(frozen=True)
class Fused:
    """The verdict, the reasons for it (short sentences, the decisive ones first) and the generator named."""

    verdict: str
    reasons: tuple[str, ...]
    generator: str | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise EvidenceError(f"verdict must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "generator": self.generator}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def default_bands(threshold: float, margin: float = DEFAULT_BAND_MARGIN) -> tuple[float, float]:
    """``(low, high)``: ``margin`` logits either side of ``threshold`` (0.12 and 0.88 at 0.5)."""
    t = min(max(threshold, 1e-12), 1 - 1e-12)
    logit = math.log(t / (1 - t))
    return min(_sigmoid(logit - margin), threshold), max(_sigmoid(logit + margin), threshold)


def validate_bands(threshold: float, bands: tuple[float, float]) -> tuple[float, float]:
    """Check ``0 <= low <= threshold <= high <= 1`` and return ``(low, high)`` as floats.

    Raises:
        ConfigError: a value that is not a finite number, or bands out of order.
    """
    try:
        low, high = (float(v) for v in bands)
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise ConfigError(f"bands are two numbers (low, high), got {bands!r}") from None
    if not all(math.isfinite(v) for v in (low, high, threshold)) or not 0 <= low <= threshold <= high <= 1:
        raise ConfigError(f"bands need 0 <= low <= threshold <= high <= 1, got low={low}, threshold={threshold}, high={high}")
    return low, high


def reason_for(finding: Finding) -> str:
    """A finding as a sentence of the reasons."""
    if finding.claim == "error":
        return f"{_LABELS[finding.source]} not read ({finding.detail})"
    return finding.detail[0].upper() + finding.detail[1:]


def _score_reason(score: float | None, low: float, high: float) -> str:
    if score is None:
        return "No detector score (the pixels could not be decoded)"
    if score >= high:
        return f"Detector score {score:.3f} is in the likely-AI band (at or above {high:.3f})"
    if score <= low:
        return f"Detector score {score:.3f} is in the likely-real band (at or below {low:.3f})"
    return f"Detector score {score:.3f} is between the bands ({low:.3f} to {high:.3f}): inconclusive"


def _by_strength(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: _STRENGTH_ORDER[f.strength])


def fuse(findings: Iterable[Finding], score: float | None, threshold: float, bands: tuple[float, float]) -> Fused:
    """The verdict for one file by the rules in the module docstring.

    Args:
        findings: every finding read for the file (metadata and watermarks).
        score: the detector's probability of AI-generated; None (or NaN) when the pixels could not be decoded.
        threshold: the detector's calibrated threshold.
        bands: ``(low, high)`` edges of the inconclusive band, e.g. ``default_bands(threshold)``.

    Raises:
        ConfigError: bands out of order.
        EvidenceError: a score outside 0..1.
    """
    low, high = validate_bands(threshold, bands)
    findings = list(findings)
    score = finite(score)
    if score is not None and not 0 <= score <= 1:
        raise EvidenceError(f"a detector score is a probability in 0..1, got {score}")
    ai = _by_strength([f for f in findings if f.claim == "ai" and f.strength != "weak"])
    strong_ai = [f for f in ai if f.strength == "strong"]
    tampered = [f for f in findings if f.claim == "tampered"]
    ai_edits = _by_strength([f for f in findings if f.claim == "ai-edited" and f.strength != "weak"])
    camera = [f for f in findings if f.claim == "camera" and f.strength == "strong"]
    extra: list[str] = []
    if tampered and strong_ai:
        verdict, lead = "ai-generated", strong_ai + tampered
    elif tampered:
        verdict, lead = "tampered-credentials", tampered
    elif ai:
        verdict, lead = "ai-generated", ai
    elif ai_edits:
        verdict, lead = "ai-edited", ai_edits
    elif camera and score is not None and score >= high:
        verdict, lead = "conflict", camera
        extra.append(
            "The camera credentials conflict with a detector score in the likely-AI band: check the image by other means"
        )
    elif camera:
        verdict, lead = "camera-signed", camera
    elif score is None:
        verdict, lead = "inconclusive", []
    else:
        verdict = "likely-ai" if score >= high else "likely-real" if score <= low else "inconclusive"
        lead = []
    rest = [f for f in findings if f not in lead]
    reasons = [reason_for(f) for f in lead] + extra + [reason_for(f) for f in rest] + [_score_reason(score, low, high)]
    named = [f.generator for f in lead + ai + ai_edits if f.claim in ("ai", "ai-edited") and f.generator]
    return Fused(verdict, tuple(dict.fromkeys(reasons)), named[0] if named else None)
