"""Row writers (CSV, JSONL, JSON) that flush every batch, and the streaming merge of two sorted runs.

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
from typing import Any, TextIO

from ..fileio import atomic_write, naming_errors
from ..outputs import append_output, write_output
from .cells import csv_cell, unguard
from .paths import raw_path
from .schema import Row

JOURNAL_SUFFIX = ".partial.jsonl"
STREAM_NAME = "standard output"


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

    def write_rows(self, rows: Sequence[Row], columns: Sequence[str], guarded: bool = True) -> None:
        """One batch of rows, as lines of this writer's format (CSV cells guarded unless ``guarded`` is off)."""
        self.write([row_line(self.output_format, columns, row, guarded) for row in rows])

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
    header (``resume`` writes its kept rows itself, before it calls ``append_writer``); a Parquet
    file is written a row group per batch and gets its footer on ``finish``."""
    if output_format == "parquet":
        if out is None:
            raise ValueError("a Parquet output needs a file")
        from .parquet import ParquetRowWriter

        return ParquetRowWriter(out, columns, name=out)  # type: ignore[return-value]
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
