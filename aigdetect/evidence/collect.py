"""Run every metadata source on one opened file, without decoding its pixels and without raising.

Sources, each a module: ``credentials`` (C2PA, embedded and ``.c2pa`` sidecar), ``xmp`` (IPTC
digital source type, creator tools), ``exif``, ``pngtext`` (AI front ends' text chunks), ``stealth``
(the same parameters hidden in a PNG's lowest pixel bits); plus ``watermark``, which needs the
decoded pixels and runs where they are decoded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from ..errors import ImageDecodeError
from ..fileio import open_input
from .config import EvidenceConfig
from .containers import Layout, scan_layout
from .credentials import ManifestReport, findings_of, pointer_findings, read_c2pa, read_reports, summarize
from .exif import exif_findings, load_exif
from .findings import Finding, MetadataError, clean_text
from .generation import distinct
from .media import media_reports
from .pngtext import PngText, read_chunks, text_findings
from .stealth import stealth_findings
from .watermark import read_watermark_evidence
from .xmp import parse_xmp, xmp_findings

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


T = TypeVar("T")


def _safely(source: str, read: Callable[[], T], fallback: T) -> tuple[T, list[Finding]]:
    """Run one reader: its result, or ``fallback`` and an error finding naming what hostile metadata broke."""
    try:
        return read(), []
    except MetadataError as exc:
        return fallback, [Finding.error(source, exc.reason, exc.text)]
    except MemoryError:
        return fallback, [Finding.error(source, "too-large", "out of memory while reading the metadata")]
    except OSError as exc:
        return fallback, [Finding.error(source, "unreadable", f"{type(exc).__name__}: {exc}")]
    except Exception as exc:  # a parser tripped by a hostile file: recorded with what broke, never raised
        return fallback, [Finding.error(source, "malformed", f"{type(exc).__name__}: {exc}")]


def _guarded(source: str, read: Callable[[], list[Finding]]) -> list[Finding]:
    findings, errors = _safely(source, read, [])
    return findings + errors


def _xmp(image: Image.Image, png: PngText, config: EvidenceConfig) -> tuple[list[Finding], list[str]]:
    """Findings of every XMP packet, and the C2PA manifests they point to (``dcterms:provenance``)."""
    packets = png.xmp if image.format == "PNG" else [image.info["xmp"]] if image.info.get("xmp") else []
    findings: list[Finding] = []
    remote: list[str] = []
    for packet in packets:
        facts, errors = _safely("xmp", partial(parse_xmp, packet, config.max_xmp_bytes), None)
        findings += errors
        if facts is not None:
            findings += xmp_findings(facts)
            remote += [facts.provenance] if facts.provenance else []
    return findings, remote


def _exif(image: Image.Image, png: PngText, config: EvidenceConfig) -> list[Finding]:
    if image.format == "PNG":
        blocks = png.exif
    elif image.info.get("exif"):
        blocks = [image.info["exif"]]
    elif image.format == "TIFF":
        return exif_findings(image.getexif(), config)  # from the tags Pillow parsed at open; no pixels
    else:
        blocks = []
    findings: list[Finding] = []
    for block in blocks:
        findings += _guarded("exif", lambda block=block: exif_findings(load_exif(block, config.max_exif_bytes), config))
    return findings


def read_metadata_evidence(
    image: Image.Image, handle: BinaryIO, *, path: str | bytes | None = None, config: EvidenceConfig | None = None
) -> list[Finding]:
    """Findings from the metadata of one file: C2PA (embedded and sidecar), XMP, EXIF, PNG text.

    Never loads ``image``'s pixels (a PNG's stealth check decodes, into an image of its own, only the
    rows that would hold a stealth header) and never raises for what the file contains: every source
    that cannot be read gives an ``error`` finding instead. The handle's position is restored, so the
    image can still be loaded afterwards.

    Args:
        image: the file opened with ``aigdetect.data.images.open_image(handle)``, pixels not loaded.
        handle: the seekable binary handle the image was opened from.
        path: the file's path, used only to find a ``.c2pa`` sidecar beside it (none when None).
        config: caps and trust; ``EvidenceConfig()`` when None.
    """
    config = config or EvidenceConfig()
    position = handle.tell()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layout, findings = _safely("c2pa", partial(scan_layout, handle, image.format), Layout())
            png = PngText()
            if image.format == "PNG":
                png, errors = _safely("png-text", partial(read_chunks, handle, layout, config), png)
                findings += errors
            c2pa = _guarded("c2pa", partial(read_c2pa, handle, layout, image.format, path, config))
            xmp, pointers = _xmp(image, png, config)
            if pointers and not c2pa:
                c2pa = _guarded("c2pa", partial(pointer_findings, handle, image.format, pointers[0], config))
            findings += c2pa + xmp + _guarded("exif", partial(_exif, image, png, config))
            texts = _guarded("png-text", partial(text_findings, png.texts, config))
            if image.format == "PNG":
                texts = distinct(
                    [(f, None) for f in texts + _guarded("png-text", partial(stealth_findings, handle, image, config))]
                )
            return findings + png.errors + texts
    finally:
        handle.seek(position)


def _open(path: str | bytes | os.PathLike[str]) -> tuple[BinaryIO, Image.Image]:
    from PIL import UnidentifiedImageError

    from ..data.images import open_image

    name = os.fsdecode(path)
    handle, _ = open_input(path, follow_symlinks=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return handle, open_image(handle, name)
    except UnidentifiedImageError:
        handle.close()
        raise ImageDecodeError(name, "unsupported", "not an image, or a format Pillow cannot decode") from None
    except Exception as exc:
        handle.close()
        raise ImageDecodeError(name, "corrupt", clean_text(str(exc) or type(exc).__name__, 200)) from None


def collect_evidence(
    path: str | bytes | os.PathLike[str], config: EvidenceConfig | None = None, *, rgb: np.ndarray | None = None
) -> list[Finding]:
    """Open a file and read all its evidence: metadata, and watermarks when its decoded ``rgb`` is given.

    A video, audio or PDF file with Content Credentials gives the findings of its credentials.

    Raises:
        InputFileError: the file cannot be opened (missing, unreadable, not a regular file).
        ImageDecodeError: Pillow cannot identify it as an image.
    """
    config = config or EvidenceConfig()
    sidecar_base = os.fsdecode(path) if not isinstance(path, bytes) else path
    try:
        handle, image = _open(path)
    except ImageDecodeError as exc:
        return findings_of(_media_or_raise(path, sidecar_base, config, exc))
    with handle, image:
        findings = read_metadata_evidence(image, handle, path=sidecar_base, config=config)
    if rgb is not None:
        findings += _guarded("watermark", lambda: read_watermark_evidence(rgb, config))
    return findings


def summarize_c2pa(path: str | bytes | os.PathLike[str], config: EvidenceConfig | None = None) -> list[dict[str, Any]]:
    """JSON-safe summaries of a file's C2PA manifest stores (embedded first, then the sidecar), for ``inspect``.

    Each is ``{"where", "validation" (trusted|valid|invalid: integrity), "trusted", "trust"
    (trusted|untrusted|expired|revoked), "vouched_by" (the trust list, when trusted), "failures",
    "signer": {"common_name", "issuer"}, "claim_generator", "title", "actions": [{"action",
    "digitalSourceType", "softwareAgent"}], "ingredients", "ingredient_ai_source_types", "manifests":
    [{"label", "active", "pseudo", "signer", "trust", "signals", "ingredients"}] (every manifest of
    the store with its asset signals, ``c2pa_signals``), "identities" (CAWG, ``cawg``)}``, or
    ``{"error": "reason: text"}`` for a store that could not be read. Empty when there is none.
    A video, audio or PDF file gets the summaries of its credentials too.

    Raises:
        InputFileError, ImageDecodeError: as ``collect_evidence``.
    """
    config = config or EvidenceConfig()
    sidecar_base = os.fsdecode(path) if not isinstance(path, bytes) else path
    try:
        handle, image = _open(path)
    except ImageDecodeError as exc:
        return summarize(_media_or_raise(path, sidecar_base, config, exc))
    with handle, image:
        layout = scan_layout(handle, image.format)
        return summarize(read_reports(handle, layout, image.format, sidecar_base, config))


def _media_or_raise(
    path: str | bytes | os.PathLike[str], sidecar_base: str | bytes, config: EvidenceConfig, error: ImageDecodeError
) -> list[ManifestReport | MetadataError]:
    """The credentials of a file Pillow does not open, when it is a video, audio or PDF file that has some;
    otherwise ``error`` is raised."""
    if error.reason == "unsupported":
        handle, _ = open_input(path, follow_symlinks=True)
        with handle:
            found = media_reports(handle, sidecar_base, config)
        if found:
            return found[1]
    raise error
