"""Content Credentials in files that are not images: video, audio and PDF, read by the C2PA library.

The detector scores images only, but a newsroom receives signed videos (Sora, Google's Veo) and
audio too. A file Pillow cannot open is recognised here by its first bytes (never by its name);
when it is a container the C2PA library reads and it carries credentials (embedded or in a
``.c2pa`` sidecar), they are its evidence, and its row says what they say, with no score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from .config import EvidenceConfig
from .credentials import ManifestReport, findings_of, read_media_reports
from .findings import Finding, MetadataError, clean_text

_BMFF_BRANDS = {b"qt  ": ("MOV", "video/quicktime"), b"M4A ": ("M4A", "audio/mp4"), b"M4V ": ("M4V", "video/x-m4v")}


@dataclass(frozen=True)
class MediaEvidence:
    """What a non-image file's credentials say: its container and the findings."""

    format: str
    findings: list[Finding]


def sniff(head: bytes) -> tuple[str, str] | None:
    """(format, MIME type) of a video, audio or PDF file from its first 16 bytes; None for anything else."""
    if head.startswith(b"%PDF-"):
        return "PDF", "application/pdf"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV", "audio/wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI", "video/avi"
    if head[4:8] == b"ftyp":
        return _BMFF_BRANDS.get(head[8:12], ("MP4", "video/mp4"))
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3", "audio/mpeg"
    if head.startswith(b"fLaC"):
        return "FLAC", "audio/flac"
    return None


def media_reports(
    handle: BinaryIO, path: str | bytes | None, config: EvidenceConfig
) -> tuple[str, list[ManifestReport | MetadataError]] | None:
    """(format, the reports of its stores) for a video, audio or PDF file with credentials; None otherwise."""
    handle.seek(0)
    kind = sniff(handle.read(16))
    if kind is None:
        return None
    try:
        reports = read_media_reports(handle, kind[1], path, config)
    except Exception as exc:  # the library tripped by a hostile file: an error finding, as for every source
        reports = [MetadataError("malformed", f"C2PA: {type(exc).__name__}: {clean_text(str(exc), 160)}")]
    if all(isinstance(r, MetadataError) and r.reason == "malformed" for r in reports):
        return None  # nothing the library could read as credentials: the file keeps its unsupported row
    return kind[0], reports


def read_media_evidence(handle: BinaryIO, path: str | bytes | None, config: EvidenceConfig) -> MediaEvidence | None:
    """The credentials of a file that is not an image, or None when it is not a known container or has none.

    The handle's position is not restored; the caller is done with the file.
    """
    found = media_reports(handle, path, config)
    return MediaEvidence(found[0], findings_of(found[1])) if found else None
