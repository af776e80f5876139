"""Scans beyond one machine on Ray Data (``aigdetect[ray]``); Ray is imported only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .blocks import RayOptions
    from .engine import ray_scan
    from .scorer import RayScorer, score_frames, spark_schema

__all__ = ["RayOptions", "RayScorer", "ray_scan", "score_frames", "spark_schema"]
_LAZY = {"RayOptions": ".blocks", "ray_scan": ".engine", "RayScorer": ".scorer", "score_frames": ".scorer",
         "spark_schema": ".scorer"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
