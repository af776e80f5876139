"""Read the results of a scan (CSV, JSON or JSONL; current and older columns) into typed rows.

A results file is input like any other: it may be damaged, edited by hand, or huge, and its text
(file names, metadata, generator names) comes from whoever made the scanned files. So the reader
caps the file, the rows, every cell and the findings per row before it keeps anything, refuses
structural damage with an ``InputError`` that names the line, and makes every string safe to encode
(lone surrogates become visible ``\\udcNN`` escapes). Rendering escapes the rest.

Older files are read too: ``verdict`` as fake|real (kept as the model's verdict, since no fusion
ran) and one ``error`` column (``reason: detail``) instead of ``error_reason`` and ``error_detail``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, InputError
from ..fileio import open_input, read_capped
from ..scan.cells import unguard

LEGACY_VERDICTS: tuple[str, ...] = ("fake", "real")
"""The verdicts of scans made before fusion: the model's alone."""
ERROR_KIND = "error"
SEVERITY: tuple[str, ...] = (
    "ai-generated", "ai-edited", "likely-ai", "fake", "tampered-credentials", "conflict",
    "inconclusive", "likely-real", "real", "camera-signed",
)  # fmt: skip
"""Verdicts from most to least suspicious: the order of the report's counts, of sorting by verdict,
and of who gets a preview first when previews are capped."""
REQUIRED_COLUMNS: tuple[str, ...] = ("path", "status")
_TEXT = (
    "path",
    "verdict",
    "model_verdict",
    "generator",
    "detector",
    "engine",
    "format",
    "error_reason",
    "error_detail",
    "sha256",
)
_FLOATS = ("score", "crop_mean", "crop_max", "threshold")
_INTS = ("width", "height", "size", "mtime_ns")
_FINDING_FIELDS = ("source", "claim", "strength", "detail", "generator")
# A compact evidence cell is "source:claim:detail; source:claim:detail"; a detail may hold "; " itself,
# so a new finding starts only where "; " is followed by something shaped like "source:claim:" (or "source:claim;").
_NEXT_FINDING = re.compile(r";[ \t]*(?=[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]*(?:[:;]|$))")
_SPACE = " \t\r\n"  # ASCII only: a detail keeps any other character it holds
_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_PART = re.compile(r"\.part\d+$")


@dataclass(frozen=True)
class ReadLimits:
    """Caps applied while reading, so a damaged or hostile results file cannot exhaust memory.

    Attributes:
        max_bytes: the largest results file read (512 MiB holds about a million rows).
        max_rows: the most rows kept.
        max_text: the longest text cell, in characters (paths are at most 4096 bytes on Linux).
        max_findings: the most evidence findings on one row.
    """

    max_bytes: int = 512 * 1024 * 1024
    max_rows: int = 1_000_000
    max_text: int = 65_536
    max_findings: int = 256

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_rows", "max_text", "max_findings"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ReadLimits.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Finding:
    """One piece of metadata evidence: where it was found, what it claims, and how strongly."""

    source: str
    claim: str
    strength: str = ""
    detail: str = ""
    generator: str = ""


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
        format: csv, json or jsonl.
        partial: a half-written last line (an interrupted scan) was left out.
    """

    rows: list[ScanRow]
    summary: dict[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    source: str = ""
    format: str = ""
    partial: bool = False


def clean_text(value: str, limit: int) -> str:
    """The text with lone surrogates made visible (so it always encodes as UTF-8), or refused when too long."""
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters")
    if value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def clean_json(value: Any, limit: int, depth: int = 0) -> Any:
    """A JSON value (a summary) with every string cleaned and nesting kept shallow."""
    if depth > 8:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {clean_text(str(k), limit): clean_json(v, limit, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v, limit, depth + 1) for v in value]
    return value


def _text(value: Any, limit: int) -> str:
    if isinstance(value, str):
        return clean_text(value, limit)
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected text, found {type(value).__name__}")


def _number(value: Any, kind: type) -> Any:
    """An int or finite float from JSON or CSV text; empty means None, NaN and infinities too."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("expected a number, found true/false")
    if kind is float:
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str) and len(value) <= 64:
            number = float(value)
        else:
            raise ValueError(f"expected a number, found {str(value)[:40]!r}")
        return number if math.isfinite(number) else None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and len(value) <= 40:
        return int(value)
    raise ValueError(f"expected a whole number, found {str(value)[:40]!r}")


