"""Row writers (CSV, JSONL, JSON) that flush every batch, and the reader behind ``--resume``.

CSV and JSONL rows are appended one batch at a time, each batch in one write followed by a flush,
so a killed scan leaves complete rows plus at most one half-written last line. JSON cannot be
appended, so its rows go to a JSONL journal (``OUT.partial.jsonl``) during the scan, and the JSON
file (summary, columns, rows) is written atomically from that journal at the end.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..errors import ConfigError, InputError
from ..fileio import atomic_write
from .rows import Row

JOURNAL_SUFFIX = ".partial.jsonl"


def journal_path(out: str) -> str:
    return out + JOURNAL_SUFFIX


def csv_line(values: Sequence[Any]) -> str:
    """One CSV record without its terminator; it never spans lines because no field holds a newline."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return buffer.getvalue()[:-1]


def row_line(output_format: str, columns: tuple[str, ...], row: Row) -> str:
    if output_format == "csv":
        return csv_line([row.get(c) for c in columns])
    return json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False, allow_nan=False)


@dataclass
class Recorded:
    """A row read back from an earlier output, with its exact text so it is copied unchanged."""

    row: Row
    text: str


class RowWriter:
    """CSV or JSONL rows on a text stream: one write and one flush per batch."""

    def __init__(self, stream: TextIO, columns: tuple[str, ...], output_format: str, *, owns_stream: bool) -> None:
        self.stream = stream
        self.columns = columns
        self.output_format = output_format
        self.owns_stream = owns_stream

    def write(self, rows: Sequence[Row]) -> None:
        if rows:
            self.stream.write("".join(row_line(self.output_format, self.columns, r) + "\n" for r in rows))
            self.stream.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        """Complete the output; CSV and JSONL are complete already, so this only closes."""
        self.close()

    def close(self) -> None:
        if self.owns_stream:
            self.stream.close()
        else:
            self.stream.flush()


def write_json(target: TextIO, summary: dict[str, Any], columns: Sequence[str], lines: Iterable[str]) -> None:
    """The JSON document: ``{"summary": ..., "columns": [...], "rows": [one row per line]}``."""
    head = json.dumps({"summary": summary, "columns": list(columns)}, ensure_ascii=False, allow_nan=False)
    target.write(head[:-1] + ', "rows": [')
    for count, line in enumerate(lines):
        target.write(("," if count else "") + "\n" + line)
    target.write("\n]}\n")


class JsonFileWriter(RowWriter):
    """Journals rows in ``OUT.partial.jsonl``; ``finish`` turns the journal into ``OUT`` atomically."""

    def __init__(self, out: str, columns: tuple[str, ...]) -> None:
        super().__init__(open(journal_path(out), "a", encoding="utf-8"), columns, "json", owns_stream=True)
        self.out = out

    def finish(self, summary: dict[str, Any]) -> None:
        self.close()
        journal = journal_path(self.out)

        def dump(tmp: str) -> None:
            with open(journal, "rb") as source, open(tmp, "w", encoding="utf-8") as target:
                write_json(target, summary, self.columns, (line.decode("utf-8").rstrip("\n") for line in source))

        atomic_write(self.out, dump)
        os.unlink(journal)


class JsonStreamWriter(RowWriter):
    """Keeps the rows in memory and prints the JSON document on ``finish``."""

    def __init__(self, target: TextIO, columns: tuple[str, ...], start: str) -> None:
        self.buffer = io.StringIO(start)
        self.buffer.seek(0, io.SEEK_END)
        super().__init__(self.buffer, columns, "json", owns_stream=False)
        self.target = target

    def finish(self, summary: dict[str, Any]) -> None:
        lines = self.buffer.getvalue().split("\n")[:-1]
        write_json(self.target, summary, self.columns, lines)
        self.target.flush()


