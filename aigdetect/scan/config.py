"""What a scan does, validated on creation so a bad option fails before any model is loaded."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..data.images import DEFAULT_MAX_PIXELS
from ..errors import ConfigError

FORMATS: tuple[str, ...] = ("csv", "json", "jsonl")
_PART_SUFFIX = re.compile(r"\.part\d+$")
_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def infer_format(out: str | Path | None, requested: str | None) -> str:
    """``--format`` when given, else the output file's suffix (before any ``.partK``), else CSV (for stdout)."""
    if requested is not None:
        if requested not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {requested!r}")
        return requested
    if out is None:
        return "csv"
    suffix = Path(_PART_SUFFIX.sub("", str(out))).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(f"cannot tell the format of {out} from its suffix; pass --format {'|'.join(FORMATS)}")
    return _SUFFIXES[suffix]


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``K/N`` (K counted from 0, like torchrun's RANK) into ``(K, N)``."""
    index, sep, count = text.partition("/")
    try:
        if not sep:
            raise ValueError
        shard = (int(index), int(count))
    except ValueError:
        raise ConfigError(f"--shard takes K/N (e.g. 0/4), got {text!r}") from None
    check_shard(shard)
    return shard


def check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard K/N needs N >= 1 and 0 <= K < N (K counts from 0), got {index}/{count}")


@dataclass(frozen=True)
class ScanConfig:
    """One scan: where to look, how to score, where the rows go.

    Attributes:
        paths: files and folders to scan.
        out: output file; None writes rows to the stream given to ``run_scan``.
        output_format: csv, json or jsonl; None infers it from ``out`` (CSV for a stream).
        threshold: verdict threshold on the centre score; None uses the detector's calibrated one.
        crops: extra crops per image whose mean and max are reported beside the centre score.
        recursive: descend into sub-folders.
        follow_symlinks: score symlinked files and enter symlinked folders (loops are detected).
        device: auto, cuda (or cuda:N) or cpu.
        batch_size: images per forward pass; None picks the device default.
        workers: decoding processes; None picks one per core.
        max_pixels: width x height above which a file is refused from its header alone.
        shard: ``(K, N)``: score only the files whose path hashes to shard K of N.
        resume: keep the rows already in ``out`` that still match, and score the rest.
    """

    paths: tuple[str, ...]
    out: str | None = None
    output_format: str | None = None
    threshold: float | None = None
    crops: int = 0
    recursive: bool = True
    follow_symlinks: bool = False
    device: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    shard: tuple[int, int] | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))
        if self.out is not None:
            object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "output_format", infer_format(self.out, self.output_format))
        if not self.paths:
            raise ConfigError("give at least one PATH (a file or a folder) to scan")
        if self.threshold is not None and not (math.isfinite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise ConfigError(f"--threshold is a probability and must be within [0, 1], got {self.threshold}")
        if self.crops < 0:
            raise ConfigError(f"--crops must be >= 0, got {self.crops}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.max_pixels < 1:
            raise ConfigError(f"--max-pixels must be >= 1, got {self.max_pixels}")
        if self.shard is not None:
            check_shard(self.shard)
        if self.resume and self.out is None:
            raise ConfigError("--resume continues an output file; pass --out FILE")