def parse_compact_evidence(text: str) -> list[Finding]:
    """The findings of a CSV evidence cell, ``source:claim:detail; source:claim:detail``.

    CSV keeps no strength or generator per finding; those stay empty.

    Raises:
        ValueError: a finding without a ``source:claim`` prefix.
    """
    findings = []
    for piece in _NEXT_FINDING.split(text.strip(_SPACE)):
        if not piece.strip(_SPACE):
            continue
        parts = [part.strip(_SPACE) for part in piece.split(":", 2)]
        if len(parts) < 2:
            raise ValueError(f"evidence {piece[:40]!r} is not source:claim:detail")
        findings.append(Finding(parts[0], parts[1], detail=parts[2] if len(parts) == 3 else ""))
    return findings


def _finding(item: Any, limit: int) -> Finding:
    if not isinstance(item, dict):
        raise ValueError("an evidence finding is not an object")
    return Finding(*(_text(item.get(name), limit) for name in _FINDING_FIELDS))


def _evidence(value: Any, limits: ReadLimits) -> tuple[Finding, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        findings = parse_compact_evidence(clean_text(value, limits.max_text))
    elif isinstance(value, list):
        if len(value) > limits.max_findings:
            raise ValueError(f"more than {limits.max_findings} evidence findings")
        findings = [_finding(item, limits.max_text) for item in value]
    else:
        raise ValueError("evidence is neither a list of findings nor text")
    if len(findings) > limits.max_findings:
        raise ValueError(f"more than {limits.max_findings} evidence findings")
    return tuple(findings)


def to_row(raw: dict[str, Any], limits: ReadLimits) -> ScanRow:
    """Type one row read from any format, reading the older columns too.

    Raises:
        ValueError: a value of the wrong kind, too long, or a status other than ok|error.
    """
    values: dict[str, Any] = {name: _text(raw.get(name), limits.max_text) for name in _TEXT}
    values.update({name: _number(raw.get(name), float) for name in _FLOATS})
    values.update({name: _number(raw.get(name), int) for name in _INTS})
    values["evidence"] = _evidence(raw.get("evidence"), limits)
    status = _text(raw.get("status"), limits.max_text)
    if status not in ("ok", ERROR_KIND):
        raise ValueError(f"status is {status[:40]!r}, not ok or error")
    if not values["path"]:
        raise ValueError("the path is empty")
    legacy_error = _text(raw.get("error"), limits.max_text)
    if legacy_error and not values["error_reason"]:
        reason, _, detail = legacy_error.partition(":")
        values["error_reason"], values["error_detail"] = reason.strip(), detail.strip()
    if values["verdict"] in LEGACY_VERDICTS and not values["model_verdict"]:
        values["model_verdict"] = values["verdict"]
    if status == "ok" and not values["verdict"]:
        raise ValueError("status is ok but the verdict is empty")
    if status == ERROR_KIND:
        values["error_reason"] = values["error_reason"] or "unknown"
    return ScanRow(status=status, **values)


def _detect_format(path: str, text: str) -> str:
    suffix = os.path.splitext(_PART.sub("", path))[1].lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if text.lstrip()[:1] != "{":
        return "csv"
    try:
        first = json.loads(text.lstrip().split("\n", 1)[0])
    except (ValueError, RecursionError):
        return "json"
    return "json" if isinstance(first, dict) and "rows" in first else "jsonl"


def _lines_of(text: str) -> tuple[list[str], str]:
    """Complete lines, and what followed the last newline (a half-written line, or "")."""
    pieces = text.split("\n")
    return pieces[:-1], pieces[-1]


def _json_rows(name: str, text: str) -> tuple[list[tuple[int, Any]], tuple[str, ...], dict[str, Any], bool]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{name} is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise InputError(f'{name} is not an aigdetect scan result: no "rows" list')
    columns = document.get("columns") or []
    summary = document.get("summary") or {}
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(f'{name}: "columns" is not a list of names')
    if not isinstance(summary, dict):
        raise InputError(f'{name}: "summary" is not an object')
    return list(enumerate(document["rows"], start=1)), tuple(columns), summary, False


def _jsonl_rows(name: str, text: str) -> tuple[list[tuple[int, Any]], tuple[str, ...], dict[str, Any], bool]:
    lines, tail = _lines_of(text)
    partial = False
    if tail.strip():
        try:
            json.loads(tail)
            lines.append(tail)
        except (ValueError, RecursionError):
            partial = True
    items = []
    columns: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            raise InputError(f"line {number} of {name} is not valid JSON; the file is damaged") from None
        if isinstance(row, dict):
            columns.update(dict.fromkeys(str(k) for k in row))
        items.append((number, row))
    return items, tuple(columns), {}, partial


def _csv_records(text: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), strict=True)


