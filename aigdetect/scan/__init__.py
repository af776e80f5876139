"""``aigdetect scan``: score every file under some folders and write one verdict row per file.

The pieces are small and separate: ``walk`` finds entries, ``shard`` splits and joins work,
``writers`` write and re-read rows, ``runner`` joins them.
"""

from __future__ import annotations

from .config import FORMATS, ScanConfig, infer_format, parse_shard
from .identity import detector_id
from .paths import display_path, raw_path
from .rows import BASE_COLUMNS, CROP_COLUMNS, Tally, scan_columns
from .runner import ScanProgress, ScanSummary, run_scan
from .shard import MergeResult, merge_parts, part_path, shard_of
from .walk import FoundFile, require_paths, walk_paths

__all__ = [
    "BASE_COLUMNS",
    "CROP_COLUMNS",
    "FORMATS",
    "FoundFile",
    "MergeResult",
    "ScanConfig",
    "ScanProgress",
    "ScanSummary",
    "Tally",
    "detector_id",
    "display_path",
    "infer_format",
    "merge_parts",
    "parse_shard",
    "part_path",
    "raw_path",
    "require_paths",
    "run_scan",
    "scan_columns",
    "shard_of",
    "walk_paths",
]
