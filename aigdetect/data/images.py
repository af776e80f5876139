"""The one place where image files are opened: safe decoding to an RGB uint8 array.

Every failure becomes an ``ImageDecodeError`` with a short reason, so scan, train and bench treat
bad files the same way: as a recorded error, never a crash and never a silent score.

Conversions (documented in the README):
- EXIF orientation is not applied: the detector sees the pixel grid exactly as it was encoded,
  which is also what the benchmark protocols (UnivFD, CNNDetection) feed their models.
- 16-bit samples are scaled to 8 bits (v / 257, rounded), grey and colour alike; float images are
  clipped to 0..255 (NaN becomes 0).
- Alpha is dropped, not composited: the colour channels are kept exactly as the generator wrote them.
- CMYK and palette images use Pillow's conversion to RGB; animated images use their first frame.

Sizes are checked from the header before any pixel is decoded: width x height against
``max_pixels`` and the memory the decode would take against ``max_bytes`` (see
``data.config.DEFAULT_MAX_BYTES``). Conversions run in stripes of rows, so they add little beyond
the decoded frame and the result.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import ImageDecodeError, InputFileError
from ..fileio import open_input
from . import jpeg_crop, png_view
from .config import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from .crops import center_crop
from .decoder_messages import DecoderMessages
from .decoders import NOT_AN_IMAGE, decoders_for, describe_unsupported, signature_format

HEADER_BYTES = 16
"""Bytes Pillow reads to identify a file; ``header_format`` needs no more."""

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_CUTTABLE = ("JPEG", "MPO")  # MPO, as many cameras write, starts with its first frame as a plain JPEG
_STRIPE_BYTES = 4 << 20  # conversions work on stripes of rows of about this many input bytes
_NATIVE_ORDER = "L" if sys.byteorder == "little" else "B"


@dataclass
class DecodedImage:
    """An image as the detector sees it, plus what the scan report needs about the file."""

    array: np.ndarray
    width: int
    height: int
    format: str
    mode: str


def _register_heif() -> None:
    """Let Pillow open HEIC/HEIF files (iPhone photos) through pillow-heif, which bundles libheif."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


_register_heif()


def open_image(handle: BinaryIO, name: str | None = None) -> Image.Image:
    """Open an image from a binary handle with the allow-listed decoders only (pixels not yet read);
    ``name`` (the file's name) admits the formats recognised by extension alone (``decoders``)."""
    return Image.open(handle, formats=decoders_for(name))


def header_format(prefix: bytes, name: str | None = None) -> str | None:
    """The allow-listed decoder that accepts a file called ``name`` starting with ``prefix`` (its
    first ``HEADER_BYTES``), or None: the check Pillow makes before opening, so nothing is decoded."""
    return signature_format(prefix, decoders_for(name))


class _PillowPixelLimit:
    """Pillow refuses images above twice ``Image.MAX_IMAGE_PIXELS`` on its own, whatever our
    ``max_pixels`` says. While decodes run, that global is set to the largest of their caps (and
    restored after the last one), so our cap, checked from the header, is the one that applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[int] = []
        self._saved: int | None = None

    @contextmanager
    def __call__(self, max_pixels: int) -> Iterator[None]:
        with self._lock:
            if not self._active:
                self._saved = Image.MAX_IMAGE_PIXELS
            self._active.append(max_pixels)
            Image.MAX_IMAGE_PIXELS = max(self._active)
        try:
            yield
        finally:
            with self._lock:
                self._active.remove(max_pixels)
                Image.MAX_IMAGE_PIXELS = max(self._active) if self._active else self._saved


_pillow_pixel_limit = _PillowPixelLimit()


def _stripes(width: int, height: int, bytes_per_pixel: int) -> Iterator[tuple[int, int]]:
    rows = max(1, _STRIPE_BYTES // max(1, width * bytes_per_pixel))
    for top in range(0, height, rows):
        yield top, min(height, top + rows)


def _by_stripes(images: tuple[Image.Image, ...], convert: Callable[..., np.ndarray]) -> np.ndarray:
    """``convert`` applied to stripes of rows of ``images`` (one frame, decoded one or more ways),
    written into one (H, W, 3) uint8 array; a small image is converted whole, without a copy."""
    width, height = images[0].size
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top, bottom in _stripes(width, height, 4 * len(images)):
        whole = top == 0 and bottom == height
        parts = images if whole else tuple(image.crop((0, top, width, bottom)) for image in images)
        out[top:bottom] = convert(*parts)
    return out


def _scale_sixteen(values: np.ndarray) -> np.ndarray:
    """16-bit samples to 8 bits, v / 257 rounded (65535 -> 255, 511 -> 2)."""
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    return ((wide + 128) // 257).astype(np.uint8)


def _stripe_rgb(part: Image.Image) -> np.ndarray:
    mode = part.mode
    if mode == "RGB":
        return np.asarray(part)
    if mode in _SIXTEEN_BIT:
        return np.repeat(_scale_sixteen(np.asarray(part))[..., None], 3, axis=2)
    if mode == "F":
        values = np.nan_to_num(np.asarray(part, dtype=np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        gray = np.rint(np.clip(values, 0, 255)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        part = part.convert("RGBA")
    return np.asarray(part.convert("RGB"))


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to an (H, W, 3) uint8 array by the rules in the module docstring.

    A colour image with 16 bits per channel reaches Pillow's "RGB", "RGBA" or "CMYK" modes with its
    high bytes only; ``decode_image`` and ``decode_center`` read the low bytes too, so only an image
    decoded elsewhere is converted from its high bytes.
    """
    return _by_stripes((image,), _stripe_rgb)


