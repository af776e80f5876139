"""How values become CSV cells, and back: formula-safe text, compact evidence, integral numbers.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or a
carriage return) as a formula, and file names and metadata come from whoever made the files. So a
text cell starting with one of those, or with the quote itself, gets one leading ``'``: spreadsheets
show the text as written, and ``unguard`` removes exactly that quote again, so the cell round-trips.
JSON and JSONL hold raw values.
"""

from __future__ import annotations

import re
from typing import Any

GUARDED_START = frozenset("=+-@\t\r'")
# A compact evidence cell is "source:claim:detail; source:claim:detail"; a detail may hold "; " itself,
# so a new finding starts only where "; " is followed by something shaped like "source:claim:" (or "source:claim;").
_NEXT_FINDING = re.compile(r";[ \t]*(?=[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]*(?:[:;]|$))")
_SPACE = " \t\r\n"  # ASCII only: a detail keeps any other character it holds


def guard(text: str) -> str:
    """The cell a spreadsheet shows as text: one ``'`` before a formula-like start."""
    return "'" + text if text[:1] in GUARDED_START else text


def unguard(cell: str) -> str:
    """Invert ``guard``: drop the one ``'`` it added, and nothing else."""
    return cell[1:] if len(cell) > 1 and cell[0] == "'" and cell[1] in GUARDED_START else cell


def compact_evidence(findings: list[dict[str, Any]]) -> str:
    """``source:claim:detail; ...``: the evidence of a row in one CSV cell (JSON keeps the list)."""
    return "; ".join(f"{f['source']}:{f['claim']}:{str(f['detail']).replace(';', ',')}" for f in findings)


def split_compact_evidence(text: str) -> list[tuple[str, str, str]]:
    """Invert ``compact_evidence``: (source, claim, detail) of each finding of a CSV evidence cell.

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
        findings.append((parts[0], parts[1], parts[2] if len(parts) == 3 else ""))
    return findings


def csv_cell(value: Any, guarded: bool) -> str:
    """One value as CSV text; lists are findings, and text is guarded unless ``guarded`` is off."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = compact_evidence(value)
    if isinstance(value, str):
        return guard(value) if guarded else value
    return str(value)
