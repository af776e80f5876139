"""Splitting a scan over processes or machines (``--shard K/N``) and joining their parts (``--merge``).

A file's shard is a hash of its path's bytes, so every process decides alone and identically,
and a file added or removed elsewhere in the tree never moves the others between shards.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..fileio import atomic_write
from .paths import raw_path
from .rows import Tally
from .walk import FoundFile
from .writers import Recorded, csv_line, journal_path, read_recorded, write_json

_PART = re.compile(r"\.part(\d+)$")


def shard_of(path: str, count: int) -> int:
    """The shard (0..count-1) of a path: the first 8 bytes of SHA-1 of its bytes, modulo ``count``."""
    digest = hashlib.sha1(os.fsencode(path)).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(files: Sequence[FoundFile], shard: tuple[int, int] | None) -> list[FoundFile]:
    if shard is None:
        return list(files)
    index, count = shard
    return [f for f in files if shard_of(f.path, count) == index]


def part_path(out: str, index: int) -> str:
    """Where shard ``index`` writes when ``out`` is the merged result: ``OUT.partK``."""
    return f"{out}.part{index}"


def find_parts(out: str) -> list[str]:
    """``OUT.part0`` .. ``OUT.part{N-1}``, all of them, in order.

    Raises:
        InputError: there are no parts, or some are missing.
    """
    folder = Path(out).parent
    prefix = Path(out).name
    indices = []
    for entry in os.listdir(folder):
        if entry.startswith(prefix):
            match = _PART.fullmatch(entry[len(prefix):])
            if match:
                indices.append(int(match.group(1)))
    if not indices:
        raise InputError(f"no parts to merge: found no {out}.part0, {out}.part1, ...")
    missing = sorted(set(range(max(indices) + 1)) - set(indices))
    if missing:
        raise InputError(f"cannot merge {out}: part(s) {', '.join(map(str, missing))} of 0..{max(indices)} are missing")
    return [part_path(out, i) for i in range(max(indices) + 1)]


@dataclass
class MergeResult:
    """What ``merge_parts`` wrote: the counts over all rows and which parts went in."""

    out: str
    parts: list[str]
    tally: Tally


def merge_parts(out: str, output_format: str) -> MergeResult:
    """Join all ``OUT.partK`` files into ``OUT`` (atomically), rows sorted by path as one scan sorts them.

    Raises:
        InputError: a part is missing, unfinished (a half-written row or a JSON journal), or two
            parts hold the same path.
        ConfigError: the parts have different columns.
    """
    parts = find_parts(out)
    columns: tuple[str, ...] | None = None
    rows: dict[bytes, tuple[Recorded, str]] = {}
    for part in parts:
        if output_format == "json" and os.path.exists(journal_path(part)):
            raise InputError(f"{part} is unfinished ({journal_path(part)} exists); finish that shard with `resume`")
        previous = read_recorded(part, output_format, columns)
        if previous.partial:
            raise InputError(f"{part} ends with a half-written row (interrupted?); finish that shard with `resume`")
        columns = previous.columns
        for item in previous.rows:
            key = raw_path(str(item.row["path"]))
            if key in rows:
                raise InputError(f"{item.row['path']} is in both {rows[key][1]} and {part}; were all parts made with one `shard` N?")
            rows[key] = (item, part)
    if columns is None:
        raise InputError(f"the parts of {out} hold no rows and no header")
    ordered = [rows[key][0] for key in sorted(rows)]
    tally = Tally()
    tally.add(item.row for item in ordered)
    final_columns = columns

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            if output_format == "json":
                write_json(handle, {**tally.as_dict(), "merged_parts": len(parts)}, final_columns, (i.text for i in ordered))
                return
            if output_format == "csv":
                handle.write(csv_line(final_columns) + "\n")
            handle.writelines(item.text + "\n" for item in ordered)

    atomic_write(out, write)
    return MergeResult(out, parts, tally)
