"""Read the results of a scan (CSV, JSON or JSONL; either schema version) into typed rows, streaming.

A results file is input like any other: it may be damaged, edited by hand, or huge. So it is read
a line (or, for JSON, a row) at a time, never whole: the file, each line or row, the rows kept,
every cell and the findings per row are capped before anything is kept, and memory follows the
rows kept, not the file. Damage is refused with an ``InputError`` that names the line or row and,
for a bad cell, the column (see ``typed``).
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, BinaryIO

from ..errors import InputError, InputFileError
from ..fileio import open_input
from .cells import unguard
from .jsonstream import JsonRows
from .parquet import is_parquet
from .schema import REQUIRED_COLUMNS, ReadLimits, ScanResults, ScanRow
from .typed import CellError, safe_json, safe_text, to_row

_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_PART = re.compile(r"\.part\d+$")
_SNIFF = 64 * 1024


def _detect_format(path: str, head: str) -> str:
    """The format by the suffix (``.partK`` ignored), else by the first line: a CSV header does not
    start with ``{``; a JSON document's first line is not a whole object holding ``rows``."""
    suffix = os.path.splitext(_PART.sub("", path))[1].lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if head.lstrip()[:1] != "{":
        return "csv"
    try:
        first = json.loads(head.lstrip().split("\n", 1)[0])
    except (ValueError, RecursionError):
        return "json"
    return "json" if isinstance(first, dict) and "rows" in first else "jsonl"


class _Lines:
    """The decoded lines of a file, each capped; ``partial`` tells whether the last had no newline."""

    def __init__(self, handle: BinaryIO, name: str, limits: ReadLimits) -> None:
        self.handle = handle
        self.name = name
        self.cap = limits.max_row_bytes
        self.max_bytes = limits.max_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.number = 0
        self.offset = 0

    def __iter__(self) -> Iterator[tuple[int, str, bool]]:
        """(line number, text without its newline, whether it ended with one)."""
        while True:
            raw = self.handle.readline(self.cap + 1)
            if not raw:
                return
            self.number += 1
            if self.offset + len(raw) > self.max_bytes:
                raise InputFileError(self.name, "too-large", f"more than {self.max_bytes} bytes")
            complete = raw.endswith(b"\n")
            if len(raw) > self.cap and not (complete and len(raw) == self.cap + 1):
                raise InputError(f"line {self.number} of {self.name} is longer than {self.cap} bytes; the file is damaged")
            try:
                text = self.decoder.decode(raw, final=not complete)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{self.name} is not UTF-8 text (byte {self.offset + exc.start}); it was not written by 'aigdetect scan'"
                ) from None
            self.offset += len(raw)
            yield self.number, text[:-1] if complete else text, complete


class _Reader:
    """Rows of one file, typed and counted against the caps."""

    def __init__(self, name: str, limits: ReadLimits) -> None:
        self.name = name
        self.limits = limits
        self.rows: list[ScanRow] = []
        self.shared: dict[Any, Any] = {}

    def add(self, unit: str, number: int, raw: Any) -> None:
        if len(self.rows) >= self.limits.max_rows:
            raise InputError(
                f"{self.name} holds more than {self.limits.max_rows} rows, the most a report reads; scan in parts "
                "(`shard`) and report each part"
            )
        if not isinstance(raw, dict):
            raise InputError(f"{unit} {number} of {self.name} is not an object; the file is damaged")
        try:
            self.rows.append(to_row(raw, self.limits, self.shared))
        except CellError as exc:
            raise InputError(f"{unit} {number} of {self.name}, {exc}") from None

    def require(self, columns: tuple[str, ...] | list[str]) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InputError(f"{self.name} is not an aigdetect scan result: no {' or '.join(missing)} column")


def _csv_values(line: str, name: str, number: int) -> list[str]:
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error as exc:
        raise InputError(f"{name} is not readable CSV near line {number} ({exc})") from None


def _read_csv(lines: _Lines, reader: _Reader) -> tuple[tuple[str, ...], dict[str, Any], bool]:
    header: tuple[str, ...] | None = None
    for number, text, complete in lines:
        if header is None:
            header = tuple(unguard(c) for c in _csv_values(text, reader.name, number))
            reader.require(header)
            continue
        if not complete:
            try:
                values = _csv_values(text, reader.name, number)
            except InputError:
                return header, {}, True
            if len(values) != len(header):
                return header, {}, bool(text.strip())
        else:
            values = _csv_values(text, reader.name, number)
        if not values:
            continue
        if len(values) != len(header):
            raise InputError(
                f"line {number} of {reader.name} has {len(values)} fields instead of {len(header)}; the file is damaged"
            )
        reader.add("line", number, dict(zip(header, (unguard(v) for v in values))))
    return header or (), {}, False


