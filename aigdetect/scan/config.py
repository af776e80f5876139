"""What a scan does, validated on creation so a bad option fails before any model is loaded."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..data.config import DiscoveryConfig, max_bytes_field, max_pixels_field
from ..data.objects import is_url
from ..engine.runtime import RuntimeConfig
from ..errors import ConfigError
from ..evidence.config import EvidenceConfig

FORMATS: tuple[str, ...] = ("csv", "json", "jsonl", "parquet")
ENGINES: tuple[str, ...] = ("local", "ray")
_PART_SUFFIX = re.compile(r"\.part\d+$")
_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def infer_format(out: str | Path | None, requested: str | None) -> str:
    """``--format`` when given, else the output file's suffix (before any ``.partK``), else CSV (for stdout)."""
    if requested is not None:
        if requested not in FORMATS:
            raise ConfigError(f"`output_format` must be one of {', '.join(FORMATS)}, got {requested!r}")
        return requested
    if out is None:
        return "csv"
    suffix = Path(part_base(str(out))).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(f"cannot tell the format of {out} from its suffix; pass `output_format` {'|'.join(FORMATS)}")
    return _SUFFIXES[suffix]


def part_base(out: str) -> str:
    """The merged output a part belongs to: ``OUT.part3`` -> ``OUT``; any other name is its own base."""
    return _PART_SUFFIX.sub("", out)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``K/N`` (K counted from 0, like torchrun's RANK) into ``(K, N)``."""
    index, sep, count = text.partition("/")
    try:
        if not sep:
            raise ValueError
        shard = (int(index), int(count))
    except ValueError:
        raise ConfigError(f"`shard` takes K/N (e.g. 0/4), got {text!r}") from None
    check_shard(shard)
    return shard


def check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"`shard` K/N needs N >= 1 and 0 <= K < N (K counts from 0), got {index}/{count}")


MAX_CROPS = 64


@dataclass(frozen=True)
class ScanConfig:
    """One scan: where to look, how to score, where the rows go. Field help is what ``scan -h`` shows."""

    paths: tuple[str, ...] = ()
    listed: tuple[str, ...] = field(default=(), metadata={"help": "Paths read from a list file (`files_from`)."})
    out: str | None = field(default=None, metadata={"help": "Output file; '-' or none writes the rows to stdout."})
    output_format: str | None = field(
        default=None, metadata={"help": f"{'|'.join(FORMATS)} (default: from the `out` suffix, else csv)."}
    )
    threshold: float | None = field(
        default=None, metadata={"help": "Verdict threshold on the score (default: the detector's calibrated one)."}
    )
    crops: int = field(
        default=0, metadata={"help": f"Also score K (at most {MAX_CROPS}) crops spread over the image; adds crop_mean, crop_max."}
    )
    recursive: bool = field(default=True, metadata={"help": "Descend into sub-folders."})
    follow_symlinks: bool = field(
        default=False, metadata={"help": "Score symlinked files and enter symlinked folders (loops are detected)."}
    )
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    max_pixels: int = max_pixels_field()
    max_bytes: int = max_bytes_field()
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    shard: tuple[int, int] | None = field(
        default=None,
        metadata={"help": "K/N: scan only shard K (0..N-1) of N, chosen by a hash of each path; `out` OUT writes OUT.partK."},
    )
    resume: bool = field(default=False, metadata={"help": "Keep the rows already in `out` and scan only the rest."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing `out` (an earlier scan output only)."})
    bands: tuple[float, float] | None = field(
        default=None,
        metadata={
            "help": "LOW,HIGH: scores at or below LOW are likely-real, at or above HIGH likely-ai, inconclusive "
            "between (default: 2 logits either side of the threshold, 0.12,0.88 at 0.5)."
        },
    )
    evidence: EvidenceConfig | None = field(default_factory=EvidenceConfig)
    sha256: bool = field(default=True, metadata={"help": "Record each file's SHA-256 (chain of custody)."})
    formula_guard: bool = field(
        default=True,
        metadata={"help": "Quote CSV cells that a spreadsheet would run as a formula (=, +, -, @ ...); JSON stays raw."},
    )
    engine: str = field(
        default="local",
        metadata={"help": "local (this machine's decode workers) or ray (Ray Data tasks and an actor pool; aigdetect[ray])."},
    )
    storage_options: dict[str, object] = field(
        default_factory=dict,
        metadata={"help": "JSON object of fsspec options for URL inputs and outputs (s3://, gs://, az://, hf://, https://)."},
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(os.fsdecode(p) for p in self.paths))
        object.__setattr__(self, "listed", tuple(os.fsdecode(p) for p in self.listed))
        if self.out is not None:
            object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "output_format", infer_format(self.out, self.output_format))
        if not self.paths and not self.listed:
            raise ConfigError("give at least one PATH (a file or a folder) to scan, or `files_from` a list")
        if self.threshold is not None and not (math.isfinite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise ConfigError(f"`threshold` is a probability and must be within [0, 1], got {self.threshold}")
        if not 0 <= self.crops <= MAX_CROPS:
            raise ConfigError(f"`crops` must be between 0 and {MAX_CROPS}, got {self.crops}")
        if self.max_pixels < 1 or self.max_bytes < 1:
            raise ConfigError(f"`max_pixels` and `max_bytes` must be >= 1, got {self.max_pixels} and {self.max_bytes}")
        if self.shard is not None:
            check_shard(self.shard)
        if self.resume and self.out is None:
            raise ConfigError("`resume` continues an output file; pass `out` FILE")
        if self.engine not in ENGINES:
            raise ConfigError(f"`engine` must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.out is not None and is_url(self.out) and self.engine == "local":
            raise ConfigError(f"`out` {self.out} is in a store; outputs to stores are written by `engine` ray")
        if self.output_format == "parquet" and self.engine == "local":
            if self.out is None:
                raise ConfigError("Parquet is not written to standard output; pass `out` FILE.parquet")
            if self.resume or self.shard is not None:
                raise ConfigError("a Parquet file is not resumed or sharded; use `engine` ray, which writes it in parts")
        if self.resume and self.overwrite:
            raise ConfigError("`resume` keeps the rows of `out` and `overwrite` replaces them: choose one")
        if self.bands is not None:
            if len(self.bands) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.bands):
                given = ",".join(str(v) for v in self.bands) if isinstance(self.bands, (tuple, list)) else str(self.bands)
                raise ConfigError(f"`bands` are two numbers LOW,HIGH, got {given!r}")
            object.__setattr__(self, "bands", (float(self.bands[0]), float(self.bands[1])))
            if not 0.0 <= self.bands[0] <= self.bands[1] <= 1.0:
                raise ConfigError(f"`bands` need 0 <= LOW <= HIGH <= 1, got {self.bands[0]:g},{self.bands[1]:g}")
