"""Splitting a scan over processes or machines (``--shard K/N``) and joining their parts (``--merge``).

A file's shard is a hash of its path's bytes, so every process decides alone and identically,
and a file added or removed elsewhere in the tree never moves the others between shards.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..outputs import Output, OutputError, check_output, is_special, write_output
from ..results.paths import raw_path
from ..results.previous import Recorded, read_previous
from ..results.write import header_line, journal_path, write_json
from .rows import Tally
from .sidecar import SCAN_RESULTS, SIDECAR_SUFFIX, RowSettings, read_sidecar, sidecar_path, write_sidecar
from .walk import FoundFile

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


def _part_settings(out: str, parts: list[str]) -> dict[str, Any]:
    """The settings every part was made with, checked to be one scan's: same N, same settings, all complete.

    Raises:
        InputError: a part has no summary, is unfinished, or belongs to another split or scan.
    """
    settings: dict[str, Any] | None = None
    for index, part in enumerate(parts):
        sidecar = read_sidecar(part)
        if sidecar is None:
            raise InputError(f"{part} has no {part}{SIDECAR_SUFFIX}: it was not written by a shard of 'aigdetect scan'")
        if not sidecar.get("complete"):
            raise InputError(f"{part} is unfinished; finish that shard with `resume`")
        if sidecar.get("shard") != [index, len(parts)]:
            raise InputError(
                f"{part} was written as shard {sidecar.get('shard')}, not {index}/{len(parts)}: "
                f"the parts of {out} come from different `shard` splits"
            )
        if settings is None:
            settings = sidecar["settings"]
        elif sidecar["settings"] != settings:
            changed = [k for k in settings if settings.get(k) != sidecar["settings"].get(k)]
            raise InputError(f"{part} was made with other settings than {parts[0]} ({', '.join(changed)}); they cannot be joined")
    assert settings is not None
    return settings


def _keyed_rows(part: str, output_format: str, columns: tuple[str, ...]) -> Iterator[tuple[bytes, Recorded]]:
    """A part's rows with their path bytes, checked to be in order (as every scan writes them)."""
    previous = read_previous(part, output_format, columns)
    if previous is None:
        return
    last = None
    for item in previous.rows():
        key = raw_path(str(item.row["path"]))
        if last is not None and key <= last:
            raise InputError(f"{part} is not sorted by path (at {item.row['path']}); it was edited after the scan")
        last = key
        yield key, item
    if previous.partial:
        raise InputError(f"{part} ends with a half-written row (interrupted?); finish that shard with `resume`")


def _owned_rows(part: str, output_format: str, columns: tuple[str, ...]) -> Iterator[tuple[bytes, str, Recorded]]:
    for key, item in _keyed_rows(part, output_format, columns):
        yield key, part, item


def merge_parts(out: str, output_format: str, *, overwrite: bool = False) -> MergeResult:
    """Join all ``OUT.partK`` files into ``OUT`` (atomically), streaming, rows sorted by path as one
    scan sorts them; ``OUT.summary.json`` records the joined counts.

    Raises:
        InputError: a part is missing, unfinished (a half-written row or a JSON journal), from
            another split or made with other settings, or two parts hold the same path.
        ConfigError: the parts have different columns.
        OutputError: ``out`` exists without ``overwrite``, is not a scan output, is a part, or is
            not a regular file (the merged counts are recorded beside it).
    """
    parts = find_parts(out)
    check_output(Output.of(out, SCAN_RESULTS, "merge"), overwrite=overwrite, reads=parts)
    if is_special(out):
        raise OutputError(
            f"`merge` {out} is not a regular file; the merged counts are recorded beside it, in {sidecar_path(out)}"
        )
    for part in parts:
        if output_format == "json" and os.path.exists(journal_path(part)):
            raise InputError(f"{part} is unfinished ({journal_path(part)} exists); finish that shard with `resume`")
    settings = _part_settings(out, parts)
    columns = tuple(settings["columns"])
    tally = Tally()

    def lines() -> Iterator[str]:
        merged = heapq.merge(*(_owned_rows(part, output_format, columns) for part in parts))
        last: tuple[bytes, str] | None = None
        for key, part, item in merged:
            if last is not None and key == last[0]:
                raise InputError(f"{item.row['path']} is in both {last[1]} and {part}; were all parts made with one `shard` N?")
            last = (key, part)
            tally.add([item.row])
            yield item.text

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            if output_format == "json":
                write_json(handle, lambda: {**tally.as_dict(), "merged_parts": len(parts)}, columns, lines())
                return
            handle.writelines(line + "\n" for line in header_line(output_format, columns))
            handle.writelines(line + "\n" for line in lines())

    write_output(out, write)
    write_sidecar(out, RowSettings(**{**settings, "bands": tuple(settings["bands"]), "columns": columns}),
                  complete=True, summary={**tally.as_dict(), "merged_parts": len(parts)})  # fmt: skip
    return MergeResult(out, parts, tally)
