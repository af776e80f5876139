"""Which JPEGs a batched device decoder reads exactly as the CPU does, and their bytes for it.

With ``gpu_decode``, a decode worker reads the facts and evidence of a file as usual, but instead
of decoding a plain JPEG it hands over its bytes (``jpeg_payload``); the scanning process decodes
them in batches where the model runs (``device_jpeg``). Everything else goes through the ordinary
CPU decode, which also gives every error its usual reason:
- files that are not plain JPEGs, CMYK and YCCK files, 12-bit and arithmetic-coded files;
- files whose three components are stored as RGB (an Adobe marker with no transform, or component
  ids R, G, B), which nvJPEG would read as YCbCr;
- files that do not end with the end-of-image marker (truncated, or carrying data after it), so
  a truncated file fails exactly as Pillow fails it instead of being padded by another decoder;
- files over ``MAX_BYTES``, so that what a worker sends through its pipe stays bounded.

Torch-free: decode workers import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from ..errors import InputFileError
from ..fileio import read_capped

MAX_BYTES = 48 * 1024 * 1024
"""Larger JPEGs are decoded by their worker: a 12-megapixel photo at quality 95 is about 8 MB."""

_DEVICE_CODINGS = (0xC0, 0xC1, 0xC2)
"""Baseline, extended and progressive Huffman coding: what both nvJPEG and libjpeg-turbo decode."""
_RGB_COMPONENT_IDS = (0x52, 0x47, 0x42)
_READ_TROUBLE = (OSError, InputFileError)


@dataclass(frozen=True)
class JpegFile:
    """The bytes of a JPEG to decode on the device, and what the scan report says about the file."""

    data: bytes
    width: int
    height: int
    format: str
    mode: str


def frame_components(data: bytes) -> tuple[int, int, tuple[int, ...]] | None:
    """(SOFn marker, sample precision, component ids) of a JPEG, from its marker segments; None when
    the bytes are not a JPEG or end before the frame header."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            count = data[pos + 9] if pos + 9 < len(data) else 0
            ids = tuple(data[pos + 10 + 3 * i] for i in range(count) if pos + 10 + 3 * i < len(data))
            return marker, data[pos + 4], ids
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def device_decodable(data: bytes, adobe_transform: int | None) -> bool:
    """Whether a batched device decode gives this file's pixels as the CPU decode does (module docstring)."""
    frame = frame_components(data)
    if frame is None or not data.endswith(b"\xff\xd9"):
        return False
    marker, precision, ids = frame
    if marker not in _DEVICE_CODINGS or precision != 8 or len(ids) not in (1, 3):
        return False
    return not (len(ids) == 3 and (adobe_transform == 0 or ids == _RGB_COMPONENT_IDS))


def jpeg_payload(handle: BinaryIO, image: Image.Image, file_size: int, max_pixels: int, name: str) -> JpegFile | None:
    """The bytes of an opened file when the device can decode it, else None: the caller then decodes
    it on the CPU, which reports any trouble met here with its usual reason.

    ``image`` is the file opened by Pillow (header read, pixels not); the handle's position is
    left at its end.
    """
    width, height = image.size
    if file_size > MAX_BYTES or image.format != "JPEG" or image.mode not in ("RGB", "L") or width * height > max_pixels:
        return None
    adobe_transform = image.info.get("adobe_transform") if "adobe" in image.info else None
    try:
        handle.seek(0)
        data = read_capped(handle, MAX_BYTES, name)
    except _READ_TROUBLE:
        return None
    if not device_decodable(data, adobe_transform):
        return None
    return JpegFile(data, width, height, "JPEG", image.mode)
