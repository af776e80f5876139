"""Invisible watermarks that open generators embed: decoded from the pixels, reported only when found.

Two messages are known (``watermark`` rows of the signature table), both embedded with
invisible-watermark's ``dwtDct`` method: the Stable Diffusion v1 reference scripts' bytes
``StableDiffusionV1`` and diffusers' 48-bit SDXL message. A missing watermark is never evidence of
anything (most generators embed none, and resizing or recompression erases these), so an unmarked
image gives no finding at all.

**Decision rule.** A message counts as found when at least ``MIN_BIT_AGREEMENT`` (90 %) of its bits
agree. Random bits agree half the time, so for the 48-bit message 44 or more agreeing bits happen by
chance with probability below 1e-9 (binomial tail), and for the 136-bit message far less. A marked
image saved losslessly decodes at 95 to 100 %; so does a JPEG without chroma subsampling (4:4:4, quality
90). Ordinary JPEG recompression with 4:2:0 chroma subsampling erases the mark even at quality 95:
the message lives in the colour-difference channel that subsampling halves.

**Decoding.** The decoder is invisible-watermark's ``dwtDct`` decoder, vectorised: the same
colour conversion (OpenCV's YUV), the same Haar approximation band, then every 4x4 block at once
with numpy instead of a Python loop per block: a 12-megapixel photo takes about a second for both
messages and both channel orders, where the reference decoder takes several seconds per message. A test checks it against the reference
decoder bit for bit. The pixels are tried in OpenCV's BGR order (as the reference scripts and current
diffusers embed) and in RGB order (older diffusers releases passed RGB arrays straight to the encoder).

Only available with the optional ``invisible-watermark`` package (``pip install aigdetect[watermarks]``),
which brings OpenCV; without it ``read_watermark_evidence`` returns no findings.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from . import signatures
from .config import EvidenceConfig
from .findings import Finding

if TYPE_CHECKING:
    import numpy as np

WATERMARKS_AVAILABLE: bool = all(importlib.util.find_spec(name) is not None for name in ("imwatermark", "cv2"))
"""Whether the optional invisible-watermark package (and the OpenCV it brings) can be imported."""
MIN_BIT_AGREEMENT = 0.9
MIN_PIXELS = 256 * 256
"""invisible-watermark refuses to embed into (or decode) smaller images."""
_SCALE = 36.0  # the U channel's quantisation step in invisible-watermark's dwtDct
_BLOCK = 4
_HAAR = 0.7071067811865476  # pywt's Haar decomposition low-pass taps, both equal to this


def block_scores(pixels: np.ndarray, order: str = "BGR") -> np.ndarray:
    """One 0/1 score per 4x4 block of the U channel's Haar approximation, in the reference's block order.

    ``order`` says how to read the channels: ``BGR`` as invisible-watermark does (an OpenCV array),
    ``RGB`` for an RGB array read the same way without a flipped copy. Equals what
    ``imwatermark.maxDct.EmbedMaxDct`` computes block by block: the value of largest magnitude
    (the block's first value aside; despite the method's name the reference quantises the wavelet
    coefficients themselves), and whether that magnitude modulo the scale falls in the upper half.
    The Haar approximation is computed with pywt's operations in pywt's order, so it is bit-identical.
    """
    import cv2
    import numpy as np

    rows, cols = pixels.shape[0] // 4 * 4, pixels.shape[1] // 4 * 4
    code = cv2.COLOR_BGR2YUV if order == "BGR" else cv2.COLOR_RGB2YUV
    u = cv2.cvtColor(np.ascontiguousarray(pixels), code)[:rows, :cols, 1].astype(np.float64)
    half = u[0::2] * _HAAR + u[1::2] * _HAAR
    approx = half[:, 0::2] * _HAAR + half[:, 1::2] * _HAAR
    brows, bcols = approx.shape[0] // _BLOCK, approx.shape[1] // _BLOCK
    blocks = approx[: brows * _BLOCK, : bcols * _BLOCK].reshape(brows, _BLOCK, bcols, _BLOCK).swapaxes(1, 2)
    magnitudes = np.abs(blocks.reshape(brows * bcols, _BLOCK * _BLOCK)[:, 1:])
    strongest = magnitudes[np.arange(len(magnitudes)), np.argmax(magnitudes, axis=1)]
    return (strongest % _SCALE > 0.5 * _SCALE).astype(np.float64)


def decode_bits(scores: np.ndarray, length: int) -> np.ndarray:
    """The message bits: block ``i`` votes for bit ``i mod length``; a bit is 1 when most votes say so."""
    import numpy as np

    sums = np.bincount(np.arange(len(scores)) % length, weights=scores, minlength=length)
    counts = np.bincount(np.arange(len(scores)) % length, minlength=length)
    means = np.divide(sums, counts, out=np.zeros(length), where=counts > 0)
    return means * 255 > 127


def read_watermark_evidence(rgb: np.ndarray, config: EvidenceConfig) -> list[Finding]:
    """Findings for the known watermarks decoded from an (H, W, 3) uint8 RGB image; none when unmarked.

    Returns no findings when watermarks are off in ``config``, the package is not installed, or the
    image is smaller than 256x256 pixels.
    """
    if not (config.watermarks and WATERMARKS_AVAILABLE) or rgb.ndim != 3 or rgb.shape[0] * rgb.shape[1] < MIN_PIXELS:
        return []
    import numpy as np

    orders = {"BGR": block_scores(rgb, "RGB"), "RGB": block_scores(rgb, "BGR")}  # as meant; as older diffusers did
    findings = []
    for row in signatures.of_kind("watermark"):
        expected = np.array(row.bits(), dtype=bool)
        agreement, order = max((float(np.mean(decode_bits(s, len(expected)) == expected)), o) for o, s in orders.items())
        if agreement >= MIN_BIT_AGREEMENT:
            agreed = round(agreement * len(expected))
            legacy = "" if order == "BGR" else ", RGB channel order of older diffusers"
            message = repr(row.pattern) if row.encoding == "bytes" else f"{len(expected)}-bit message"
            detail = f"invisible watermark of {row.generator} decoded: {agreed}/{len(expected)} bits of its {message} agree"
            detail += f" (dwtDct{legacy})"
            findings.append(Finding.make("watermark", "ai", "strong", detail, row.generator))
    return findings
