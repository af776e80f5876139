"""``aigdetect scan``: score every file under some folders and write one verdict row per file.

The pieces are small and separate: ``walk`` finds entries, ``placement`` and ``shard`` split and
join work, ``rows`` builds rows (``aigdetect.results`` writes and re-reads them), ``runner`` joins
them. Names are imported on first use (PEP 562), so reading ``scan.config`` for ``-h`` does not load torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "FORMATS": ".config",
    "ScanConfig": ".config",
    "infer_format": ".config",
    "parse_shard": ".config",
    "detector_id": "..models.identity",
    "display_path": "..results.paths",
    "raw_path": "..results.paths",
    "BASE_COLUMNS": "..results.schema",
    "CROP_COLUMNS": "..results.schema",
    "Tally": ".rows",
    "scan_columns": "..results.schema",
    "ScanSummary": ".runner",
    "run_scan": ".runner",
    "MergeResult": ".shard",
    "merge_parts": ".shard",
    "part_path": ".shard",
    "shard_of": ".shard",
    "FoundFile": ".walk",
    "require_paths": ".walk",
    "walk_paths": ".walk",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
