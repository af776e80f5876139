"""Where the metadata sits in a file, found by walking its container without reading the pixels.

One walk per file answers two questions cheaply: is there an embedded C2PA manifest store, and how
large is it (so the cap applies before the C2PA library reads a byte of it); and, for PNG, where
are the text and EXIF chunks (Pillow only parses those before the image data until the pixels are
loaded, and we want the ones after it too, read under our own caps).

Where C2PA sits, per container: JPEG APP11 segments carrying JUMBF (``JP``), the PNG ``caBX``
chunk, the WebP ``C2PA`` chunk, the ISO BMFF (HEIF, AVIF) top-level ``uuid`` box with the C2PA
UUID, the TIFF tag 52545 in the first IFD, and a GIF application extension ``C2PA_GIF`` before the
first image. BMP and PPM cannot carry C2PA.

Walks are lenient: they stop, keeping what they found, where the structure ends or stops making
sense (a truncated file, a length past the end, more than ``MAX_STEPS`` boxes); the pixel decoder
reports damaged files. The caller's file position is not restored here (see ``read_metadata_evidence``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

MAX_STEPS = 1 << 18
"""Most segments, chunks or boxes walked in one file (a 2 GB PNG of 8 kB IDAT chunks has 250 000)."""
MAX_TEXT_CHUNKS = 1024
"""Most PNG text and EXIF chunks kept; the reader reports a file with more as too large."""

C2PA_MIME: dict[str, str] = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "HEIF": "image/heic",
    "GIF": "image/gif",
}
"""The MIME type the C2PA library reads each Pillow format as; other formats cannot carry C2PA."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"comf"}
_C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
_TIFF_C2PA_TAG = 52545
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


@dataclass(frozen=True)
class Chunk:
    """One PNG chunk's type and where its data starts and ends."""

    tag: str
    offset: int
    length: int


@dataclass(frozen=True)
class Layout:
    """What the walk found: embedded C2PA bytes (0 for none) and, for PNG, the text and EXIF chunks."""

    c2pa_bytes: int = 0
    png_chunks: tuple[Chunk, ...] = ()
    png_chunks_dropped: bool = False


def _read(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def _jpeg(handle: BinaryIO) -> Layout:
    if _read(handle, 0, 2) != b"\xff\xd8":
        return Layout()
    pos, total = 2, 0
    for _ in range(MAX_STEPS):
        head = _read(handle, pos, 4)
        if len(head) < 2 or head[0] != 0xFF:
            break
        marker = head[1]
        if marker == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA) or len(head) < 4:  # image data or the end: no more APP segments
            break
        length = int.from_bytes(head[2:4], "big")
        if length < 2:
            break
        if marker == 0xEB and _read(handle, pos + 4, 2) == b"JP":
            total += length - 2
        pos += 2 + length
    return Layout(c2pa_bytes=total)


def _png(handle: BinaryIO) -> Layout:
    if _read(handle, 0, 8) != _PNG_SIGNATURE:
        return Layout()
    pos, total, chunks, dropped = 8, 0, [], False
    for _ in range(MAX_STEPS):
        head = _read(handle, pos, 8)
        if len(head) < 8:
            break
        length, tag = int.from_bytes(head[:4], "big"), head[4:]
        if length > 0x7FFFFFFF:
            break
        if tag == b"caBX":
            total += length
        elif tag in _PNG_TEXT:
            if len(chunks) < MAX_TEXT_CHUNKS:
                chunks.append(Chunk(tag.decode("ascii"), pos + 8, length))
            else:
                dropped = True
        elif tag == b"IEND":
            break
        pos += 12 + length
    return Layout(c2pa_bytes=total, png_chunks=tuple(chunks), png_chunks_dropped=dropped)


def _webp(handle: BinaryIO) -> Layout:
    head = _read(handle, 0, 12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WEBP":
        return Layout()
    pos, total = 12, 0
    for _ in range(MAX_STEPS):
        chunk = _read(handle, pos, 8)
        if len(chunk) < 8:
            break
        size = int.from_bytes(chunk[4:], "little")
        if chunk[:4] == b"C2PA":
            total += size
        pos += 8 + size + (size & 1)
    return Layout(c2pa_bytes=total)


def _bmff(handle: BinaryIO) -> Layout:
    end = handle.seek(0, os.SEEK_END)
    pos, total = 0, 0
    for _ in range(MAX_STEPS):
        head = _read(handle, pos, 8)
        if len(head) < 8:
            break
        size, kind, header = int.from_bytes(head[:4], "big"), head[4:], 8
        if size == 1:
            large = _read(handle, pos + 8, 8)
            if len(large) < 8:
                break
            size, header = int.from_bytes(large, "big"), 16
        elif size == 0:
            size = end - pos
        if size < header:
            break
        if kind == b"uuid" and size >= header + 16 and _read(handle, pos + header, 16) == _C2PA_UUID:
            total += size - header - 16
        pos += size
    return Layout(c2pa_bytes=total)


def _tiff(handle: BinaryIO) -> Layout:
    head = _read(handle, 0, 8)
    if head[:4] not in (b"II*\x00", b"MM\x00*"):
        return Layout()  # BigTIFF and others: C2PA is only looked for in classic TIFF
    order = "little" if head[:2] == b"II" else "big"
    ifd = int.from_bytes(head[4:8], order)
    count_bytes = _read(handle, ifd, 2)
    if len(count_bytes) < 2:
        return Layout()
    count = int.from_bytes(count_bytes, order)
    entries = _read(handle, ifd + 2, 12 * count)
    for i in range(len(entries) // 12):
        entry = entries[12 * i : 12 * i + 12]
        if int.from_bytes(entry[:2], order) == _TIFF_C2PA_TAG:
            kind = int.from_bytes(entry[2:4], order)
            return Layout(c2pa_bytes=_TIFF_TYPE_SIZES.get(kind, 1) * int.from_bytes(entry[4:8], order))
    return Layout()


def _gif_blocks(handle: BinaryIO, pos: int) -> tuple[int, int]:
    """Skip a run of GIF sub-blocks from ``pos``: (bytes of data, position after the terminator)."""
    total = 0
    for _ in range(MAX_STEPS):
        size = _read(handle, pos, 1)
        if not size or size[0] == 0:
            return total, pos + 1
        total += size[0]
        pos += 1 + size[0]
    return total, pos


def _gif(handle: BinaryIO) -> Layout:
    head = _read(handle, 0, 13)
    if len(head) < 13 or head[:3] != b"GIF":
        return Layout()
    pos = 13 + (3 << ((head[10] & 7) + 1) if head[10] & 0x80 else 0)
    total = 0
    for _ in range(MAX_STEPS):
        intro = _read(handle, pos, 2)
        if len(intro) < 2 or intro[0] != 0x21:  # an image descriptor, the trailer or damage: stop
            break
        if intro[1] == 0xFF and _read(handle, pos + 2, 9) == b"\x0bC2PA_GIF":
            size, pos = _gif_blocks(handle, pos + 14)
            total += size
        else:
            _, pos = _gif_blocks(handle, pos + 2)
    return Layout(c2pa_bytes=total)


_WALKERS = {"JPEG": _jpeg, "MPO": _jpeg, "PNG": _png, "WEBP": _webp, "AVIF": _bmff, "HEIF": _bmff, "TIFF": _tiff, "GIF": _gif}


def scan_layout(handle: BinaryIO, image_format: str | None) -> Layout:
    """Walk the container of a file Pillow identified as ``image_format`` (BMP, PPM: nothing to find)."""
    walker = _WALKERS.get(image_format or "")
    return walker(handle) if walker else Layout()
