"""Frozen features on disk, so that a probe is fitted again without decoding or running the backbone.

One entry per (backbone fingerprint, preprocessing, file content, view): the backbone and its
preprocessing name the cache's folder, the SHA-256 of the file's bytes and the view name the entry,
so a changed file or another backbone simply misses. Entries are ``.npy`` files read memory-mapped.

Runs may share a folder: an entry is written to a temporary file and renamed into place (readers
see a whole entry or none), and eviction, which deletes the least recently used entries until the
folder is under its cap, holds an exclusive lock on ``.lock``. A reader whose entry was evicted
meanwhile computes it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError
from ..models.detector import Detector

CACHE_FORMAT = "aigdetect-features/1"
_SAMPLES_PER_TENSOR = 4096


def backbone_fingerprint(detector: Detector) -> str:
    """SHA-256 over what decides a frozen feature: the backbone's description and weights (every
    k-th value of each tensor, at most 4096, so ViT-L hashes in milliseconds) and the preprocessing."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    described = {"backbone": detector.source.to_dict(), "preprocess": detector.preprocess.to_dict()}
    digest.update(json.dumps(described, sort_keys=True).encode())
    for key, tensor in sorted(detector.backbone_state_dict().items()):
        flat = tensor.detach().float().cpu().reshape(-1)
        sample = flat[:: max(1, flat.numel() // _SAMPLES_PER_TENSOR)][:_SAMPLES_PER_TENSOR]
        digest.update(f"{key}:{tuple(tensor.shape)}".encode() + sample.contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class CacheStats:
    """What a run did with the cache: entries read, entries computed and written, entries evicted."""

    hits: int = 0
    writes: int = 0
    evicted: int = 0


class FeatureCache:
    """Feature vectors of one backbone (its fingerprint names the folder), capped at ``max_bytes``.

    Raises:
        InputError: the folder cannot be created or written.
    """

    def __init__(self, root: str | os.PathLike[str], fingerprint: str, dim: int, max_bytes: int) -> None:
        self.root = Path(root)
        self.folder = self.root / fingerprint[:32]
        self.dim = dim
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the feature cache {self.folder}: {exc.strerror or exc}") from None

    def _path(self, content: str, view: str) -> Path:
        key = hashlib.sha256(f"{content}\0{view}".encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, content: str, view: str) -> np.ndarray | None:
        """The entry, memory-mapped, or None when absent or not a vector of this backbone's width
        (a damaged entry is a miss, recomputed and replaced)."""
        path = self._path(content, view)
        try:
            features = np.load(path, mmap_mode="r", allow_pickle=False)
            os.utime(path)
        except (OSError, ValueError):
            return None
        if features.shape != (self.dim,) or features.dtype != np.float32:
            return None
        self.stats.hits += 1
        return features

    def put(self, content: str, view: str, features: np.ndarray) -> None:
        """Write one entry atomically (a temporary file renamed into place)."""
        path = self._path(content, view)
        path.parent.mkdir(exist_ok=True)
        temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as handle:
                np.save(handle, np.asarray(features, dtype=np.float32).reshape(self.dim), allow_pickle=False)
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise InputError(f"cannot write the feature cache {self.folder}: {exc.strerror or exc}") from None
        self.stats.writes += 1

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def size(self) -> int:
        """Bytes held by the whole cache (every backbone's folder)."""
        return sum(path.stat().st_size for path in self.root.glob("*/*/*.npy"))

    def evict(self) -> int:
        """Delete the least recently used entries of every backbone until the cache fits its cap.

        Returns:
            How many entries were deleted.
        """
        with self._locked():
            entries = []
            for path in self.root.glob("*/*/*.npy"):
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue
                entries.append((info.st_mtime_ns, info.st_size, path))
            total = sum(size for _, size, _ in entries)
            deleted = 0
            for _, size, path in sorted(entries):
                if total <= self.max_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size
                deleted += 1
        self.stats.evicted += deleted
        return deleted


def content_sha256(handle: BinaryIO, chunk: int = 1 << 20) -> str:
    """SHA-256 of an open file's bytes from its start: the caller decodes from the same handle."""
    digest = hashlib.sha256()
    handle.seek(0)
    for block in iter(lambda: handle.read(chunk), b""):
        digest.update(block)
    return digest.hexdigest()
