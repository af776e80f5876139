"""Every cell read back from a results file, checked against its column's type and made a ``ScanRow``.

A results file is input like any other: edited by hand, damaged, or made to attack whoever reads
it. So each cell must be what the schema says (a score finite and within 0..1, a whole number
written as one, a verdict from the closed set, findings in the evidence vocabulary), or the row is
refused with a ``CellError`` that names the column. Text is made safe to encode (lone surrogates
become visible ``\\udcNN`` escapes) and capped; rendering escapes the rest.

Version-1 files are read too: ``verdict`` as fake|real (kept as the model's verdict, since no
fusion ran) and one ``error`` column (``reason: detail``) instead of ``error_reason`` and ``error_detail``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..evidence.findings import EvidenceError, Finding
from .cells import split_compact_evidence
from .schema import COLUMN_TYPES, ERROR_KIND, MODEL_VERDICTS, Column, ReadLimits, ScanRow

_WHOLE = re.compile(r"-?[0-9]{1,40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FINDING_KEYS: tuple[str, ...] = ("source", "claim", "strength", "detail", "generator")
_SHARED = ("status", "verdict", "model_verdict", "generator", "detector", "engine", "format", "error_reason", "threshold")
"""Columns whose few distinct values repeat on every row: one object each keeps a million rows small."""
_MAX_SHARED = 4096


class CellError(ValueError):
    """A cell that is not of its column's type; ``column`` names it."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def safe_text(value: str, limit: int) -> str:
    """The text with lone surrogates made visible (so it always encodes as UTF-8), or refused when too long."""
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters")
    if value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def safe_json(value: Any, limit: int, depth: int = 0) -> Any:
    """A JSON value (a summary) with every string made safe and nesting kept shallow."""
    if depth > 8:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        return safe_text(value, limit)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {safe_text(str(k), limit): safe_json(v, limit, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [safe_json(v, limit, depth + 1) for v in value]
    return value


def _text(value: Any, limit: int) -> str:
    if isinstance(value, str):
        return safe_text(value, limit)
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected text, found {type(value).__name__}")


def _in_bounds(number: float, column: Column) -> None:
    low, high = column.bounds
    if (low is not None and number < low) or (high is not None and number > high):
        span = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
        raise ValueError(f"{number!r} is outside {span}")


def _float(value: Any, column: Column) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("expected a number, found true/false")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        number = float(value)
    else:
        raise ValueError(f"expected a number, found {str(value)[:40]!r}")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    _in_bounds(number, column)
    return number


def _int(value: Any, column: Column) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("expected a number, found true/false")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _WHOLE.fullmatch(value):
        number = int(value)
    else:
        raise ValueError(f"expected a whole number, found {str(value)[:40]!r}")
    _in_bounds(number, column)
    return number


def _enum(value: Any, column: Column, limit: int) -> str:
    text = _text(value, limit)
    if text and text not in column.values:
        raise ValueError(f"{column.name} is {text[:40]!r}, not one of {', '.join(column.values)}")
    return text


def _finding(item: Any, limit: int) -> Finding:
    if not isinstance(item, dict):
        raise ValueError("an evidence finding is not an object")
    keys = set(item)
    if not set(_FINDING_KEYS[:4]) <= keys <= set(_FINDING_KEYS):
        raise ValueError(f"a finding has the keys {', '.join(_FINDING_KEYS)}, not {sorted(keys)[:8]}")
    source, claim, strength, detail, generator = (_text(item.get(name), limit) for name in _FINDING_KEYS)
    return Finding.make(source, claim, strength, detail, generator or None)


def parse_compact_evidence(text: str) -> list[Finding]:
    """The findings of a CSV evidence cell, ``source:claim:detail; source:claim:detail``.

    CSV keeps no strength or generator per finding: strength is None, generator None.

    Raises:
        ValueError: a finding without a ``source:claim`` prefix, or outside the evidence vocabulary.
    """
    try:
        return [Finding.make(source, claim, None, detail) for source, claim, detail in split_compact_evidence(text)]
    except EvidenceError as exc:
        raise ValueError(str(exc)) from None


def _evidence(value: Any, limits: ReadLimits) -> tuple[Finding, ...]:
    if value is None or value == "":
        return ()
    try:
        if isinstance(value, str):
            findings = parse_compact_evidence(safe_text(value, limits.max_text))
        elif isinstance(value, list):
            if len(value) > limits.max_findings:
                raise ValueError(f"more than {limits.max_findings} evidence findings")
            findings = [_finding(item, limits.max_text) for item in value]
        else:
            raise ValueError("evidence is neither a list of findings nor text")
    except EvidenceError as exc:
        raise ValueError(str(exc)) from None
    if len(findings) > limits.max_findings:
        raise ValueError(f"more than {limits.max_findings} evidence findings")
    return tuple(findings)


def _cell(raw: dict[str, Any], name: str, limits: ReadLimits) -> Any:
    column = COLUMN_TYPES[name]
    value = raw.get(name)
    if column.kind == "float":
        return _float(value, column)
    if column.kind == "int":
        return _int(value, column)
    if column.kind == "enum":
        return _enum(value, column, limits.max_text)
    if column.kind == "evidence":
        return _evidence(value, limits)
    text = _text(value, limits.max_text)
    if name == "sha256" and text and not _SHA256.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not 64 lowercase hexadecimal digits")
    return text


_ORDERED = sorted(COLUMN_TYPES, key=lambda n: (COLUMN_TYPES[n].kind == "enum", n == "status"))
"""Numbers and text first, enums last: a row's first complaint is about its values, the status last."""


def to_row(raw: dict[str, Any], limits: ReadLimits, shared: dict[Any, Any] | None = None) -> ScanRow:
    """Type one row read from any format and version, every cell checked against the schema.

    Args:
        raw: column name to value, as JSON or (unguarded) CSV gives them.
        limits: the caps on text and findings.
        shared: a cache that lets rows share one object per repeated value (verdicts, detector).

    Raises:
        CellError: a value of the wrong type, out of range, too long, or outside its set.
    """
    values: dict[str, Any] = {}
    for name in _ORDERED:
        try:
            values[name] = _cell(raw, name, limits)
        except (ValueError, RecursionError) as exc:
            raise CellError(name, f"column {name}: {exc}") from None
    if not values["path"]:
        raise CellError("path", "column path: the path is empty")
    legacy_error = _text(raw.get("error"), limits.max_text)
    if legacy_error and not values["error_reason"]:
        reason, _, detail = legacy_error.partition(":")
        values["error_reason"], values["error_detail"] = reason.strip(), detail.strip()
    if values["verdict"] in MODEL_VERDICTS and not values["model_verdict"]:
        values["model_verdict"] = values["verdict"]
    if not values["status"]:
        raise CellError("status", "column status: status is '', not ok or error")
    if values["status"] == "ok" and not values["verdict"]:
        raise CellError("verdict", "column verdict: status is ok but the verdict is empty")
    if values["status"] == ERROR_KIND:
        values["error_reason"] = values["error_reason"] or "unknown"
    if shared is not None:
        for name in _SHARED:
            value = values[name]
            values[name] = shared.setdefault(value, value) if len(shared) < _MAX_SHARED else shared.get(value, value)
    return ScanRow(**values)
