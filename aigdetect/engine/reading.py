"""What a decode worker does with one file: open it once, and from that one open file take its facts
(size, time, optionally SHA-256), its evidence, and the pixels the detector scores.

Everything comes from the same open descriptor, so a file rewritten or swapped during a scan
never gets a row that mixes the old file's size with the new file's pixels, and a file replaced by
a FIFO or a link after the walk is refused instead of read.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import numpy as np

from ..data.config import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from ..data.crops import center_crop, crop_grid
from ..data.images import DecodedImage, opened_image
from ..data.objects import fetch_object, is_url
from ..data.plain_jpeg import JpegFile, jpeg_payload
from ..errors import ImageDecodeError, InputFileError
from ..evidence import EvidenceConfig, read_metadata_evidence, read_watermark_evidence
from ..evidence.media import read_media_evidence
from ..evidence.watermark import WATERMARKS_AVAILABLE
from ..fileio import open_input
from .records import ImageRecord

Perturbation = Callable[[np.ndarray], np.ndarray]
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ReadOptions:
    """How a worker reads each file.

    Attributes:
        size: the detector's input size (the centre crop's side).
        crops: extra crops spread over the image, scored beside the centre crop.
        perturb: applied to the decoded full image before cropping (robustness sweeps).
        max_pixels: decompression-bomb cap per image.
        max_bytes: decode-memory cap per image (see ``images.decode_bytes``).
        follow_symlinks: read a file that is a symbolic link (``score_files`` of plain paths).
        sha256: hash the file's bytes (chain of custody).
        evidence: read metadata (and, when asked, watermark) evidence; None skips it.
        jpeg_bytes: hand over the bytes of plain JPEGs instead of their pixels, for a batched
            decode where the model runs (``plain_jpeg``); ignored when the whole image is needed.
        storage_options: fsspec options for objects named by URL (``data.objects``).
    """

    size: int
    crops: int = 0
    perturb: Perturbation | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    follow_symlinks: bool = True
    sha256: bool = False
    evidence: EvidenceConfig | None = field(default=None)
    jpeg_bytes: bool = False
    storage_options: dict[str, Any] | None = None

    @property
    def watermarks(self) -> bool:
        return self.evidence is not None and self.evidence.watermarks and WATERMARKS_AVAILABLE

    @property
    def whole_image(self) -> bool:
        """Whether the whole image must be decoded, not just the centre the detector scores."""
        return self.perturb is not None or bool(self.crops) or self.watermarks

    def decoded_on_device(self, gpu_decode: bool) -> ReadOptions:
        """These options with plain JPEGs handed over as bytes when the device decodes them
        (``gpu_decode``), unless the whole image is needed."""
        return replace(self, jpeg_bytes=gpu_decode and not self.whole_image)


@dataclass(frozen=True)
class ReadItem:
    """One file for a worker: its path, whether a symbolic link there may be followed, and, when the
    walk already knows it cannot be read (a FIFO, a link not followed), why; with the size and time
    the walk saw, for the row of such an entry. An object in a store (a URL) carries the size, time
    and ``version`` (ETag or version id) of its listing, which its fetch must match."""

    path: str
    follow: bool = True
    problem: tuple[str, str] | None = None
    size: int | None = None
    mtime_ns: int | None = None
    version: str = ""


def file_sha256(handle: BinaryIO) -> str:
    """SHA-256 of the handle's bytes from its start, read in chunks; the position is restored to 0."""
    digest = hashlib.sha256()
    handle.seek(0)
    for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileReader:
    """Turns one (index, path) into its record and uint8 views (V, 3, S, S), or the bytes of a JPEG
    to decode on the device, or None for a file that failed; runs in a decode worker."""

    options: ReadOptions

    def __call__(self, task: tuple[int, ReadItem]) -> tuple[ImageRecord, np.ndarray | JpegFile | None]:
        index, item = task
        record = ImageRecord(index=index, path=item.path, size=item.size, mtime_ns=item.mtime_ns)
        if item.problem is not None:
            record.error_reason, record.error = item.problem
            return record, None
        try:
            handle, record.size, record.mtime_ns = self._open(item)
        except InputFileError as exc:
            record.error_reason, record.error = exc.reason, exc.detail
            return record, None
        return self.read_open(handle, record)

    def read_open(self, handle: BinaryIO, record: ImageRecord) -> tuple[ImageRecord, np.ndarray | JpegFile | None]:
        """Read a file already open (or bytes in memory, ``RayScorer``), closing it; ``record`` has its size."""
        options = self.options
        with handle:
            try:
                if options.sha256:
                    record.sha256 = file_sha256(handle)
                decoded = self._decode(handle, record)
                if isinstance(decoded, JpegFile):
                    record.width, record.height, record.format = decoded.width, decoded.height, decoded.format
                    return record, decoded
            except ImageDecodeError as exc:
                if exc.reason == "unsupported" and self._media(handle, record):
                    return record, None
                record.error_reason, record.error = exc.reason, exc.detail
                return record, None
            except OSError as exc:
                record.error_reason, record.error = "unreadable", exc.strerror or str(exc)
                return record, None
        record.width, record.height, record.format = decoded.width, decoded.height, decoded.format
        try:
            return record, self._views(decoded, record)
        except MemoryError:
            record.error_reason, record.error = "too-large", "out of memory while preprocessing"
            return record, None

    def _open(self, item: ReadItem) -> tuple[BinaryIO, int, int | None]:
        """The file's bytes with its size and time: a local file's descriptor, or an object fetched whole."""
        if is_url(item.path):
            data = fetch_object(item.path, item.size, item.version, self.options.max_bytes, self.options.storage_options)
            return data, len(data.getbuffer()), item.mtime_ns
        handle, info = open_input(item.path, follow_symlinks=item.follow)
        return handle, info.st_size, info.st_mtime_ns

    def _media(self, handle: BinaryIO, record: ImageRecord) -> bool:
        """Whether a file that is not an image carries credentials: they become its findings, with no score."""
        if self.options.evidence is None:
            return False
        media = read_media_evidence(handle, record.path, self.options.evidence)
        if media is None:
            return False
        record.format, record.findings, record.media = media.format, media.findings, True
        return True

    def _decode(self, handle: BinaryIO, record: ImageRecord) -> DecodedImage | JpegFile:
        options = self.options
        with opened_image(handle, options.max_pixels, options.max_bytes, name=record.path) as opened:
            if options.evidence is not None:
                record.findings = read_metadata_evidence(opened.image, handle, path=record.path, config=options.evidence)
            if options.whole_image:
                return opened.decode()
            if options.jpeg_bytes:
                payload = jpeg_payload(handle, opened.image, record.size or 0, options.max_pixels, record.path)
                if payload is not None:
                    return payload
            return opened.decode_center(options.size)

    def _views(self, decoded: DecodedImage, record: ImageRecord) -> np.ndarray:
        options = self.options
        array = decoded.array
        if options.watermarks:
            record.findings = [*record.findings, *read_watermark_evidence(array, options.evidence)]
        if options.perturb is not None:
            array = options.perturb(array)
        views = [center_crop(array, options.size)]
        if options.crops:
            views += crop_grid(array, options.size, options.crops)
        return np.stack([np.ascontiguousarray(v.transpose(2, 0, 1)) for v in views])


@dataclass(frozen=True)
class JpegFallback:
    """Decodes on the CPU the bytes of a JPEG that the device decoder refused: the very bytes the
    worker read, so the row still describes one version of the file. Runs in a decode worker."""

    options: ReadOptions

    def __call__(self, task: tuple[ImageRecord, JpegFile]) -> tuple[ImageRecord, np.ndarray | None]:
        record, jpeg = task
        options = self.options
        try:
            with opened_image(io.BytesIO(jpeg.data), options.max_pixels, options.max_bytes, name=record.path) as opened:
                decoded = opened.decode_center(options.size)
        except ImageDecodeError as exc:
            record.error_reason, record.error = exc.reason, exc.detail
            return record, None
        return record, decoded.array.transpose(2, 0, 1)[None].copy()
