"""JPEG decoding in batches where the model runs (nvJPEG on CUDA), with the CPU decode as each file's fallback.

A 12-megapixel photo costs a CPU core about 140 ms to decode whole, and the detector reads only its
224-pixel centre. With ``gpu_decode``, decode workers hand over the bytes of plain JPEGs
(``plain_jpeg``), and the scanning process decodes a whole batch of them in one call and crops on
the device (``decode_centers``). A file the batched decoder rejects or warns about comes back as
``Refused``, with the reason, and is decoded on the CPU; the scan counts these fallbacks.

nvJPEG's inverse DCT and chroma upsampling are not libjpeg-turbo's, so its pixels can differ by a
few levels; on the CPU, ``decode_jpeg`` runs libjpeg-turbo and its crops equal Pillow's.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .crops import center_origin
from .plain_jpeg import JpegFile

DECODE_PIXELS = 1 << 28
"""Pixels decoded in one call at most (768 MiB of RGB): a batch of 100-megapixel files is split."""

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


@dataclass(frozen=True)
class Refused:
    """A file the batched decoder rejected or warned about: it is decoded on the CPU instead, and the
    scan counts it (``gpu_decode_fallbacks``) with this reason."""

    reason: str


def _decode(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor] | Refused:
    """decode_jpeg on a list, or why it could not be trusted (it raised or warned)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 deprecates its image codecs
        try:
            images = decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
        except RuntimeError as exc:
            return Refused(_first_line(str(exc)))
    return Refused(_first_line(str(caught[0].message))) if caught else images


def _first_line(text: str) -> str:
    """The message without torchvision's source location: what a summary can show."""
    line = (text.strip().splitlines() or ["no message"])[0]
    return re.sub(r"^.*?\.(?:cpp|cu):\d+,\s*", "", line)[:200]


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


def decode_centers(files: Sequence[JpegFile], size: int, device: torch.device) -> list[torch.Tensor | Refused]:
    """The size x size centre crop, uint8 (3, size, size) on ``device``, of each JPEG, decoded in
    batches of at most ``DECODE_PIXELS``; ``Refused`` for a file the decoder rejected or warned about
    (a bad file costs its batch one more decode per file, to find it).
    """
    crops: list[torch.Tensor | Refused] = []
    for group in _groups(files):
        tensors = [torch.frombuffer(bytearray(files[i].data), dtype=torch.uint8) for i in group]
        images = _decode(tensors, device)
        if isinstance(images, Refused):
            images = [_one(tensor, device) for tensor in tensors]
        crops += [image if isinstance(image, Refused) else center_crop_chw(image, size).clone() for image in images]
    return crops


def _one(data: torch.Tensor, device: torch.device) -> torch.Tensor | Refused:
    decoded = _decode([data], device)
    return decoded if isinstance(decoded, Refused) else decoded[0]