def _csv_rows(name: str, text: str) -> tuple[list[tuple[int, Any]], tuple[str, ...], dict[str, Any], bool]:
    lines, tail = _lines_of(text)
    partial = False
    if tail.strip():
        header_width = len(next(_csv_records(lines[0]), [])) if lines else 0
        try:
            complete = len(next(_csv_records(tail), [])) == header_width
        except csv.Error:
            complete = False
        if complete:
            lines.append(tail)
        else:
            partial = True
    records = _csv_records("\n".join(lines) + "\n")
    try:
        header = tuple(unguard(c) for c in next(records, []))
        items = []
        for values in records:
            number = records.line_num
            if not values:
                continue
            if len(values) != len(header):
                raise InputError(
                    f"line {number} of {name} has {len(values)} fields instead of {len(header)}; the file is damaged"
                )
            items.append((number, dict(zip(header, (unguard(v) for v in values)))))
    except csv.Error as exc:
        raise InputError(f"{name} is not readable CSV near line {records.line_num} ({exc})") from None
    return items, header, {}, partial


_PARSERS = {"csv": _csv_rows, "json": _json_rows, "jsonl": _jsonl_rows}


def _typed(name: str, items: Iterable[tuple[int, Any]], limits: ReadLimits, unit: str) -> list[ScanRow]:
    rows = []
    for number, raw in items:
        if len(rows) >= limits.max_rows:
            raise InputError(
                f"{name} holds more than {limits.max_rows} rows, the most a report reads; scan in parts (`shard`) "
                "and report each part"
            )
        if not isinstance(raw, dict):
            raise InputError(f"{unit} {number} of {name} is not an object; the file is damaged")
        try:
            rows.append(to_row(raw, limits))
        except ValueError as exc:
            raise InputError(f"{unit} {number} of {name}: {exc}") from None
    return rows


def read_scan_results(path: str | os.PathLike[str], *, limits: ReadLimits | None = None) -> ScanResults:
    """Read a scan's CSV, JSON or JSONL output, whichever columns it has.

    The format follows the suffix (``.partK`` shard suffixes ignored), else the content. A
    half-written last line of CSV or JSONL (a killed scan) is left out and flagged in ``partial``.

    Raises:
        InputError: unreadable, too large, not UTF-8, not a scan result (``path`` and ``status``
            columns), or damaged; the message names the line.
    """
    limits = limits or ReadLimits()
    name = os.fspath(path)
    handle, _ = open_input(path, follow_symlinks=True)
    with handle:
        data = read_capped(handle, limits.max_bytes, name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text (byte {exc.start}); it was not written by 'aigdetect scan'") from None
    output_format = _detect_format(name, text)
    items, columns, summary, partial = _PARSERS[output_format](name, text)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns] if columns else []
    if missing:
        raise InputError(f"{name} is not an aigdetect scan result: no {' or '.join(missing)} column")
    unit = "row" if output_format == "json" else "line"
    rows = _typed(name, items, limits, unit)
    try:
        summary = clean_json(summary, limits.max_text)
        columns = tuple(clean_text(c, limits.max_text) for c in columns)
    except ValueError as exc:
        raise InputError(f"{name}: the summary cannot be used ({exc})") from None
    return ScanResults(rows, summary, columns, name, output_format, partial)
