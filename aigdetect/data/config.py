"""Settings of how images are read and augmented, kept apart from the code so that ``-h`` stays light."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..settings import require_finite

DEFAULT_MAX_PIXELS = 100_000_000
"""Width x height above which a file is refused from its header alone (100 megapixels)."""

DEFAULT_MAX_BYTES = 1 << 30
"""Memory one decode may take (1 GiB), estimated from the header before any pixel is decoded: the frame
as Pillow holds it (1 byte per pixel for 8-bit grey or palette, 2 for 16-bit grey, 4 for everything
else, twice that for 16-bit colour, which is decoded twice) plus our RGB uint8 copy (3 bytes per
pixel). An 8-bit RGB image takes 7 bytes per pixel, so 100 megapixels stay under it; a float or
16-bit colour image of the same size does not."""

def max_pixels_field() -> Any:
    """The ``max_pixels`` setting of every config that reads images: one default, one help text."""
    return field(default=DEFAULT_MAX_PIXELS, metadata={"help": "Refuse images with more pixels than this, from the header alone."})


def max_bytes_field() -> Any:
    """The ``max_bytes`` setting of every config that reads images: one default, one help text."""
    return field(
        default=DEFAULT_MAX_BYTES,
        metadata={"help": "Refuse images whose decode would take more memory than this (bytes), from the header alone."},
    )


WANG_FOLDERS = ("0_real", "1_fake")
"""Class folders of the CNNDetection / UnivFD releases, indexed by label (1 is fake)."""
GENIMAGE_FOLDERS = ("nature", "ai")
"""Class folders of the GenImage release, indexed by label."""

MAX_BLUR_SIGMA = 50.0
"""Blur sigmas above this only grey the image out, and cost minutes per image: refused as a mistake."""


@dataclass(frozen=True)
class DiscoveryConfig:
    """Which files under a folder are looked at. Whether a file is an image is then decided by its
    content (``data.files``), never by its name; operating-system junk (``.DS_Store``, ``._*``,
    ``Thumbs.db``, ``__MACOSX``, ...) is always skipped and counted.

    Globs are matched against the path relative to the folder given, with ``/`` between names: ``*``
    and ``?`` stay within one name, ``**`` crosses folders, and a glob without ``/`` matches the name
    at any depth (``*.png``). Matching is case-sensitive.
    """

    hidden: bool = field(default=False, metadata={"help": "Also look at hidden files and folders (names starting with '.')."})
    include: tuple[str, ...] = field(
        default=(), metadata={"help": "Only files matching one of these globs, e.g. '*.jpg' or 'cam1/**' (repeatable)."}
    )
    exclude: tuple[str, ...] = field(
        default=(), metadata={"help": "Skip files and folders matching one of these globs, e.g. 'thumbs/**' (repeatable)."}
    )

    def __post_init__(self) -> None:
        for name in ("include", "exclude"):
            globs = getattr(self, name)
            if isinstance(globs, str) or not all(isinstance(g, str) for g in globs):
                raise ConfigError(f"`{name}` must be a list of glob strings, got {globs!r}")
            object.__setattr__(self, name, tuple(globs))
            for glob in globs:
                if not glob.strip() or "\x00" in glob or glob.startswith("/"):
                    raise ConfigError(f"`{name}` glob {glob!r} must be a non-empty path relative to the folder")


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation of CNNDetection / CLIPMoLE: blur and JPEG at p=0.1, random crop, flip."""

    blur_prob: float = field(default=0.1, metadata={"help": "Probability of Gaussian blur per training image."})
    blur_sigma: tuple[float, float] = field(default=(0.0, 3.0), metadata={"help": "Blur sigma range LOW,HIGH (uniform)."})
    jpeg_prob: float = field(default=0.1, metadata={"help": "Probability of JPEG re-encoding per training image."})
    jpeg_quality: tuple[int, int] = field(
        default=(30, 100), metadata={"help": "JPEG quality range LOW,HIGH (uniform integers)."}
    )
    flip: bool = field(default=True, metadata={"help": "Random horizontal flips."})

    def __post_init__(self) -> None:
        object.__setattr__(self, "blur_sigma", tuple(float(v) for v in self.blur_sigma))
        object.__setattr__(self, "jpeg_quality", tuple(int(v) for v in self.jpeg_quality))
        for name in ("blur_prob", "jpeg_prob"):
            require_finite(name, getattr(self, name))
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"`{name}` must be within [0, 1], got {getattr(self, name)}")
        if len(self.blur_sigma) != 2 or len(self.jpeg_quality) != 2:
            raise ConfigError("`blur_sigma` and `jpeg_quality` are ranges of two values LOW,HIGH")
        for value in self.blur_sigma:
            require_finite("blur_sigma", value)
        low, high = self.blur_sigma
        if not 0.0 <= low <= high <= MAX_BLUR_SIGMA:
            raise ConfigError(f"`blur_sigma` must satisfy 0 <= low <= high <= {MAX_BLUR_SIGMA:g}, got {self.blur_sigma}")
        qlow, qhigh = self.jpeg_quality
        if not 1 <= qlow <= qhigh <= 100:
            raise ConfigError(f"`jpeg_quality` must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}")
