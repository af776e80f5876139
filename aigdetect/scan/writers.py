"""Row writers (CSV, JSONL, JSON) that flush every batch, and the readers behind ``resume`` and ``merge``.

CSV and JSONL rows are appended one batch at a time, each batch in one write followed by a flush,
so a killed scan leaves complete rows plus at most one half-written last line. JSON cannot be
appended, so its rows go to a JSONL journal (``OUT.partial.jsonl``) during the scan, and the JSON
file (summary, columns, rows) is written atomically from that journal at the end.

Every output is sorted by the bytes of the paths. A resumed scan writes the rows it keeps first
and the rows it scores after them, both in order; ``merge_runs`` then interleaves the two runs,
streaming, so the file equals that of a scan that was never interrupted.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..errors import ConfigError, InputError
from ..fileio import atomic_write, naming_errors
from ..outputs import OutputKind, append_output, head, write_output
from .cells import csv_cell, unguard
from .paths import raw_path
from .rows import EVIDENCE_COLUMNS, INTEGER_COLUMNS, Row
from .sidecar import sidecar_path

JOURNAL_SUFFIX = ".partial.jsonl"
STREAM_NAME = "standard output"


def _looks_like_scan_output(out: str) -> bool:
    """Whether an existing file is an earlier output of ``scan`` (so replacing it destroys nothing else):
    it has a sidecar (a JSONL output may still be empty), or starts like one."""
    return os.path.exists(sidecar_path(out)) or head(out).startswith((b"path,status,", b'{"path": ', b'{"columns": '))


SCAN_RESULTS = OutputKind("scan output", _looks_like_scan_output)


def journal_path(out: str) -> str:
    return out + JOURNAL_SUFFIX


def csv_line(values: Sequence[str]) -> str:
    """One CSV record without its terminator; it never spans lines because no field holds a newline."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()[:-1]


def row_line(output_format: str, columns: Sequence[str], row: Row, guarded: bool = True) -> str:
    """A row as one line: formula-guarded CSV cells (see ``cells``), or a raw JSON object."""
    if output_format == "csv":
        return csv_line([csv_cell(row.get(c), guarded) for c in columns])
    return json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False, allow_nan=False)


def header_line(output_format: str, columns: Sequence[str]) -> list[str]:
    """The lines an output starts with: the CSV header, nothing for JSONL and the JSON journal."""
    return [csv_line(list(columns))] if output_format == "csv" else []


class RowWriter:
    """CSV or JSONL lines on a text stream: one write and one flush per batch.

    A failed write (a full disk, the file-size limit) raises an OSError that names ``name``, the
    output, since the stream's own errors name no file.
    """

    def __init__(self, stream: TextIO, output_format: str, *, owns_stream: bool, name: str = STREAM_NAME) -> None:
        self.stream = stream
        self.output_format = output_format
        self.owns_stream = owns_stream
        self.name = name

    def write(self, lines: Sequence[str]) -> None:
        if lines:
            with naming_errors(self.name):
                self.stream.write("".join(line + "\n" for line in lines))
                self.stream.flush()

    def finish(self, summary: dict[str, Any], columns: Sequence[str]) -> None:
        """Complete the output; CSV and JSONL are complete already, so this only closes."""
        self.close()

    def close(self) -> None:
        with naming_errors(self.name):
            if self.owns_stream:
                self.stream.close()
            else:
                self.stream.flush()


def write_json(
    target: TextIO, summary: dict[str, Any] | Callable[[], dict[str, Any]], columns: Sequence[str], lines: Iterable[str]
) -> None:
    """The JSON document ``{"columns": [...], "rows": [one row per line], "summary": ...}``; the summary
    comes last, so it may be computed (a callable) once the rows have streamed through."""
    target.write('{"columns": ' + json.dumps(list(columns), ensure_ascii=False) + ', "rows": [')
    for count, line in enumerate(lines):
        target.write(("," if count else "") + "\n" + line)
    document = summary() if callable(summary) else summary
    target.write('\n], "summary": ' + json.dumps(document, ensure_ascii=False, allow_nan=False) + "}\n")


def _journal_lines(journal: str) -> Iterator[str]:
    with open(journal, "rb") as source:
        for line in source:
            yield line.decode("utf-8").rstrip("\n")


