"""``resume``: which rows of an earlier output still describe a file, found without holding the rows.

The earlier output is read once, row by row, into an index from a 16-byte digest of each row's key
(path, size, time, detector) to where its line lies in the file; the runner then copies each kept
line, in path order, when the walk reaches its file. Memory is about a hundred bytes a row.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import BinaryIO

from ..errors import ConfigError, InputError
from ..results.previous import Previous, parse_line
from ..results.schema import Row
from ..results.write import JOURNAL_SUFFIX
from .rows import RowKey, recorded_key_of

_LENGTH_BITS = 24


def key_digest(key: RowKey) -> bytes:
    return hashlib.blake2b("\0".join(key).encode("utf-8", "surrogateescape"), digest_size=16).digest()


@dataclass
class ResumeIndex:
    """Kept rows by key digest: an (offset, length) into a line-based file, or the line itself
    (rows of a finished JSON document, which is not line-based)."""

    previous: Previous
    threshold: float
    entries: dict[bytes, int | str] = field(default_factory=dict)
    handle: BinaryIO | None = None

    @classmethod
    def build(cls, previous: Previous, threshold: float) -> ResumeIndex:
        """Index every complete row of ``previous``.

        Raises:
            ConfigError: a row was written at another threshold.
            InputError: the file is damaged.
        """
        index = cls(previous, threshold)
        if previous.stale:
            return index
        if previous.output_format == "json" and not previous.path.endswith(JOURNAL_SUFFIX):
            for item in previous.rows():
                index._add(item.row, item.text)
            return index
        offset = 0
        header = previous.output_format == "csv"
        with open(previous.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                start, offset = offset, offset + len(raw)
                if not raw.endswith(b"\n"):
                    previous.partial = True
                    break
                if header:
                    header = False
                    continue
                text = raw[:-1].decode("utf-8", "surrogateescape")
                item = parse_line(previous.path, previous.output_format, number, text, previous.columns)
                small = len(raw) - 1 < 1 << _LENGTH_BITS
                index._add(item.row, start << _LENGTH_BITS | (len(raw) - 1) if small else item.text)
        index.handle = open(previous.path, "rb")
        return index

    def _add(self, row: Row, where: int | str) -> None:
        try:
            threshold = float(row["threshold"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{self.previous.path}: a row has no valid threshold; the file is damaged") from None
        if threshold != self.threshold:
            raise ConfigError(
                f"{self.previous.path} was written at threshold {threshold}, this scan uses {self.threshold}; "
                f"resume with `threshold` {threshold} or write to a new `out`"
            )
        self.entries[key_digest(recorded_key_of(row))] = where

    def __len__(self) -> int:
        return len(self.entries)

    def take(self, key: RowKey) -> str | None:
        """The kept line of a file's key (each is taken once), or None when the file must be scored."""
        where = self.entries.pop(key_digest(key), None)
        if where is None or isinstance(where, str):
            return where
        assert self.handle is not None
        length = where & ((1 << _LENGTH_BITS) - 1)
        return os.pread(self.handle.fileno(), length, where >> _LENGTH_BITS).decode("utf-8", "surrogateescape")

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