def open_writer(
    output_format: str,
    columns: tuple[str, ...],
    *,
    out: str | None,
    stream: TextIO | None,
    kept: Sequence[str] = (),
) -> RowWriter:
    """Start an output holding the header (CSV) and ``kept`` rows, ready for appending batches.

    A file is first replaced atomically by its new beginning, which also drops whatever a resumed
    file held beyond the kept rows (a half-written line, stale rows).
    """
    start = "".join(line + "\n" for line in ([csv_line(columns)] if output_format == "csv" else []) + list(kept))
    if out is not None:
        if output_format == "json":
            atomic_write(journal_path(out), lambda tmp: _write_text(tmp, start))
            return JsonFileWriter(out, columns)
        atomic_write(out, lambda tmp: _write_text(tmp, start))
        return RowWriter(open(out, "a", encoding="utf-8"), columns, output_format, owns_stream=True)
    if stream is None:
        raise ValueError("open_writer needs an output file or a stream")
    if output_format == "json":
        return JsonStreamWriter(stream, columns, start)
    stream.write(start)
    stream.flush()
    return RowWriter(stream, columns, output_format, owns_stream=False)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def read_lines(path: str) -> tuple[list[str], bool]:
    """Complete lines of a file, and whether a half-written last line (no newline) was dropped."""
    with open(path, "rb") as handle:
        data = handle.read()
    pieces = data.split(b"\n")
    partial = pieces[-1] != b""
    lines = []
    for number, piece in enumerate(pieces[:-1], start=1):
        try:
            lines.append(piece.decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(f"line {number} of {path} is not UTF-8 text; it was not written by 'aigdetect scan'") from None
    return lines, partial


def _columns_differ(path: str, found: Iterable[str], columns: Sequence[str]) -> ConfigError:
    return ConfigError(
        f"{path} has the columns {','.join(found)} but this scan writes {','.join(columns)} "
        "(another `crops`?); write to a new `out`"
    )


@dataclass
class Previous:
    """An earlier output read back: its columns, its complete rows, and whether a half line was dropped."""

    columns: tuple[str, ...] | None
    rows: list[Recorded]
    partial: bool = False


def _parse_csv(path: str, lines: list[str], columns: tuple[str, ...] | None) -> Previous:
    if not lines:
        return Previous(columns, [])
    header = tuple(next(csv.reader([lines[0]])))
    if columns is not None and header != columns:
        raise _columns_differ(path, header, columns)
    recorded = []
    for number, line in enumerate(lines[1:], start=2):
        values = next(csv.reader([line]), [])
        if len(values) != len(header):
            raise InputError(f"line {number} of {path} has {len(values)} fields instead of {len(header)}; the file is damaged")
        recorded.append(Recorded(dict(zip(header, values)), line))
    return Previous(header, recorded)


def _parse_json_rows(path: str, items: Iterable[tuple[int, str, Any]], columns: tuple[str, ...] | None) -> Previous:
    recorded = []
    for number, text, row in items:
        if not isinstance(row, dict):
            raise InputError(f"row {number} of {path} is not a JSON object; the file is damaged")
        if columns is None:
            columns = tuple(row)
        if set(row) != set(columns):
            raise _columns_differ(path, row, columns)
        recorded.append(Recorded(row, text))
    return Previous(columns, recorded)


def _jsonl_items(path: str, lines: list[str]) -> Iterable[tuple[int, str, Any]]:
    for number, line in enumerate(lines, start=1):
        try:
            yield number, line, json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"line {number} of {path} is not valid JSON; the file is damaged") from None


def _read_json(path: str, columns: tuple[str, ...] | None) -> Previous:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        rows, own = document["rows"], tuple(document["columns"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a JSON scan result ({exc})") from None
    if columns is not None and own != columns:
        raise _columns_differ(path, own, columns)
    items = ((n, row_line("json", own, r) if isinstance(r, dict) else "", r) for n, r in enumerate(rows, start=1))
    return _parse_json_rows(path, items, own)


def read_recorded(path: str, output_format: str, columns: tuple[str, ...] | None) -> Previous:
    """Read an earlier output (for ``--resume`` and ``--merge``); a missing file holds no rows.

    Args:
        path: the output file; for JSON, an unfinished scan's journal beside it takes precedence.
        output_format: csv, json or jsonl.
        columns: the columns the caller writes, or None to take the file's own.

    Raises:
        ConfigError: the file has other columns than ``columns``.
        InputError: the file is damaged beyond a half-written last line.
    """
    journal = journal_path(path)
    if output_format == "json" and os.path.exists(journal):
        lines, partial = read_lines(journal)
        previous = _parse_json_rows(journal, _jsonl_items(journal, lines), columns)
        previous.partial = partial
        return previous
    if not os.path.exists(path):
        return Previous(columns, [])
    if output_format == "json":
        return _read_json(path, columns)
    lines, partial = read_lines(path)
    if output_format == "csv":
        previous = _parse_csv(path, lines, columns)
    else:
        previous = _parse_json_rows(path, _jsonl_items(path, lines), columns)
    previous.partial = partial
    return previous