# Colour images with 16 bits per channel: Pillow's unpacker keeps the high byte of each sample. The
# same frame unpacked with the other byte order (or, for grey + alpha, as 8-bit RGBA) yields the low
# bytes; ``channels`` picks them out in the order of the high-byte image's colour channels.
_LOW_BYTES_LA = ("RGBA", (1, 1, 1))


def _low_byte_rawmode(rawmode: str) -> tuple[str, tuple[int, ...]] | None:
    if rawmode == "LA;16B":
        return _LOW_BYTES_LA
    base, sixteen, order = rawmode.rpartition(";16")
    if not sixteen or base not in ("RGB", "RGBX", "RGBA", "CMYK") or order not in ("B", "L", "N"):
        return None
    order = _NATIVE_ORDER if order == "N" else order
    return f"{base};16{'L' if order == 'B' else 'B'}", (0, 1, 2, 3) if base == "CMYK" else (0, 1, 2)


@dataclass(frozen=True)
class _LowBytes:
    """How to decode the low bytes of a 16-bit colour frame: its tiles with the swapped unpacker."""

    tiles: list[ImageFile._Tile]
    channels: tuple[int, ...]


def _tile_rawmode(tile: ImageFile._Tile) -> str | None:
    if isinstance(tile.args, str):
        return tile.args
    if isinstance(tile.args, tuple) and tile.args and isinstance(tile.args[0], str):
        return tile.args[0]
    return None


def _low_bytes_plan(image: Image.Image) -> _LowBytes | None:
    """The low-byte decode of a 16-bit colour frame, or None for every other image."""
    tiles: list[ImageFile._Tile] = []
    picks: set[tuple[int, ...]] = set()
    for tile in getattr(image, "tile", None) or []:
        rawmode = _tile_rawmode(tile)
        swapped = _low_byte_rawmode(rawmode) if rawmode is not None else None
        if swapped is None:
            return None
        rawmode, channels = swapped
        tiles.append(tile._replace(args=rawmode if isinstance(tile.args, str) else (rawmode, *tile.args[1:])))
        picks.add(channels)
    if len(picks) != 1:
        return None
    return _LowBytes(tiles, picks.pop())


def _stripe_sixteen(high: Image.Image, low: Image.Image, channels: tuple[int, ...]) -> np.ndarray:
    hi = np.asarray(high)[..., : len(channels)].astype(np.uint32)
    lo = np.asarray(low)[..., list(channels)].astype(np.uint32)
    scaled = _scale_sixteen(hi * 256 + lo)
    if high.mode == "CMYK":
        return np.asarray(Image.fromarray(scaled, "CMYK").convert("RGB"))
    return scaled


def _bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow holds per pixel of a decoded frame in ``mode``."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def decode_bytes(mode: str, width: int, height: int, *, twice: bool = False) -> int:
    """Estimated peak memory of decoding a ``width`` x ``height`` frame of ``mode``: the frame (twice
    for 16-bit colour, decoded once per byte) plus the RGB uint8 result."""
    return width * height * (_bytes_per_pixel(mode) * (2 if twice else 1) + 3)


