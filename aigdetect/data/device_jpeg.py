"""JPEG decoding in batches where the model runs (nvJPEG on CUDA), with the CPU decode as each file's fallback.

A 12-megapixel photo costs a CPU core about 140 ms to decode whole, and the detector reads only its
224-pixel centre. With ``gpu_decode``, decode workers only read the bytes of the JPEGs that a
batched ``torchvision.io.decode_jpeg`` can take (``read_jpeg``), and the scanning process decodes a
whole batch of them in one call and crops on the device (``decode_centers``). Everything else goes
through the ordinary CPU decode, which also gives every error its usual reason:
- files that are not plain JPEGs, CMYK and YCCK files, 12-bit and arithmetic-coded files;
- files whose three components are stored as RGB (an Adobe marker with no transform, or component
  ids R, G, B), which nvJPEG would read as YCbCr;
- files that do not end with the end-of-image marker (truncated, or carrying data after it), so
  a truncated file fails exactly as Pillow fails it instead of being padded by another decoder;
- files over ``MAX_BYTES``, so that what a worker sends through its pipe stays bounded;
- files that the batched decoder rejects or warns about (``decode_centers`` returns None for them).

nvJPEG's inverse DCT and chroma upsampling are not libjpeg-turbo's, so its pixels can differ by a
few levels; on the CPU, ``decode_jpeg`` runs libjpeg-turbo and its crops equal Pillow's.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from ..errors import InputFileError
from ..fileio import open_input, read_capped
from .images import open_image
from .transforms import center_origin

MAX_BYTES = 48 * 1024 * 1024
"""Larger JPEGs are decoded by their worker: a 12-megapixel photo at quality 95 is about 8 MB."""

DECODE_PIXELS = 1 << 28
"""Pixels decoded in one call at most (768 MiB of RGB): a batch of 100-megapixel files is split."""

_DEVICE_CODINGS = (0xC0, 0xC1, 0xC2)
"""Baseline, extended and progressive Huffman coding: what both nvJPEG and libjpeg-turbo decode."""
_RGB_COMPONENT_IDS = (0x52, 0x47, 0x42)
_HEADER_TROUBLE = (OSError, ValueError, EOFError, InputFileError, Image.DecompressionBombError)


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


def read_jpeg(path: str | os.PathLike[str], max_pixels: int) -> JpegFile | None:
    """The file's bytes when the device can decode it, else None: the caller then decodes it on the
    CPU, which reports any trouble met here with its usual reason."""
    try:
        handle, info = open_input(path, follow_symlinks=True)
        with handle, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if info.st_size > MAX_BYTES:
                return None
            with open_image(handle) as image:
                width, height = image.size
                if image.format != "JPEG" or image.mode not in ("RGB", "L") or width * height > max_pixels:
                    return None
                adobe_transform = image.info.get("adobe_transform") if "adobe" in image.info else None
                mode = image.mode
            handle.seek(0)
            data = read_capped(handle, MAX_BYTES, os.fsdecode(path))
    except _HEADER_TROUBLE:
        return None
    if not device_decodable(data, adobe_transform):
        return None
    return JpegFile(data, width, height, "JPEG", mode)


def center_crop_chw(image: torch.Tensor, size: int) -> torch.Tensor:
    """(C, H, W) -> (C, size, size) centre crop, zero-padded when smaller: ``transforms.center_crop``
    on channel-first tensors, on any device."""
    height, width = image.shape[-2:]
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    if pad_h or pad_w:
        image = torch.nn.functional.pad(image, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        height, width = image.shape[-2:]
    top, left = center_origin(height, width, size)
    return image[:, top : top + size, left : left + size]


def _decode(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor] | None:
    """decode_jpeg on a list, or None when it raises or warns."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 deprecates its image codecs
        try:
            images = decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            return None
    return None if caught else images


def _groups(files: Sequence[JpegFile]) -> list[list[int]]:
    """Consecutive indices whose decoded images fit ``DECODE_PIXELS`` together (one at least)."""
    groups: list[list[int]] = []
    total = 0
    for index, file in enumerate(files):
        pixels = file.width * file.height
        if not groups or total + pixels > DECODE_PIXELS:
            groups.append([])
            total = 0
        groups[-1].append(index)
        total += pixels
    return groups


def decode_centers(files: Sequence[JpegFile], size: int, device: torch.device) -> list[torch.Tensor | None]:
    """The size x size centre crop, uint8 (3, size, size) on ``device``, of each JPEG, decoded in
    batches of at most ``DECODE_PIXELS``; None for a file the decoder rejected or warned about (a bad
    file costs its batch one more decode per file, to find it).
    """
    crops: list[torch.Tensor | None] = []
    for group in _groups(files):
        tensors = [torch.frombuffer(bytearray(files[i].data), dtype=torch.uint8) for i in group]
        images: list[torch.Tensor | None] | None = _decode(tensors, device)
        if images is None:
            images = [(_decode([tensor], device) or [None])[0] for tensor in tensors]
        crops += [None if image is None else center_crop_chw(image, size).clone() for image in images]
    return crops
