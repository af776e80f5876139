"""A PNG read without the text chunks before its image data, for files whose text Pillow refuses.

Pillow will not open a PNG whose zTXt or iTXt chunk inflates past ``PngImagePlugin.MAX_TEXT_CHUNK``,
or whose text adds up past ``MAX_TEXT_MEMORY``, although browsers show its pixels: a cheap way to
keep an image from being scored. Its pixels are decoded through a view of the file that leaves
those chunks out (Pillow's own limits stay as they are, so decoding stays bounded); the evidence
readers read the chunks from the real file, with their own caps, and report what they cannot read.
"""

from __future__ import annotations

import bisect
import io
import struct
from typing import BinaryIO

TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_IMAGE_START = frozenset({b"IDAT", b"fdAT", b"IEND"})
_SIGNATURE = 8
MAX_CHUNKS = 100_000
"""Chunks walked at most before the image data; a file with more keeps Pillow's refusal."""


def is_text_limit(exc: BaseException) -> bool:
    """Whether Pillow refused a PNG for its text chunks alone."""
    text = str(exc)
    return isinstance(exc, ValueError) and ("MAX_TEXT_CHUNK" in text or "MAX_TEXT_MEMORY" in text)


class _KeptRanges(io.RawIOBase):
    """The bytes of ``handle`` in ``ranges`` (start, end), read as one seekable stream."""

    def __init__(self, handle: BinaryIO, ranges: list[tuple[int, int]]) -> None:
        super().__init__()
        self._handle = handle
        self._ranges = ranges
        self._starts: list[int] = []
        total = 0
        for start, end in ranges:
            self._starts.append(total)
            total += end - start
        self._size = total
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._size:
            return 0
        index = bisect.bisect_right(self._starts, self._pos) - 1
        start, end = self._ranges[index]
        source = start + self._pos - self._starts[index]
        self._handle.seek(source)
        data = self._handle.read(min(len(buffer), end - source))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def without_text(handle: BinaryIO) -> BinaryIO | None:
    """A view of the PNG in ``handle`` without the text chunks that precede its image data, or None
    when there are none to leave out (or more than ``MAX_CHUNKS`` chunks to walk)."""
    size = handle.seek(0, io.SEEK_END)
    skipped: list[tuple[int, int]] = []
    position = _SIGNATURE
    for _ in range(MAX_CHUNKS):
        handle.seek(position)
        header = handle.read(8)
        if len(header) < 8:
            break
        length, tag = struct.unpack(">I4s", header)
        if tag in _IMAGE_START:
            break
        end = position + 12 + length
        if tag in TEXT_CHUNKS:
            skipped.append((position, min(end, size)))
        position = end
    else:
        return None
    if not skipped:
        return None
    kept, start = [], 0
    for skip_start, skip_end in skipped:
        kept.append((start, skip_start))
        start = skip_end
    kept.append((start, size))
    return io.BufferedReader(_KeptRanges(handle, [(a, b) for a, b in kept if b > a]))
