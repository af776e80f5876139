"""The one place where image files are opened: safe decoding to an RGB uint8 array.

Every failure becomes an ``ImageDecodeError`` with a short reason, so scan, train and bench treat
bad files the same way: as a recorded error, never a crash and never a silent score.

Conversions (documented in the README):
- EXIF orientation is not applied: the detector sees the pixel grid exactly as it was encoded,
  which is also what the benchmark protocols (UnivFD, CNNDetection) feed their models.
- 16-bit images are scaled to 8 bits (v / 257, rounded); float images are clipped to 0..255.
- Alpha is dropped, not composited: the colour channels are kept exactly as the generator wrote them.
- CMYK and palette images use Pillow's conversion to RGB; animated images use their first frame.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageDecodeError, InputFileError
from ..fileio import open_input
from . import jpeg_crop
from .config import DEFAULT_MAX_PIXELS
from .crops import center_crop

DECODERS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF", "PPM")
"""The only Pillow decoders an input reaches (MPO is read by the JPEG plugin). None of them runs an
external program: formats such as EPS, which Pillow hands to Ghostscript, are never tried."""
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_CUTTABLE = ("JPEG", "MPO")  # MPO, as many cameras write, starts with its first frame as a plain JPEG


@dataclass
class DecodedImage:
    """An image as the detector sees it, plus what the scan report needs about the file."""

    array: np.ndarray
    width: int
    height: int
    format: str
    mode: str


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to an (H, W, 3) uint8 array by the rules in the module docstring."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode in _SIXTEEN_BIT:
        wide = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        gray = ((wide + 128) // 257).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _register_heif() -> None:
    """Let Pillow open HEIC/HEIF files (iPhone photos) through pillow-heif, which bundles libheif."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


_register_heif()


def open_image(handle: BinaryIO) -> Image.Image:
    """Open an image from a binary handle with the allow-listed decoders only (pixels not yet read)."""
    return Image.open(handle, formats=DECODERS)


def _reason_for(exc: BaseException) -> tuple[str, str]:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return "missing", "file not found (vanished during the scan?)"
    if isinstance(exc, (PermissionError, IsADirectoryError)):
        return "unreadable", text
    if isinstance(exc, Image.DecompressionBombError):
        return "too-large", text
    if isinstance(exc, UnidentifiedImageError):
        return "unsupported", "not an image, or a format Pillow cannot decode"
    if "truncated" in text.lower():
        return "truncated", text
    return "corrupt", text


@contextmanager
def _decoding(name: str) -> Iterator[None]:
    """Turn every failure inside the block into an ``ImageDecodeError`` with a reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except ImageDecodeError:
        raise
    except InputFileError as exc:
        raise ImageDecodeError(exc.path, exc.reason, exc.detail) from None
    except MemoryError:
        raise ImageDecodeError(name, "too-large", "out of memory while decoding") from None
    except Exception as exc:
        reason, detail = _reason_for(exc)
        raise ImageDecodeError(name, reason, detail) from None


def _checked_size(image: Image.Image, name: str, max_pixels: int) -> tuple[int, int]:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            name, "too-large", f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}"
        )
    return width, height


@dataclass
class OpenedImage:
    """A file opened for decoding: its handle and its Pillow image, header read, pixels not yet.

    Evidence readers look at the same object before the pixels are decoded, so a file is opened,
    and its header parsed, once.
    """

    name: str
    handle: BinaryIO
    image: Image.Image
    width: int
    height: int

    def decode(self) -> DecodedImage:
        """The whole first frame as RGB uint8."""
        with _decoding(self.name):
            image = self.image
            image.seek(0)
            image.load()
            return DecodedImage(to_rgb_array(image), self.width, self.height, image.format or "unknown", image.mode)

    def decode_center(self, size: int) -> DecodedImage:
        """The size x size centre crop, zero-padded when smaller; large JPEGs are cut losslessly first.

        The array equals ``center_crop(self.decode().array, size)`` pixel for pixel, and the file
        fails exactly when ``decode`` fails; ``width`` and ``height`` describe the whole image.
        With ``turbojpeg`` installed, a large JPEG's centre is cut losslessly before decoding (see
        ``jpeg_crop``), which makes a 12-megapixel photo several times faster.
        """
        image, width, height = self.image, self.width, self.height
        cut = None
        if image.format in _CUTTABLE and image.mode in ("RGB", "L") and jpeg_crop.worth_cutting(width, height, size):
            with _decoding(self.name):
                self.handle.seek(0)
                cut = jpeg_crop.cut_center(self.handle.read(), width, height, size)
        if cut is None:
            decoded = self.decode()
            decoded.array = center_crop(decoded.array, size)
            return decoded
        with _decoding(self.name), Image.open(io.BytesIO(cut.jpeg), formats=("JPEG",)) as part:
            window = to_rgb_array(part)
        crop = window[cut.top : cut.top + size, cut.left : cut.left + size].copy()
        return DecodedImage(crop, width, height, image.format, image.mode)


@contextmanager
def opened_image(
    source: str | bytes | os.PathLike[str] | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS, *, name: str | None = None
) -> Iterator[OpenedImage]:
    """Open an image file (or take an open binary handle) and check its size from the header.

    A path is opened with ``fileio.open_input`` (symbolic links followed: the caller decided to
    read this path); a handle is read from its start and left open.

    Raises:
        ImageDecodeError: with reason missing, unreadable, unsupported, symlink or too-large.
    """
    label = name or (os.fsdecode(source) if isinstance(source, (str, bytes, os.PathLike)) else "<stream>")
    with ExitStack() as stack:
        with _decoding(label):
            if isinstance(source, (str, bytes, os.PathLike)):
                handle = stack.enter_context(open_input(source, follow_symlinks=True)[0])
            else:
                handle = source
                handle.seek(0)
            image = stack.enter_context(open_image(handle))
            width, height = _checked_size(image, label, max_pixels)
        yield OpenedImage(label, handle, image, width, height)


def decode_image(path: str | os.PathLike[str] | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode the first frame of an image file to RGB, refusing huge images before decoding.

    Args:
        path: the image file, or an open binary handle.
        max_pixels: width x height above which the file is refused from its header alone.

    Raises:
        ImageDecodeError: with reason missing, unreadable, unsupported, too-large, truncated or corrupt.
    """
    with opened_image(path, max_pixels) as opened:
        return opened.decode()


def decode_center(path: str | os.PathLike[str] | BinaryIO, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """The evaluation view of a file: its size x size centre crop (see ``OpenedImage.decode_center``).

    Raises:
        ImageDecodeError: as ``decode_image``.
    """
    with opened_image(path, max_pixels) as opened:
        return opened.decode_center(size)
