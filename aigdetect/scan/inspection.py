"""``inspect``: everything aigdetect knows about a few files, one report each, for a person to read.

It reads each file exactly as a scan does (one open, evidence from the same descriptor, the
detector on the centre crop), then adds what a scan leaves out of its rows: the verdict's reasons,
the crop scores, and the Content Credentials in detail.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from ..engine.infer import ScoringSession, score_files
from ..engine.reading import ReadOptions
from ..errors import AigdetectError, InputError
from ..evidence import EvidenceConfig, default_bands, fuse, summarize_c2pa, validate_bands
from ..models.detector import Detector
from ..models.identity import detector_id, random_backbone_warning
from ..results.paths import display_path


def require_files(paths: Sequence[str]) -> None:
    """Refuse a folder before any model loads: a report per file is for a few files a person reads,
    and a folder's files are a scan's job (rows, a report page, resume).

    Raises:
        InputError: a path is a folder.
    """
    for path in paths:
        if os.path.isdir(path):
            raise InputError(f"{display_path(path)} is a folder: inspect takes image files; scan a folder with 'aigdetect scan'")


def inspect_files(
    detector: Detector,
    paths: Sequence[str],
    *,
    evidence: EvidenceConfig | None,
    crops: int = 0,
    threshold: float | None = None,
    bands: tuple[float, float] | None = None,
    device: torch.device | None = None,
    session: ScoringSession | None = None,
) -> list[dict[str, Any]]:
    """One JSON-safe report per path: file facts, score, crop scores, findings, verdict and reasons, C2PA.

    A file that cannot be read gets a report with ``error`` instead of a score; nothing raises for it.
    Every report carries ``warnings``: what its reader must know before trusting it (a random backbone).
    With ``session`` (a service's, opened with ``inspect_reading``), files are decoded in its workers,
    where a crashing decoder costs its file alone, and scored on its plan; without it, in this process
    on ``device``.

    Raises:
        InputError: a path is a folder (``inspect`` reads files; ``scan`` walks folders).
    """
    require_files(paths)
    threshold = float(detector.threshold if threshold is None else threshold)
    bands = validate_bands(threshold, bands if bands is not None else default_bands(threshold))
    reading = inspect_reading(detector, crops, evidence)
    if session is not None:
        records = session.score(paths, reading)
    else:
        batches = score_files(detector, list(paths), device=device or torch.device("cpu"), reading=reading)
        records = [r for batch in batches for r in batch]
    identity = detector_id(detector)
    warning = random_backbone_warning(identity)
    reports = []
    for path, record in zip(paths, records):
        report: dict[str, Any] = {
            "path": display_path(path),
            "size": record.size,
            "mtime_ns": record.mtime_ns,
            "sha256": record.sha256,
            "format": record.format,
            "width": record.width,
            "height": record.height,
            "detector": identity,
            "warnings": [warning] if warning else [],
            "threshold": threshold,
            "bands": list(bands),
            "c2pa_trust": evidence.anchors.describe() if evidence is not None else None,
        }
        if not record.ok:
            report["error"] = {"reason": record.error_reason, "detail": record.error}
        fused = fuse(record.findings, record.score, threshold, bands)
        report.update(
            score=record.score,
            crop_scores=record.crop_scores,
            model_verdict=None if record.score is None else ("fake" if record.score > threshold else "real"),
            verdict=fused.verdict if record.ok else None,
            generator=fused.generator,
            reasons=list(fused.reasons) if record.ok else [],
            findings=[f.to_dict() for f in record.findings],
            c2pa=_c2pa(path, evidence) if record.ok else [],
        )
        reports.append(report)
    return reports


def inspect_reading(detector: Detector, crops: int, evidence: EvidenceConfig | None) -> ReadOptions:
    """What ``inspect`` reads of each file: the crops, the SHA-256, the evidence."""
    return ReadOptions(size=detector.image_size, crops=crops, sha256=True, evidence=evidence)


def _c2pa(path: str, evidence: EvidenceConfig | None) -> list[dict[str, Any]]:
    if evidence is None:
        return []
    try:
        return summarize_c2pa(os.fsencode(path), evidence)
    except AigdetectError as exc:
        return [{"error": str(exc)}]
