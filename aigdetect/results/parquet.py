"""Parquet: the results format with real types, written a batch at a time and read back within limits.

The columns and their types come from ``schema.SCHEMA``: text and enums are strings, scores
float64, counts int64, and ``evidence`` a list of structs (one per finding), so a data frame
gets numbers as numbers. A scan writes one row group per batch; the summary goes into the file's
key-value metadata at the end (and beside it, in the sidecar). The Ray engine writes a folder of
part files (``part-KEY.parquet``, each a block of rows) and ``_summary.json`` last; both forms are
read here. pyarrow is imported only when Parquet is used (``aigdetect[parquet]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import ConfigError, InputError, InputFileError
from ..fileio import naming_errors, open_input, read_capped
from .paths import raw_path
from .schema import COLUMN_TYPES, ReadLimits, Row

if TYPE_CHECKING:
    import pyarrow as pa

SUMMARY_KEY = b"aigdetect.summary"
PART_PREFIX = "part-"
PARQUET_SUFFIX = ".parquet"
FOLDER_SUMMARY = "_summary.json"
"""Written last into a folder of parts: its presence means the scan finished."""
MAX_SUMMARY_BYTES = 1 << 20
_FINDING_FIELDS = ("source", "claim", "strength", "detail", "generator")


def pyarrow_modules() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or a one-line error naming the extra that provides them.

    Raises:
        ConfigError: pyarrow is not installed.
    """
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError("Parquet needs pyarrow: pip install 'aigdetect[parquet]'") from None
    return pyarrow, pyarrow.parquet


def _arrow_type(pa: Any, kind: str) -> Any:
    if kind == "float":
        return pa.float64()
    if kind == "int":
        return pa.int64()
    if kind == "evidence":
        return pa.list_(pa.struct([(name, pa.string()) for name in _FINDING_FIELDS]))
    return pa.string()


def arrow_schema(columns: Sequence[str]) -> pa.Schema:
    """The Arrow schema of a scan's columns, typed from ``schema.SCHEMA``."""
    pa, _ = pyarrow_modules()
    return pa.schema([(name, _arrow_type(pa, COLUMN_TYPES[name].kind)) for name in columns])


def rows_table(rows: Sequence[Row], columns: Sequence[str]) -> pa.Table:
    """The rows as one Arrow table of ``arrow_schema(columns)``; empty text cells stay null."""
    pa, _ = pyarrow_modules()
    data = {name: [row.get(name) for row in rows] for name in columns}
    return pa.Table.from_pydict(data, schema=arrow_schema(columns))


def table_bytes(rows: Sequence[Row], columns: Sequence[str], summary: dict[str, Any] | None = None) -> bytes:
    """A whole Parquet file of ``rows`` in memory: a part file of the Ray engine, written in one PUT."""
    pa, pq = pyarrow_modules()
    table = rows_table(rows, columns)
    if summary is not None:
        table = table.replace_schema_metadata({SUMMARY_KEY: json.dumps(summary, ensure_ascii=False).encode("utf-8")})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


class ParquetRowWriter:
    """Rows appended to one Parquet file, a row group per batch; the file is complete (has its
    footer) only after ``finish`` or ``close``.

    Args:
        target: a file name, or an open binary stream (a bucket object from fsspec).
        columns: the scan's columns.
        name: what an error message calls the output.
    """

    output_format = "parquet"

    def __init__(self, target: str | BinaryIO, columns: Sequence[str], *, name: str) -> None:
        _, pq = pyarrow_modules()
        self.name = name
        self.columns = tuple(columns)
        with naming_errors(name):
            self.writer = pq.ParquetWriter(target, arrow_schema(self.columns))
        self.closed = False

    def write_rows(self, rows: Sequence[Row], columns: Sequence[str], guarded: bool = True) -> None:
        if rows:
            with naming_errors(self.name):
                self.writer.write_table(rows_table(rows, self.columns))

    def write(self, lines: Sequence[str]) -> None:
        raise TypeError("a Parquet output takes rows (write_rows), not lines")

    def finish(self, summary: dict[str, Any], columns: Sequence[str]) -> None:
        """Record the summary in the file's metadata and write the footer."""
        if not self.closed:
            with naming_errors(self.name):
                self.writer.add_key_value_metadata({SUMMARY_KEY: json.dumps(summary, ensure_ascii=False)})
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with naming_errors(self.name):
                self.writer.close()


def is_parquet(path: str, head: bytes) -> bool:
    return path.lower().endswith(PARQUET_SUFFIX) or head[:4] == b"PAR1"


def part_files(folder: str) -> list[str]:
    """The part files of a Ray scan's folder, by name."""
    return sorted(n for n in os.listdir(folder) if n.startswith(PART_PREFIX) and n.endswith(PARQUET_SUFFIX))


def _summary_of(metadata: dict[bytes, bytes] | None) -> dict[str, Any]:
    raw = (metadata or {}).get(SUMMARY_KEY)
    if raw is None or len(raw) > MAX_SUMMARY_BYTES:
        return {}
    try:
        summary = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return summary if isinstance(summary, dict) else {}


def parquet_rows(
    handle: BinaryIO, name: str, limits: ReadLimits, budget: int
) -> tuple[Iterator[dict[str, Any]], tuple[str, ...], dict[str, Any], int]:
    """The rows of one Parquet file as dicts, a row group at a time, with its columns and summary.

    ``budget`` is what may still be read, in uncompressed bytes and rows counted by the caller's
    limits: a file whose footer declares more is refused before any row group is decoded.

    Returns:
        The rows, the columns, the summary from the metadata, and the uncompressed bytes declared.

    Raises:
        InputError: not a Parquet file, damaged, or larger than the limits.
    """
    pa, pq = pyarrow_modules()
    try:
        parquet = pq.ParquetFile(handle)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{name} is not a readable Parquet file ({exc})") from None
    meta = parquet.metadata
    declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if declared > budget:
        raise InputFileError(name, "too-large", f"more than {limits.max_bytes} bytes of rows")
    if meta.num_rows > limits.max_rows:
        raise InputError(f"{name} holds more than {limits.max_rows} rows, the most a report reads; report it in parts")
    columns = tuple(parquet.schema_arrow.names)

    def rows() -> Iterator[dict[str, Any]]:
        try:
            for batch in parquet.iter_batches(batch_size=1024):
                yield from batch.to_pylist()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InputError(f"{name} is a damaged Parquet file ({exc})") from None

    return rows(), columns, _summary_of(meta.metadata or parquet.schema_arrow.metadata), declared


def folder_summary(folder: str) -> dict[str, Any]:
    """The ``_summary.json`` of a folder of parts ({} while the scan has not finished)."""
    path = os.path.join(folder, FOLDER_SUMMARY)
    if not os.path.exists(path):
        return {}
    handle, _ = open_input(path)
    with handle:
        raw = read_capped(handle, MAX_SUMMARY_BYTES, path)
    try:
        summary = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(f"{path} is not a JSON summary; the folder is damaged") from None
    return summary if isinstance(summary, dict) else {}


def path_order(row: dict[str, Any]) -> bytes:
    """Rows of a folder's parts are put back in the byte order of their paths, as every output is."""
    return raw_path(str(row.get("path") or ""))
