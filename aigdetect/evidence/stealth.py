"""Generation parameters hidden in the pixels' lowest bits: AUTOMATIC1111's "stealth" PNG info, and NovelAI's.

The sd-webui-stealth-pnginfo extension writes the ``parameters`` text into the least significant bit
of each pixel, so that it survives sites that strip text chunks; NovelAI writes its own metadata the
same way. The layout, read here from scratch:

- bits run column by column (x outer, y inner) from the top-left pixel, most significant bit of
  each byte first;
- in the alpha channel, one bit per pixel (signatures ``stealth_pnginfo``, ``stealth_pngcomp``), or in
  red, green and blue, three bits per pixel in that order (``stealth_rgbinfo``, ``stealth_rgbcomp``);
- 15 bytes of signature, a 32-bit big-endian count of the payload's *bits*, then the payload: UTF-8
  text, gzip-compressed for the ``...comp`` signatures. A1111 stores the ``parameters`` text; NovelAI a
  JSON object of its text chunks (``Comment``, ``Software``...), read here as those chunks.

Only lossless PNG keeps the bits. The check decodes just the rows that hold the header (an image of
that height is allocated, not the whole picture); the full decode follows only when a signature is
there, within ``MAX_PIXELS``, and the payload is capped before it is read and again when inflated.
An interlaced PNG cannot be decoded in part and is not checked: the extension and NovelAI save
through Pillow, which never interlaces.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image

from .boundedjson import loads
from .config import EvidenceConfig
from .findings import Finding, MetadataError
from .pngtext import inflate, text_findings

if TYPE_CHECKING:
    import numpy as np

SIGNATURES: dict[bytes, tuple[str, bool]] = {
    b"stealth_pnginfo": ("alpha", False),
    b"stealth_pngcomp": ("alpha", True),
    b"stealth_rgbinfo": ("rgb", False),
    b"stealth_rgbcomp": ("rgb", True),
}
"""Signature -> (channels, gzip-compressed)."""
SIGNATURE_BYTES = 15
HEADER_BITS = 8 * SIGNATURE_BYTES + 32
MAX_PIXELS = 64_000_000
"""Largest image decoded whole to read a payload whose signature was found (a 256 MB RGBA buffer)."""
_CHANNELS = {"alpha": slice(3, 4), "rgb": slice(0, 3)}


def _bits(pixels: np.ndarray, channels: str, count: int) -> np.ndarray:
    """The first ``count`` low bits in stealth order (column by column; red, green, blue within a pixel)."""
    height = pixels.shape[0]
    per_pixel = 3 if channels == "rgb" else 1
    columns = min(pixels.shape[1], math.ceil(count / (per_pixel * height)))
    block = pixels[:, :columns, _CHANNELS[channels]] & 1
    return block.transpose(1, 0, 2).reshape(-1)[:count]


def _bytes(bits: np.ndarray) -> bytes:
    import numpy as np

    return np.packbits(bits.astype(np.uint8)).tobytes()


def _decode(handle: BinaryIO, rows: int | None) -> np.ndarray | None:
    """The PNG's pixels as RGBA or RGB; with ``rows``, only that many top rows (None when the file's
    layout does not allow decoding part of it)."""
    import numpy as np

    handle.seek(0)
    with Image.open(handle, formats=["PNG"]) as image:
        if rows is not None:
            if len(image.tile) != 1:
                return None
            tile = image.tile[0]
            width = image.size[0]
            image._size = (width, rows)  # decode, and allocate, just the rows that hold the header
            image.tile = [(tile[0], (0, 0, width, rows), *tile[2:])]
        image.load_end = lambda: None  # the chunks after the pixels are pngtext's, read under its caps
        image.load()
        return np.asarray(image)


def _header(pixels: np.ndarray) -> tuple[bytes, str, bool, int] | None:
    """(signature, channels, compressed, payload bits) when the pixels start with a stealth header."""
    for channels in ("alpha", "rgb") if pixels.shape[2] == 4 else ("rgb",):
        bits = _bits(pixels, channels, HEADER_BITS)
        if bits.size < HEADER_BITS:
            continue
        signature = _bytes(bits[: 8 * SIGNATURE_BYTES])
        if SIGNATURES.get(signature, ("",))[0] == channels:
            return signature, channels, SIGNATURES[signature][1], int.from_bytes(_bytes(bits[8 * SIGNATURE_BYTES :]), "big")
    return None


def read_stealth(handle: BinaryIO, image: Image.Image, config: EvidenceConfig) -> tuple[str, str] | None:
    """(signature, payload text) of a PNG's stealth parameters, or None when it carries none.

    Raises:
        MetadataError: ``too-large`` for a payload over ``config.max_text_chunk_bytes`` (before or after
            inflating) or an image over ``MAX_PIXELS``; ``malformed`` for a truncated or broken payload.
    """
    if image.format != "PNG" or image.mode not in ("RGBA", "RGB"):
        return None
    width, height = image.size
    if image.info.get("interlace"):
        return None
    pixels = _decode(handle, min(height, HEADER_BITS))
    found = _header(pixels) if pixels is not None else None
    if found is None:
        return None
    signature, channels, compressed, length = found
    name = signature.decode("ascii")
    cap = config.max_text_chunk_bytes
    if length // 8 > cap:
        raise MetadataError("too-large", f"{name} payload of {length} bits exceeds {8 * cap}")
    if length % 8:
        raise MetadataError("malformed", f"{name} payload of {length} bits is not whole bytes")
    available = width * height * (3 if channels == "rgb" else 1) - HEADER_BITS
    if length > available:
        raise MetadataError("malformed", f"{name} payload of {length} bits is longer than the image holds ({available})")
    if width * height > MAX_PIXELS:
        raise MetadataError("too-large", f"{name} in an image of {width}x{height} pixels, more than {MAX_PIXELS} (not read)")
    payload = _bytes(_bits(_decode(handle, None), channels, HEADER_BITS + length)[HEADER_BITS:])
    if compressed:
        payload = inflate(payload, cap, f"{name} payload", gzip=True)
    return name, payload.decode("utf-8", "replace")


def stealth_texts(text: str, config: EvidenceConfig) -> list[tuple[str, str]]:
    """The payload as text chunks: NovelAI's JSON object of chunks, or else A1111's ``parameters`` text."""
    if text.lstrip().startswith("{"):
        try:
            data = loads(text, what="stealth payload", max_chars=config.max_text_chunk_bytes, max_depth=config.max_json_depth)
        except MetadataError:
            data = None
        if isinstance(data, dict) and data and all(isinstance(k, str) for k in data):
            return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in data.items()]
    return [("parameters", text)]


def stealth_findings(handle: BinaryIO, image: Image.Image, config: EvidenceConfig) -> list[Finding]:
    """Findings from a PNG's stealth parameters, read as the text chunks they stand for; none without them."""
    found = read_stealth(handle, image, config)
    if found is None:
        return []
    signature, text = found
    return text_findings(stealth_texts(text, config), config, where=f"PNG stealth data ({signature})")
