"""aigdetect: tell AI-generated images from real photographs with CLIP and a mixture of low-rank experts.

The public names are imported on first use (PEP 562), so ``import aigdetect.errors`` or
``aigdetect --version`` never pays for torch and open_clip.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .engine.infer import score_images
    from .errors import AigdetectError
    from .models.config import MoLEConfig
    from .models.detector import Detector
    from .models.factory import create_detector, load_detector, save_detector
    from .training.config import TrainConfig
    from .training.train import train

_LAZY = {
    "AigdetectError": ".errors",
    "MoLEConfig": ".models.config",
    "Detector": ".models.detector",
    "create_detector": ".models.factory",
    "load_detector": ".models.factory",
    "save_detector": ".models.factory",
    "score_images": ".engine.infer",
    "TrainConfig": ".training.config",
    "train": ".training.train",
}

__all__ = [
    "AigdetectError",
    "Detector",
    "MoLEConfig",
    "TrainConfig",
    "__version__",
    "create_detector",
    "load_detector",
    "save_detector",
    "score_images",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