def _read_jsonl(lines: _Lines, reader: _Reader) -> tuple[tuple[str, ...], dict[str, Any], bool]:
    columns: dict[str, None] = {}
    for number, text, complete in lines:
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except (ValueError, RecursionError):
            if not complete:
                return tuple(columns), {}, True
            raise InputError(f"line {number} of {reader.name} is not valid JSON; the file is damaged") from None
        if isinstance(row, dict):
            if not columns:
                reader.require(list(row))
            if len(columns) < 64:
                columns.update(dict.fromkeys(str(k) for k in row))
        reader.add("line", number, row)
    return tuple(columns), {}, False


def _read_json(handle: BinaryIO, reader: _Reader) -> tuple[tuple[str, ...], dict[str, Any], bool]:
    document = JsonRows(handle, reader.name, reader.limits.max_row_bytes, reader.limits.max_bytes)
    for number, row in enumerate(document.rows(), start=1):
        if number == 1 and document.columns is not None:
            reader.require(document.columns)
        reader.add("row", number, row)
    if document.columns:
        reader.require(document.columns)
    return tuple(document.columns or ()), document.summary, False


def _read_parquet(handles: list[tuple[str, BinaryIO]], reader: _Reader) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Rows of one Parquet file or of a folder's parts (put back in path order), within the limits."""
    from .parquet import parquet_rows, path_order

    budget, columns, summary = reader.limits.max_bytes, (), {}
    for name, handle in handles:
        rows, columns, summary, declared = parquet_rows(handle, name, reader.limits, budget)
        budget -= declared
        reader.require(columns)
        for number, row in enumerate(rows, start=1):
            reader.add("row", number, row)
    if len(handles) > 1:
        reader.rows.sort(key=lambda row: path_order({"path": row.path}))
    return columns, summary


def _read_folder(folder: str, limits: ReadLimits) -> ScanResults:
    """A Ray scan's folder: its part files, and ``_summary.json`` once the scan has finished."""
    from .parquet import folder_summary, part_files

    names = part_files(folder)
    if not names:
        raise InputError(f"{folder} is a folder without part files; give a scan's results file or folder")
    reader = _Reader(folder, limits)
    with ExitStack() as stack:
        handles = []
        for name in names:
            handle, _ = open_input(os.path.join(folder, name))
            handles.append((os.path.join(folder, name), stack.enter_context(handle)))
        columns, _ = _read_parquet(handles, reader)
    summary = folder_summary(folder)
    return ScanResults(reader.rows, safe_json(summary, limits.max_text), columns, folder, "parquet", partial=not summary)


def read_scan_results(path: str | os.PathLike[str], *, limits: ReadLimits | None = None) -> ScanResults:
    """Read a scan's CSV, JSON, JSONL or Parquet output (a file, or a Ray scan's folder of parts),
    of either schema version, streaming.

    The format follows the suffix (``.partK`` shard suffixes ignored), else the content. A
    half-written last line of CSV or JSONL (a killed scan) is left out and flagged in ``partial``.

    Raises:
        InputError: unreadable, too large, not UTF-8, not a scan result (``path`` and ``status``
            columns), damaged, or a cell not of its column's type; the message names the line and column.
    """
    limits = limits or ReadLimits()
    name = os.fspath(path)
    if os.path.isdir(name):
        return _read_folder(name, limits)
    handle, info = open_input(path, follow_symlinks=True)
    with handle:
        if info.st_size > limits.max_bytes:
            raise InputFileError(name, "too-large", f"more than {limits.max_bytes} bytes")
        raw_head = handle.read(_SNIFF)
        head = raw_head.decode("utf-8-sig", "replace")
        handle.seek(0)
        output_format = "parquet" if is_parquet(name, raw_head) else _detect_format(name, head)
        reader = _Reader(name, limits)
        if output_format == "parquet":
            columns, summary = _read_parquet([(name, handle)], reader)
            partial = False
        elif output_format == "json":
            columns, summary, partial = _read_json(handle, reader)
        else:
            read = _read_csv if output_format == "csv" else _read_jsonl
            columns, summary, partial = read(_Lines(handle, name, limits), reader)
    try:
        summary = safe_json(summary, limits.max_text)
        columns = tuple(safe_text(c, limits.max_text) for c in columns)
    except ValueError as exc:
        raise InputError(f"{name}: the summary cannot be used ({exc})") from None
    return ScanResults(reader.rows, summary, columns, name, output_format, partial)
