"""Earlier outputs read back for ``resume`` and ``merge``: rows as the file holds them, with their exact text.

Unlike ``read`` (which types every cell for a report), this reader keeps each row's text so that
kept rows are copied byte for byte; it reads a line (or a JSON row) at a time and refuses damage
beyond a half-written last line.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import ConfigError, InputError
from .cells import unguard
from .jsonstream import JsonRows
from .schema import INTEGER_COLUMNS, SCHEMA_VERSION, ReadLimits, Row, schema_version
from .write import JOURNAL_SUFFIX, journal_path, row_line


@dataclass
class Recorded:
    """A row read back from an earlier output: its values (as the file holds them, CSV cells
    unguarded) and its exact text, so that it is copied unchanged."""

    row: Row
    text: str


def typed(row: Row) -> Row:
    """CSV text values made comparable with a scan's own rows: integers parsed, empty cells None."""
    out = {k: (None if v == "" else v) for k, v in row.items()}
    for column in INTEGER_COLUMNS:
        value = out.get(column)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            out[column] = int(value)
    return out


def _columns_differ(path: str, found: Iterable[str], columns: Sequence[str]) -> ConfigError:
    return ConfigError(
        f"{path} has the columns {','.join(found)} but this scan writes {','.join(columns)} "
        "(another `crops`?); write to a new `out`"
    )


def stale_schema(found: Sequence[str], columns: Sequence[str]) -> bool:
    """An output of schema version 1 met by a scan of today's: its rows are rescanned, not refused."""
    return schema_version(found) < SCHEMA_VERSION == schema_version(columns)


def _decoded(path: str, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"line {number} of {path} is not UTF-8 text; it was not written by 'aigdetect scan'") from None


def _complete_lines(path: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, complete) for each line; only the last one may be incomplete."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            complete = raw.endswith(b"\n")
            yield number, _decoded(path, number, raw.rstrip(b"\n")), complete


@dataclass
class Previous:
    """An earlier output, read back one row at a time.

    Attributes:
        path: the file read.
        columns: its columns (None when it holds nothing yet).
        partial: whether a half-written last line was dropped.
        stale: written by a version without the evidence columns; its rows must be rescanned.
    """

    path: str
    output_format: str
    columns: tuple[str, ...] | None
    partial: bool = False
    stale: bool = False

    def rows(self) -> Iterator[Recorded]:
        """Every complete row, in file order; refuses damage beyond a half-written last line."""
        if self.output_format == "json" and not self.path.endswith(JOURNAL_SUFFIX):
            yield from _json_document_rows(self.path)
            return
        header = self.output_format == "csv"
        for number, text, complete in _complete_lines(self.path):
            if not complete:
                self.partial = True
                return
            if header:
                header = False
                continue
            yield parse_line(self.path, self.output_format, number, text, self.columns)


def parse_line(path: str, output_format: str, number: int, text: str, columns: Sequence[str] | None) -> Recorded:
    if output_format == "csv":
        values = next(csv.reader([text]), [])
        if columns is None or len(values) != len(columns):
            raise InputError(
                f"line {number} of {path} has {len(values)} fields instead of {len(columns or ())}; the file is damaged"
            )
        return Recorded(typed({c: unguard(v) for c, v in zip(columns, values)}), text)
    try:
        row = json.loads(text)
    except json.JSONDecodeError:
        raise InputError(f"line {number} of {path} is not valid JSON; the file is damaged") from None
    if not isinstance(row, dict):
        raise InputError(f"row {number} of {path} is not a JSON object; the file is damaged")
    if columns is not None and set(row) != set(columns):
        raise _columns_differ(path, row, columns)
    return Recorded(row, text)


def _json_document(path: str) -> tuple[JsonRows, Iterator[object]]:
    """A finished JSON document, walked row by row, with its ``columns`` read before the first row."""
    limits = ReadLimits()
    handle = open(path, "rb")
    document = JsonRows(handle, path, limits.max_row_bytes, limits.max_bytes)

    def rows() -> Iterator[object]:
        with handle:
            yield from document.rows()

    return document, rows()


def _json_document_rows(path: str) -> Iterator[Recorded]:
    document, rows = _json_document(path)
    for number, row in enumerate(rows, start=1):
        columns = document.columns
        if columns is None:
            raise InputError(f"{path} is not a JSON scan result (its rows come before its columns)")
        if not isinstance(row, dict) or set(row) != set(columns):
            raise InputError(f"row {number} of {path} is not a row of its columns; the file is damaged")
        yield Recorded(row, row_line("json", columns, row))


def _first_columns(path: str, output_format: str) -> tuple[str, ...] | None:
    if output_format == "csv":
        for _, text, complete in _complete_lines(path):
            return tuple(next(csv.reader([text]), [])) if complete else None
        return None
    if output_format == "jsonl" or path.endswith(JOURNAL_SUFFIX):
        for number, text, complete in _complete_lines(path):
            return tuple(parse_line(path, "jsonl", number, text, None).row) if complete else None
        return None
    document, rows = _json_document(path)
    next(rows, None)
    rows.close()
    if document.columns is None:
        raise InputError(f"{path} is not a JSON scan result (no columns before its rows)")
    return tuple(document.columns)


def read_previous(out: str, output_format: str, columns: Sequence[str] | None) -> Previous | None:
    """The earlier output at ``out`` (for JSON, an unfinished scan's journal first), or None.

    Args:
        out: the output file.
        output_format: csv, json or jsonl.
        columns: the columns the caller writes, or None to take the file's own.

    Raises:
        ConfigError: the file has other columns than ``columns`` (and is not an older version's).
        InputError: the file is damaged.
    """
    journal = journal_path(out)
    path = journal if output_format == "json" and os.path.exists(journal) else out
    if not os.path.exists(path):
        return None
    found = _first_columns(path, output_format)
    if found is None:
        return Previous(path, output_format, tuple(columns) if columns else None)
    if columns is not None and found != tuple(columns):
        if stale_schema(found, columns):
            return Previous(path, output_format, found, stale=True)
        raise _columns_differ(path, found, columns)
    return Previous(path, output_format, found)
