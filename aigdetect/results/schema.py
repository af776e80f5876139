"""The results format of a scan: its columns with their types, the schema version, and the typed row.

Every writer (CSV, JSON, JSONL, and the Parquet output to come) and every reader (``resume``,
``merge``, ``report``) takes the columns and their types from here, so a column is defined once.

Schema versions, told apart by their columns (files carry no version field, so that outputs stay
as they were):

1. before the evidence layer: ``verdict`` is the model's ``fake``/``real`` and one ``error`` column
   holds ``reason: detail``;
2. today: the fused ``verdict``, ``model_verdict``, ``generator``, ``evidence``, ``engine``, and
   ``error_reason`` with ``error_detail``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..evidence.findings import Finding

SCHEMA_VERSION = 2
LEGACY_SCHEMA_VERSION = 1

Row = dict[str, Any]
"""A row as writers take it and ``resume`` reads it back: column name to value (None for empty)."""

ERROR_KIND = "error"
STATUSES: tuple[str, ...] = ("ok", ERROR_KIND)
MODEL_VERDICTS: tuple[str, ...] = ("fake", "real")
"""The model's verdict alone (``score > threshold`` is fake); also the verdicts of version-1 files."""
SEVERITY: tuple[str, ...] = (
    "ai-generated", "ai-edited", "likely-ai", "fake", "tampered-credentials", "conflict",
    "inconclusive", "likely-real", "real", "camera-signed",
)  # fmt: skip
"""Every verdict a row may hold (fused ones and version 1's), from most to least suspicious: the
order of the report's counts, of sorting by verdict, and of who gets a preview first."""


@dataclass(frozen=True)
class Column:
    """One column: its name and the type of its cells.

    Attributes:
        name: the column's name in every format.
        kind: ``text``, ``float`` (finite, within ``bounds``), ``int`` (within ``bounds``), ``enum``
            (text from ``values``, or empty) or ``evidence`` (a list of findings; compact text in CSV).
        values: the allowed values of an ``enum`` column.
        bounds: the inclusive range of a number column; None for no bound on that side.
    """

    name: str
    kind: str
    values: tuple[str, ...] = ()
    bounds: tuple[float | None, float | None] = (None, None)


_UNIT = (0.0, 1.0)
_COUNT = (0, None)
SCHEMA: tuple[Column, ...] = (
    Column("path", "text"),
    Column("status", "enum", STATUSES),
    Column("verdict", "enum", SEVERITY),
    Column("model_verdict", "enum", MODEL_VERDICTS),
    Column("score", "float", bounds=_UNIT),
    Column("crop_mean", "float", bounds=_UNIT),
    Column("crop_max", "float", bounds=_UNIT),
    Column("threshold", "float", bounds=_UNIT),
    Column("generator", "text"),
    Column("evidence", "evidence"),
    Column("detector", "text"),
    Column("engine", "text"),
    Column("width", "int", bounds=_COUNT),
    Column("height", "int", bounds=_COUNT),
    Column("format", "text"),
    Column("error_reason", "text"),
    Column("error_detail", "text"),
    Column("size", "int", bounds=_COUNT),
    Column("mtime_ns", "int"),
    Column("sha256", "text"),
)
"""Every column of schema version 2, in the order of a scan with crops."""
COLUMN_TYPES: dict[str, Column] = {c.name: c for c in SCHEMA}
LEGACY_COLUMNS: tuple[str, ...] = ("error",)
"""Version 1's columns that version 2 replaced (``error`` is ``reason: detail``)."""

CROP_COLUMNS: tuple[str, ...] = ("crop_mean", "crop_max")
BASE_COLUMNS: tuple[str, ...] = tuple(c.name for c in SCHEMA if c.name not in CROP_COLUMNS)
EVIDENCE_COLUMNS: tuple[str, ...] = ("model_verdict", "generator", "evidence")
"""Columns a version-1 output lacks: its rows are stale for ``resume``."""
INTEGER_COLUMNS: tuple[str, ...] = tuple(c.name for c in SCHEMA if c.kind == "int")
REQUIRED_COLUMNS: tuple[str, ...] = ("path", "status")
"""What makes a file a scan result at all, in every version."""


def scan_columns(crops: int) -> tuple[str, ...]:
    """Column order of a scan; with crops, their mean and max sit right after the centre score."""
    if not crops:
        return BASE_COLUMNS
    at = BASE_COLUMNS.index("score") + 1
    return BASE_COLUMNS[:at] + CROP_COLUMNS + BASE_COLUMNS[at:]


def schema_version(columns: Iterable[str]) -> int:
    """The schema version a file's columns belong to."""
    return SCHEMA_VERSION if set(EVIDENCE_COLUMNS) & set(columns) else LEGACY_SCHEMA_VERSION


@dataclass(frozen=True)
class ReadLimits:
    """Caps applied while reading, so a damaged or hostile results file cannot exhaust memory.

    Attributes:
        max_bytes: the largest results file read (512 MiB holds about a million rows).
        max_rows: the most rows kept.
        max_text: the longest text cell, in characters (paths are at most 4096 bytes on Linux).
        max_findings: the most evidence findings on one row.
        max_row_bytes: the longest line of CSV or JSONL, the largest row of a JSON document (and
            its columns and summary); rows of a scan are a few kilobytes.
    """

    max_bytes: int = 512 * 1024 * 1024
    max_rows: int = 1_000_000
    max_text: int = 65_536
    max_findings: int = 256
    max_row_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_rows", "max_text", "max_findings", "max_row_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ReadLimits.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class ScanRow:
    """One file of a scan, typed; missing optional columns are None (numbers) or empty (text)."""

    path: str
    status: str
    verdict: str = ""
    model_verdict: str = ""
    score: float | None = None
    crop_mean: float | None = None
    crop_max: float | None = None
    threshold: float | None = None
    generator: str = ""
    evidence: tuple[Finding, ...] = ()
    detector: str = ""
    engine: str = ""
    width: int | None = None
    height: int | None = None
    format: str = ""
    error_reason: str = ""
    error_detail: str = ""
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str = ""

    @property
    def kind(self) -> str:
        """The verdict the report files this row under: its verdict, or ``error``."""
        return ERROR_KIND if self.status == ERROR_KIND else self.verdict


@dataclass
class ScanResults:
    """A scan's rows, its summary (possibly empty) and the columns its file had.

    Attributes:
        rows: the rows in file order.
        summary: the scan's summary as written (JSON files), else empty.
        columns: the file's own column names, in its order.
        source: the file the rows came from, as text ("" when built in memory).
        format: csv, json, jsonl or parquet.
        partial: a half-written last line (an interrupted scan) was left out.
    """

    rows: list[ScanRow]
    summary: dict[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    source: str = ""
    format: str = ""
    partial: bool = False
