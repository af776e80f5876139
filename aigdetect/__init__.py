"""aigdetect: tell AI-generated images from real photographs with CLIP and a mixture of low-rank experts."""

from __future__ import annotations

__version__ = "0.1.0"

from .config import MoLEConfig
from .errors import AigdetectError
from .models.detector import Detector, create_detector

__all__ = ["AigdetectError", "Detector", "MoLEConfig", "__version__", "create_detector", "load_detector"]


def load_detector(checkpoint_or_name: str = "univfd-vitl14", **kwargs) -> Detector:
    """Shorthand for ``Detector.load``: a built-in detector by name, or a checkpoint path."""
    return Detector.load(checkpoint_or_name, **kwargs)
