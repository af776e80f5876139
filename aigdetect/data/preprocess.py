"""How an image becomes a detector's input: one config that the detector carries, the transforms
read, checkpoints record and exports describe, so every caller preprocesses the same way.

Torch-free, so that reading a checkpoint's header or building ``-h`` stays light.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError
from ..settings import check_known_keys

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
"""The channel statistics of OpenAI's CLIP training set, which every OpenAI ViT normalises with."""

RESIZE_MODES = ("none",)
"""``none``: the centre crop at native resolution. Detection never resizes: resampling erases the
high-frequency traces that generators leave, and the released detectors were trained that way."""
INTERPOLATIONS = ("bilinear", "bicubic")
MAX_INPUT_SIZE = 1024


def _channels(name: str, value: Any, low: float) -> tuple[float, float, float]:
    values = tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(values) != 3 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"preprocessing `{name}` must be three numbers (R, G, B), got {str(value)[:60]}")
    floats = tuple(float(v) for v in values)
    if not all(math.isfinite(v) and v > low for v in floats) or max(floats) > 1e3:
        raise ConfigError(f"preprocessing `{name}` values must be finite, above {low:g} and at most 1000, got {floats}")
    return floats  # type: ignore[return-value]


@dataclass(frozen=True)
class PreprocessConfig:
    """The pixels a detector expects: a ``size`` x ``size`` RGB crop, scaled to [0, 1], then
    ``(x - mean) / std`` per channel, in float32.

    ``interpolation`` is the backbone's own (as its pretrained config names it): recorded so that an
    export says what the backbone was pre-trained with, used by no transform while ``resize_mode``
    is ``none``.
    """

    size: int = field(default=224, metadata={"help": "Side of the square input crop, in pixels."})
    mean: tuple[float, float, float] = field(default=OPENAI_MEAN, metadata={"help": "Per-channel mean (RGB)."})
    std: tuple[float, float, float] = field(default=OPENAI_STD, metadata={"help": "Per-channel std (RGB)."})
    resize_mode: str = field(default="none", metadata={"help": "How the image reaches the input size: none (centre crop)."})
    interpolation: str = field(default="bicubic", metadata={"help": "The backbone's pre-training interpolation."})

    def __post_init__(self) -> None:
        if not isinstance(self.size, numbers.Integral) or isinstance(self.size, bool) or not 1 <= self.size <= MAX_INPUT_SIZE:
            raise ConfigError(f"preprocessing `size` must be an integer in 1..{MAX_INPUT_SIZE}, got {str(self.size)[:40]}")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "mean", _channels("mean", self.mean, -1e3))
        object.__setattr__(self, "std", _channels("std", self.std, 0.0))
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(
                f"preprocessing `resize_mode` must be one of {', '.join(RESIZE_MODES)}, got {str(self.resize_mode)[:40]!r}"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"preprocessing `interpolation` must be one of {', '.join(INTERPOLATIONS)}, got {str(self.interpolation)[:40]!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> PreprocessConfig:
        """A recorded config (a checkpoint's), checked like a new one.

        Raises:
            ConfigError: not an object, an unknown key, or a value out of range.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"preprocessing must be an object, got {type(data).__name__}")
        check_known_keys(cls, data, "preprocessing")
        return cls(**data)
