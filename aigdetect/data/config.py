"""Settings of how images are read and augmented, kept apart from the code so that ``-h`` stays light."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..settings import require_finite

DEFAULT_MAX_PIXELS = 100_000_000
"""Width x height above which a file is refused from its header alone (100 megapixels)."""

WANG_FOLDERS = ("0_real", "1_fake")
"""Class folders of the CNNDetection / UnivFD releases, indexed by label (1 is fake)."""
GENIMAGE_FOLDERS = ("nature", "ai")
"""Class folders of the GenImage release, indexed by label."""

MAX_BLUR_SIGMA = 50.0
"""Blur sigmas above this only grey the image out, and cost minutes per image: refused as a mistake."""


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
