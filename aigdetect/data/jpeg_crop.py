"""Cut the centre of a large JPEG losslessly, so that only that part is decoded.

The evaluation protocol scores a 224-pixel centre crop at native resolution, so a 12-megapixel photo
spends almost all of its decode time on pixels nobody looks at. A lossless crop (libjpeg-turbo's
``jpegtran -crop``, through the optional ``turbojpeg`` package) copies the DCT coefficients of the
centre blocks into a small JPEG; decoding that gives the same samples as a full decode, except
within one MCU of the cut, where chroma upsampling lacks its neighbours. Cutting a margin of
``MARGIN`` pixels around the wanted crop keeps that zone out of it, so the crop stays bit-identical
to the full decode's, which a forensic detector needs (unlike Pillow's ``draft()``, which rescales).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from .crops import center_origin
from .plain_jpeg import frame_components

try:
    import turbojpeg
except ImportError:
    turbojpeg = None

AVAILABLE = turbojpeg is not None
"""Whether the optional ``turbojpeg`` package is installed (``pip install 'aigdetect[fast-jpeg]'``)."""

ALIGN = 32
"""Cut positions are multiples of this: the largest MCU side of any chroma subsampling (4:1:1)."""

MARGIN = ALIGN
"""Pixels kept on each side of the wanted crop: at least one MCU, whatever the subsampling."""

MIN_AREA_FACTOR = 8
"""Cut only images of at least this many times the crop's area: below it (about 600 x 600 for a
224 crop), decoding everything is as fast as entropy-decoding everything and cutting."""

MARKER_ALLOWANCE = 16 << 20
"""Bytes of marker segments (EXIF, XMP, ICC profiles) a JPEG may carry besides its coded samples."""

_HUFFMAN_8BIT = {(0xC0, 8), (0xC1, 8), (0xC2, 8)}
_CHUNK = 1 << 20
_SOS, _EOI = 0xDA, 0xD9


@dataclass(frozen=True)
class CenterCut:
    """A small JPEG holding the wanted crop at (top, left)."""

    jpeg: bytes
    top: int
    left: int


def cut_window(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the aligned window around the centre crop, with ``MARGIN`` on each side
    unless the image edge comes first (the edge is the same in both decodes)."""
    top, left = center_origin(height, width, size)
    x0 = max(0, (left - MARGIN) // ALIGN * ALIGN)
    y0 = max(0, (top - MARGIN) // ALIGN * ALIGN)
    x1 = min(width, left + size + MARGIN)
    y1 = min(height, top + size + MARGIN)
    return x0, y0, x1 - x0, y1 - y0


def read_limit(width: int, height: int) -> int:
    """The most bytes of a JPEG's first image that are read for a cut: twice its raw 8-bit RGB size
    (Huffman coding at quality 100 of pure noise takes about 1.4 times) plus ``MARKER_ALLOWANCE``."""
    return 6 * width * height + MARKER_ALLOWANCE


class _Reader:
    """The bytes of a handle read so far, read on demand in chunks and never beyond ``limit``."""

    def __init__(self, handle: BinaryIO, limit: int) -> None:
        self.handle = handle
        self.limit = limit
        self.data = bytearray()

    def has(self, end: int) -> bool:
        """Whether bytes up to ``end`` are (now) read; False at the end of the file or past the limit."""
        while len(self.data) < end:
            if end > self.limit:
                return False
            chunk = self.handle.read(min(max(_CHUNK, end - len(self.data)), self.limit - len(self.data)))
            if not chunk:
                return False
            self.data += chunk
        return True


def _scan_end(reader: _Reader, pos: int) -> int | None:
    """Where the entropy-coded data starting at ``pos`` ends: the next marker other than a stuffed
    0xFF00 or a restart marker (0xFFD0-0xFFD7); 0xFF fill bytes before a marker are skipped."""
    while True:
        found = reader.data.find(b"\xff", pos)
        if found < 0:
            pos = len(reader.data)
            if not reader.has(pos + 1):
                return None
            continue
        if not reader.has(found + 2):
            return None
        following = reader.data[found + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos = found + 2
        elif following == 0xFF:
            pos = found + 1
        else:
            return found


def read_first_image(handle: BinaryIO, limit: int) -> bytes | None:
    """The first JPEG image of ``handle`` (from SOI through its EOI), read no further than needed.

    Bytes after the EOI (the other frames of an MPO, padding, appended data) are never read. None
    when the image is longer than ``limit`` or its markers cannot be followed: the caller then
    decodes the file whole, which decides how such a file fails.
    """
    reader = _Reader(handle, limit)
    if not reader.has(2) or reader.data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while reader.has(pos + 2):
        if reader.data[pos] != 0xFF:
            return None
        marker = reader.data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker == _EOI:
            return bytes(reader.data[: pos + 2])
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
        else:
            if not reader.has(pos + 4):
                return None
            length = int.from_bytes(reader.data[pos + 2 : pos + 4], "big")
            if length < 2 or not reader.has(pos + 2 + length):
                return None
            pos += 2 + length
            if marker == _SOS:
                end = _scan_end(reader, pos)
                if end is None:
                    return None
                pos = end
    return None


def worth_cutting(width: int, height: int, size: int) -> bool:
    return AVAILABLE and min(width, height) >= size and width * height >= MIN_AREA_FACTOR * size * size


def cut_center(data: bytes, width: int, height: int, size: int) -> CenterCut | None:
    """The centre window of a JPEG as a small JPEG, or None when the file should be decoded whole.

    Callers check ``worth_cutting`` first, before they read the file. None covers any file that
    libjpeg-turbo reports trouble with (even a warning), and any coding but 8-bit Huffman
    (baseline, extended or progressive): the cut is written Huffman-coded, so an arithmetic-coded
    file that Pillow cannot decode would otherwise come out decodable. The full decode then decides,
    exactly as it would without this shortcut, whether the file can be read.
    """
    frame = frame_components(data)
    if frame is None or frame[:2] not in _HUFFMAN_8BIT:
        return None
    x, y, w, h = cut_window(width, height, size)
    try:
        cut = turbojpeg.transform(data, x=x, y=y, w=w, h=h, crop=True)
    except (RuntimeError, ValueError):
        return None
    top, left = center_origin(height, width, size)
    return CenterCut(cut, top - y, left - x)
