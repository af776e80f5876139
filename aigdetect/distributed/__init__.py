"""Scans beyond one machine on Ray Data (``aigdetect[ray]``); Ray is imported only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .blocks import RayOptions
    from .engine import ray_scan

__all__ = ["RayOptions", "ray_scan"]
_LAZY = {"RayOptions": ".blocks", "ray_scan": ".engine"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
