"""How a Ray scan cuts its entries into blocks, names each block's part file, and knows which are done.

Entries (in path order) are cut into blocks where a hash of the path says so, about ``block_size``
entries apart: an object added or removed moves the boundaries of its own block only, so a rerun
after a change rescans that block and keeps the others. Each block is keyed by its entries (path,
size, time, version) and the row settings; its rows go to ``part-KEY.parquet``, written whole
and at once, so a retried task rewrites the same part and a killed run leaves complete parts only.
Plain Python: nothing here imports Ray.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..results.parquet import PARQUET_SUFFIX, PART_PREFIX
from ..scan.sidecar import RowSettings
from ..scan.walk import FoundFile

ACTOR_CPUS = 1.0
"""What a scoring actor asks for where the cluster has no GPU."""
MAX_BLOCK_FACTOR = 4
"""A block ends after ``MAX_BLOCK_FACTOR * block_size`` entries even where no hash cuts it."""


@dataclass(frozen=True)
class RayOptions:
    """How a scan runs on Ray.

    Attributes:
        address: the cluster to join (``ray://...`` or ``auto``); None starts a local Ray.
        actors: scoring actors; None: one per GPU of the cluster, else one per four CPUs.
        block_size: entries per block, on average: the unit of a task, a part file and resume.
        decode_cpus: CPUs each decode task asks for: half a core by default, since a task waits on
            its decode worker and, over a bucket, on the store; it must differ from a CPU actor's
            one core, or Ray Data fuses decoding into the actors.
    """

    address: str | None = None
    actors: int | None = None
    block_size: int = 256
    decode_cpus: float = 0.5

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"`ray_actors` must be at least 1, got {self.actors}")
        if self.block_size < 1:
            raise ConfigError(f"`block_size` must be at least 1, got {self.block_size}")
        if not 0 < self.decode_cpus != ACTOR_CPUS:
            raise ConfigError(f"`decode_cpus` must be positive and not {ACTOR_CPUS} (a CPU actor's), got {self.decode_cpus}")


@dataclass(frozen=True)
class Block:
    """Consecutive entries of a scan and the key of their part file."""

    key: str
    entries: tuple[FoundFile, ...]

    @property
    def part(self) -> str:
        return f"{PART_PREFIX}{self.key}{PARQUET_SUFFIX}"


def _cut_here(path: str, block_size: int) -> bool:
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % block_size == 0


def block_key(entries: Sequence[FoundFile], settings: RowSettings) -> str:
    """What makes a part reusable: the block's entries, each as its listing saw it, and the settings."""
    digest = hashlib.blake2b(json.dumps(settings.as_dict(), sort_keys=True).encode("utf-8"), digest_size=16)
    for found in entries:
        fields = (found.path, str(found.size), str(found.mtime_ns), found.version, "|".join(found.problem or ()))
        digest.update("\0".join(fields).encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def plan_blocks(entries: Iterable[FoundFile], settings: RowSettings, block_size: int) -> list[Block]:
    """The blocks of a scan, in path order."""
    blocks: list[Block] = []
    current: list[FoundFile] = []
    for found in entries:
        current.append(found)
        if (block_size == 1 or _cut_here(found.path, block_size)) or len(current) >= MAX_BLOCK_FACTOR * block_size:
            blocks.append(Block(block_key(current, settings), tuple(current)))
            current = []
    if current:
        blocks.append(Block(block_key(current, settings), tuple(current)))
    return blocks


def entry_fields(found: FoundFile) -> dict[str, Any]:
    """An entry as plain data for a Ray task."""
    return {"path": found.path, "size": found.size, "mtime_ns": found.mtime_ns, "version": found.version,
            "problem": list(found.problem) if found.problem else None, "follow": found.follow}  # fmt: skip
