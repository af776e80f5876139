"""What a bench or robustness run scores and how: plain, validated settings that ``-h`` can show."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..data.config import MAX_BLUR_SIGMA, max_bytes_field, max_pixels_field
from ..engine.runtime import RuntimeConfig
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..engine.reading import Perturbation

REFERENCE_ENGINE = "torch-fp32"
"""The engine every other one is measured against."""
PAPER_BLUR = (1.0, 2.0, 3.0, 4.0)
PAPER_JPEG = (90, 80, 70, 60, 50, 40, 30)
PROTOCOLS = ("all", "univfd")
UNIVFD_MAX_SAMPLE, UNIVFD_FALLBACK = 1000, 100
"""UnivFD's validate.py scores --max_sample 1000 images per class, and 100 when a class has fewer."""
PIXEL_ONLY = "pixel model only; evidence (C2PA, metadata, watermarks) not used"
"""What bench and robustness scores are, said in every output: they measure the model, so the
evidence that decides a scan's verdict (and would make benchmark fakes trivially found) is left out."""


@dataclass(frozen=True)
class Reencode:
    """``reencode`` jpeg:Q|png: one encoding applied to every image before scoring, so that a
    detector cannot tell reals from fakes by their file format (JPEG reals, PNG fakes)."""

    format: Literal["jpeg", "png"]
    quality: int | None = None

    def __post_init__(self) -> None:
        if self.format not in ("jpeg", "png"):
            raise ConfigError(f"`reencode` takes jpeg:Q or png, got {self.format!r}")
        if self.format == "jpeg" and (self.quality is None or not 1 <= self.quality <= 100):
            raise ConfigError(f"`reencode` jpeg needs a quality from 1 to 100 (jpeg:90), got {self.quality}")
        if self.format == "png" and self.quality is not None:
            raise ConfigError("`reencode` png takes no quality (PNG is lossless)")

    @classmethod
    def parse(cls, text: str) -> Reencode:
        kind, _, quality = text.strip().lower().partition(":")
        if kind == "jpg":
            kind = "jpeg"
        if kind not in ("jpeg", "png"):
            raise ConfigError(f"`reencode` takes jpeg:Q or png, got {text!r}")
        if not quality:
            return cls(kind, None)  # type: ignore[arg-type]
        if not quality.strip().isdigit():
            raise ConfigError(f"`reencode` {text!r}: the JPEG quality must be an integer")
        return cls(kind, int(quality))  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        return f"jpeg:{self.quality}" if self.format == "jpeg" else "png"

    def transform(self) -> Perturbation:
        from functools import partial

        from ..data.transforms import jpeg, png_roundtrip

        return partial(jpeg, quality=self.quality) if self.format == "jpeg" else png_roundtrip


@dataclass(frozen=True)
class BenchConfig:
    """What to score and how: sampling, re-encoding and the runtime. Field help is what ``bench -h`` shows."""

    max_per_class: int | None = field(
        default=None, metadata={"help": "Score a seeded random sample of at most N reals and N fakes per subset."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the `max_per_class` and `protocol` univfd samples."})
    protocol: str = field(
        default="all",
        metadata={
            "help": "Which images each subset scores: all (every image, or the `max_per_class` sample), or univfd "
            "(UnivFD's validate.py: 1000 reals and 1000 fakes shuffled with `seed`, 100 each when a class has fewer "
            "than 1000; `max_per_class` replaces the 1000)."
        },
    )
    reencode: Reencode | None = field(
        default=None,
        metadata={"help": "Re-encode every image before scoring (jpeg:Q or png) to expose file-format shortcuts."},
    )
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    max_pixels: int = max_pixels_field()
    max_bytes: int = max_bytes_field()

    def __post_init__(self) -> None:
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ConfigError(f"`max_per_class` must be at least 1, got {self.max_per_class}")
        if self.seed < 0:
            raise ConfigError(f"`seed` must be >= 0, got {self.seed}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"`protocol` must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")


@dataclass(frozen=True)
class Level:
    """One point of a sweep: ``clean`` (no perturbation), a blur sigma or a JPEG quality."""

    kind: Literal["clean", "blur", "jpeg"]
    value: float | None = None

    @property
    def label(self) -> str:
        if self.kind == "clean":
            return "clean"
        return f"blur σ={self.value:g}" if self.kind == "blur" else f"jpeg q={self.value:g}"

    def transform(self) -> Perturbation | None:
        from functools import partial

        from ..data.transforms import gaussian_blur, jpeg

        if self.kind == "blur":
            return partial(gaussian_blur, sigma=float(self.value))
        if self.kind == "jpeg":
            return partial(jpeg, quality=int(self.value))
        return None


@dataclass(frozen=True)
class SweepConfig:
    """The levels to score: the paper's by default; a clean pass is the reference point of both curves."""

    blur: tuple[float, ...] = field(
        default=PAPER_BLUR, metadata={"help": "Comma-separated Gaussian blur sigmas ('' for none)."}
    )
    jpeg: tuple[int, ...] = field(default=PAPER_JPEG, metadata={"help": "Comma-separated JPEG qualities ('' for none)."})
    clean: bool = True

    def __post_init__(self) -> None:
        if any(not (math.isfinite(sigma) and 0 < sigma <= MAX_BLUR_SIGMA) for sigma in self.blur):
            raise ConfigError(f"`blur` sigmas must be within (0, {MAX_BLUR_SIGMA:g}], got {list(self.blur)}")
        if any(not 1 <= quality <= 100 for quality in self.jpeg):
            raise ConfigError(f"`jpeg` qualities must be within 1..100, got {list(self.jpeg)}")
        if len(set(self.blur)) != len(self.blur) or len(set(self.jpeg)) != len(self.jpeg):
            raise ConfigError("`blur` and `jpeg` levels must not repeat")
        if not self.blur and not self.jpeg:
            raise ConfigError("give at least one `blur` or `jpeg` level")

    def levels(self) -> list[Level]:
        return (
            ([Level("clean")] if self.clean else [])
            + [Level("blur", float(s)) for s in self.blur]
            + [Level("jpeg", float(q)) for q in self.jpeg]
        )