_NOT_CONFIGURED = "support is not configured"  # libtiff, for a compression it was built without


def _reason_for(exc: BaseException, messages: DecoderMessages, image: Image.Image | None) -> tuple[str, str]:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return "missing", "file not found (vanished during the scan?)"
    if isinstance(exc, (PermissionError, IsADirectoryError)):
        return "unreadable", text
    if isinstance(exc, Image.DecompressionBombError):
        return "too-large", text
    if isinstance(exc, UnidentifiedImageError):
        return "unsupported", NOT_AN_IMAGE
    said = messages.mention(_NOT_CONFIGURED)
    if said is not None and image is not None and image.format == "TIFF":
        compression = image.info.get("compression", "unknown")
        return "unsupported", f"TIFF compression {compression!r} is not supported by this build of libtiff ({said})"
    if "truncated" in text.lower():
        return "truncated", text
    return "corrupt", text


@contextmanager
def _decoding(name: str, max_pixels: int, image: Image.Image | None = None) -> Iterator[None]:
    """Turn every failure inside the block into an ``ImageDecodeError`` with a reason, and keep
    what the decoders said (``decoder_messages``) for its detail instead of the terminal."""
    messages = DecoderMessages()
    try:
        with messages.captured(ignore=(Image.DecompressionBombWarning,)), _pillow_pixel_limit(max_pixels):
            yield
    except ImageDecodeError as exc:
        raise ImageDecodeError(exc.path, exc.reason, messages.appended_to(exc.detail)) from None
    except InputFileError as exc:
        raise ImageDecodeError(exc.path, exc.reason, messages.appended_to(exc.detail)) from None
    except MemoryError:
        raise ImageDecodeError(name, "too-large", messages.appended_to("out of memory while decoding")) from None
    except Exception as exc:
        reason, detail = _reason_for(exc, messages, image)
        raise ImageDecodeError(name, reason, messages.appended_to(detail)) from None


@dataclass(frozen=True)
class _Plan:
    """What the header says, checked against the caps before any pixel is decoded."""

    width: int
    height: int
    low_bytes: _LowBytes | None
    frame: int
    """The frame the file opened on: the first one, or PSD's merged composite (which is not a layer)."""


def _plan(image: Image.Image, name: str, max_pixels: int, max_bytes: int) -> _Plan:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            name, "too-large", f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}"
        )
    low_bytes = _low_bytes_plan(image)
    needed = decode_bytes(image.mode, width, height, twice=low_bytes is not None)
    if needed > max_bytes:
        raise ImageDecodeError(
            name,
            "too-large",
            f"{width}x{height} {image.mode} needs about {needed} bytes to decode, over the limit of {max_bytes}",
        )
    return _Plan(width, height, low_bytes, image.tell())


def _decode_whole(handle: BinaryIO, image: Image.Image, plan: _Plan) -> DecodedImage:
    if image.tell() != plan.frame:
        image.seek(plan.frame)
    image.load()
    if plan.low_bytes is None:
        array = to_rgb_array(image)
    else:
        handle.seek(0)
        with open_image(handle) as low:
            low.tile = plan.low_bytes.tiles
            low.load()
            channels = plan.low_bytes.channels
            array = _by_stripes((image, low), lambda high, part: _stripe_sixteen(high, part, channels))
    return DecodedImage(array, plan.width, plan.height, image.format or "unknown", image.mode)