class JsonFileWriter(RowWriter):
    """Journals rows in ``OUT.partial.jsonl``; ``finish`` turns the journal into ``OUT`` atomically."""

    def __init__(self, out: str) -> None:
        journal = journal_path(out)
        super().__init__(open(journal, "a", encoding="utf-8"), "json", owns_stream=True, name=journal)
        self.out = out

    def finish(self, summary: dict[str, Any], columns: Sequence[str]) -> None:
        self.close()
        journal = journal_path(self.out)

        def dump(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as target:
                write_json(target, summary, columns, _journal_lines(journal))

        write_output(self.out, dump)
        os.unlink(journal)


class JsonStreamWriter(RowWriter):
    """Keeps the lines in memory and prints the JSON document on ``finish``."""

    def __init__(self, target: TextIO) -> None:
        super().__init__(io.StringIO(), "json", owns_stream=False)
        self.target = target

    def finish(self, summary: dict[str, Any], columns: Sequence[str]) -> None:
        lines = self.stream.getvalue().split("\n")[:-1]
        with naming_errors(STREAM_NAME):
            write_json(self.target, summary, columns, lines)
            self.target.flush()


def growing_file(out: str, output_format: str) -> str:
    """The file rows are appended to while the scan runs: the output, or the JSON journal."""
    return journal_path(out) if output_format == "json" else out


def open_writer(output_format: str, columns: Sequence[str], *, out: str | None, stream: TextIO | None) -> RowWriter:
    """Start an output, ready for appending batches: a file is first replaced atomically by its
    header (``resume`` writes its kept rows itself, before it calls ``append_writer``)."""
    if out is not None:
        start = "".join(line + "\n" for line in header_line(output_format, columns))
        write_output(growing_file(out, output_format), lambda tmp: _write_text(tmp, start))
        return append_writer(out, output_format)
    if stream is None:
        raise ValueError("open_writer needs an output file or a stream")
    if output_format == "json":
        return JsonStreamWriter(stream)
    writer = RowWriter(stream, output_format, owns_stream=False)
    writer.write(header_line(output_format, columns))
    return writer


def append_writer(out: str, output_format: str) -> RowWriter:
    """A writer that appends to an output (or journal) that already holds its header and rows."""
    if output_format == "json":
        return JsonFileWriter(out)
    return RowWriter(append_output(out), output_format, owns_stream=True, name=out)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


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
    """An output of a version before the evidence layer: its rows are rescanned, not refused."""
    return not set(EVIDENCE_COLUMNS) & set(found) and set(EVIDENCE_COLUMNS) <= set(columns)


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
            yield _parse_line(self.path, self.output_format, number, text, self.columns)


def _parse_line(path: str, output_format: str, number: int, text: str, columns: Sequence[str] | None) -> Recorded:
    if output_format == "csv":
        values = next(csv.reader([text]), [])
        if columns is None or len(values) != len(columns):
            raise InputError(f"line {number} of {path} has {len(values)} fields instead of {len(columns or ())}; the file is damaged")
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


def _json_document_rows(path: str) -> Iterator[Recorded]:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        rows, columns = document["rows"], tuple(document["columns"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a JSON scan result ({exc})") from None
    for number, row in enumerate(rows, start=1):
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
            return tuple(_parse_line(path, "jsonl", number, text, None).row) if complete else None
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return tuple(json.load(handle)["columns"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a JSON scan result ({exc})") from None


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


def path_key(output_format: str, text: str) -> bytes:
    """The bytes of the path of a row line: the order rows are kept in."""
    if output_format == "csv":
        return raw_path(unguard(next(csv.reader([text]))[0]))
    return raw_path(str(json.loads(text)["path"]))


def merge_runs(path: str, output_format: str, header_lines: int, boundary: int) -> None:
    """Interleave the two sorted runs of a growing file (rows before and after byte ``boundary``)
    into one sorted file, streaming, and replace the file atomically."""
    with open(path, "rb") as first, open(path, "rb") as second:
        head = [first.readline() for _ in range(header_lines)]
        second.seek(boundary)

        def run(handle: Any, stop: int | None) -> Iterator[tuple[bytes, bytes]]:
            while stop is None or handle.tell() < stop:
                raw = handle.readline()
                if not raw:
                    return
                yield path_key(output_format, raw.decode("utf-8").rstrip("\n")), raw

        merged = heapq.merge(run(first, boundary), run(second, None), key=lambda item: item[0])

        def dump(tmp: str) -> None:
            with open(tmp, "wb") as target:
                target.writelines(head)
                target.writelines(raw for _, raw in merged)

        atomic_write(path, dump)