@dataclass
class OpenedImage:
    """A file opened for decoding: its handle and its Pillow image, header read and checked against
    the caps, pixels not yet decoded.

    Evidence readers look at the same object before the pixels are decoded, so a file is opened,
    and its header parsed, once.
    """

    name: str
    handle: BinaryIO
    image: Image.Image
    plan: _Plan
    max_pixels: int

    @property
    def width(self) -> int:
        return self.plan.width

    @property
    def height(self) -> int:
        return self.plan.height

    def decode(self) -> DecodedImage:
        """The whole first frame as RGB uint8."""
        with _decoding(self.name, self.max_pixels, self.image):
            return _decode_whole(self.handle, self.image, self.plan)

    def decode_center(self, size: int) -> DecodedImage:
        """The size x size centre crop, zero-padded when smaller; large JPEGs are cut losslessly first.

        The array equals ``center_crop(self.decode().array, size)`` pixel for pixel, and the file
        fails exactly when ``decode`` fails; ``width`` and ``height`` describe the whole image.
        With ``turbojpeg`` installed, a large JPEG's centre is cut losslessly before decoding (see
        ``jpeg_crop``), which makes a 12-megapixel photo several times faster. Only the first image
        of the file is read for that, up to ``jpeg_crop.read_limit``; a larger one is decoded whole,
        by Pillow's streaming decoder.
        """
        image, plan = self.image, self.plan
        with _decoding(self.name, self.max_pixels, image):
            cut = None
            if image.format in _CUTTABLE and image.mode in ("RGB", "L") and jpeg_crop.worth_cutting(plan.width, plan.height, size):
                self.handle.seek(0)
                data = jpeg_crop.read_first_image(self.handle, jpeg_crop.read_limit(plan.width, plan.height))
                cut = None if data is None else jpeg_crop.cut_center(data, plan.width, plan.height, size)
            if cut is None:
                decoded = _decode_whole(self.handle, image, plan)
                decoded.array = center_crop(decoded.array, size)
                return decoded
            with Image.open(io.BytesIO(cut.jpeg), formats=("JPEG",)) as part:
                window = to_rgb_array(part)
        crop = window[cut.top : cut.top + size, cut.left : cut.left + size].copy()
        return DecodedImage(crop, plan.width, plan.height, image.format, image.mode)


def _open_allowed(handle: BinaryIO, name: str) -> tuple[BinaryIO, Image.Image]:
    """``open_image``, saying which format a file outside the allow-list is, or that an allowed
    format's header is broken (``corrupt``, not ``unsupported``); a PNG whose text
    chunks Pillow refuses is opened without them (``png_view``), and that view is the handle to
    decode from."""
    try:
        return handle, open_image(handle, name)
    except UnidentifiedImageError:
        handle.seek(0)
        prefix = handle.read(HEADER_BYTES)
        claimed = header_format(prefix, name)
        if claimed is not None:
            raise ImageDecodeError(name, "corrupt", f"{claimed} signature, but Pillow cannot parse the header") from None
        raise ImageDecodeError(name, "unsupported", describe_unsupported(prefix)) from None
    except ValueError as exc:
        view = png_view.without_text(handle) if png_view.is_text_limit(exc) else None
        if view is None:
            raise
        return view, open_image(view, name)


@contextmanager
def opened_image(
    source: str | bytes | os.PathLike[str] | BinaryIO,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    name: str | None = None,
) -> Iterator[OpenedImage]:
    """Open an image file (or take an open binary handle) and check its size and decode memory from
    the header.

    A path is opened with ``fileio.open_input`` (symbolic links followed: the caller decided to
    read this path); a handle is read from its start and left open.

    Raises:
        ImageDecodeError: with reason missing, unreadable, unsupported, symlink or too-large.
    """
    label = name or (os.fsdecode(source) if isinstance(source, (str, bytes, os.PathLike)) else "<stream>")
    with ExitStack() as stack:
        with _decoding(label, max_pixels):
            if isinstance(source, (str, bytes, os.PathLike)):
                handle = stack.enter_context(open_input(source, follow_symlinks=True)[0])
            else:
                handle = source
                handle.seek(0)
            handle, image = _open_allowed(handle, label)
            stack.enter_context(image)
            plan = _plan(image, label, max_pixels, max_bytes)
        yield OpenedImage(label, handle, image, plan, max_pixels)


def decode_image(
    path: str | os.PathLike[str] | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> DecodedImage:
    """Decode the first frame of an image file to RGB, refusing huge images before decoding.

    Args:
        path: the image file, or an open binary handle.
        max_pixels: width x height above which the file is refused from its header alone.
        max_bytes: estimated decode memory (``decode_bytes``) above which it is refused, also from
            the header.

    Raises:
        ImageDecodeError: with reason missing, unreadable, unsupported, too-large, truncated or corrupt.
    """
    with opened_image(path, max_pixels, max_bytes) as opened:
        return opened.decode()


def decode_center(
    path: str | os.PathLike[str] | BinaryIO,
    size: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> DecodedImage:
    """The evaluation view of a file: its size x size centre crop (see ``OpenedImage.decode_center``).

    Raises:
        ImageDecodeError: as ``decode_image``.
    """
    with opened_image(path, max_pixels, max_bytes) as opened:
        return opened.decode_center(size)
