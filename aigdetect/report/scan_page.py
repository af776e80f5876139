"""The HTML page of a scan: summary, score histogram, and every file in a sortable, filterable table.

The page is one file that works offline. Rows travel as a JSON data island and the page's script
draws them a page at a time, so 100,000 rows open in seconds; previews are capped (``thumbnails``)
and go to the most suspicious files first.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, InputError
from ..evidence import VERDICTS
from ..models.identity import random_backbone_warning
from ..progress import ProgressCallback
from ..results.read import read_scan_results
from ..results.schema import ERROR_KIND, SEVERITY, ReadLimits, ScanResults, ScanRow
from ..results.typed import safe_json
from ..version import __version__
from .config import DEFAULT_THUMBNAILS
from .histogram import Histogram, score_histogram
from .html import asset, content_security_policy, render, script_json, write_page
from .thumbnails import (
    CHANGED,
    GONE,
    NOT_AN_IMAGE,
    OUTSIDE,
    TOO_LARGE,
    UNDECODABLE,
    UNREADABLE,
    UNVERIFIED,
    Thumbnail,
    make_thumbnails,
)

"""Previews embedded by default: about 8 MB of page for 1,000 photos; the other rows show a placeholder."""
CAPPED = "capped"
PAGE_FIELDS: tuple[str, ...] = (
    "path", "kind", "model_verdict", "score", "crop_mean", "crop_max", "threshold", "generator", "evidence",
    "detector", "engine", "width", "height", "format", "error_reason", "error_detail", "size", "mtime", "sha256",
    "thumb",
)  # fmt: skip
"""The fields of each row in the page's data island, in order (``mtime`` in whole seconds)."""
LABELS: dict[str, str] = {
    "ai-generated": "AI-generated",
    "ai-edited": "AI-edited",
    "likely-ai": "likely AI",
    "inconclusive": "inconclusive",
    "likely-real": "likely real",
    "camera-signed": "camera-signed",
    "conflict": "conflict",
    "tampered-credentials": "tampered credentials",
    "fake": "fake (model only)",
    "real": "real (model only)",
    ERROR_KIND: "error",
}
CLAIMS: tuple[str, ...] = ("ai", "ai-edited", "camera", "edited", "none", "error")
PLACEHOLDERS: dict[str, str] = {
    GONE: "original not found",
    CHANGED: "changed since the scan",
    OUTSIDE: "outside the scan's folder",
    UNVERIFIED: "no size and time to check",
    UNREADABLE: "original unreadable",
    NOT_AN_IMAGE: "not an image",
    TOO_LARGE: "too large to preview",
    UNDECODABLE: "could not be decoded",
    CAPPED: "no preview (over the limit)",
}


@dataclass(frozen=True)
class ReportStats:
    """What ``write_scan_report`` wrote.

    Attributes:
        rows: files listed.
        thumbnails: previews embedded.
        bytes: size of the page.
        placeholders: rows that were due a preview but show a placeholder (original gone, changed or unreadable).
    """

    rows: int
    thumbnails: int
    bytes: int
    placeholders: int = 0


@dataclass(frozen=True)
class VerdictCount:
    kind: str
    label: str
    css: str
    count: int


@dataclass(frozen=True)
class DetectorLine:
    name: str
    fingerprint: str
    rows: int | None


@dataclass
class SummaryView:
    """The summary block: counts come from the rows; run facts from the scan's summary when it has them."""

    files: int
    counts: list[VerdictCount]
    detectors: list[DetectorLine]
    threshold: float | None
    bands: tuple[float, float] | None
    errors_by_reason: list[tuple[str, int]]
    source: str
    command: str = ""
    engine: str = ""
    date: str = ""
    version: str = ""
    elapsed: str = ""
    scoring: str = ""
    c2pa_trust: str = ""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _css_class(kind: str) -> str:
    return kind if kind in LABELS else "other"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _text(summary: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = summary.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value):
            return str(value)
    return ""


def _bands(summary: dict[str, Any], notes: list[str]) -> tuple[float, float] | None:
    raw = summary.get("bands")
    if raw is None:
        return None
    values = [_number(v) for v in raw] if isinstance(raw, list) else []
    if len(values) != 2 or None in values or values[0] > values[1]:  # type: ignore[operator]
        notes.append("The summary's bands are not two increasing numbers; they are not shown.")
        return None
    return values[0], values[1]  # type: ignore[return-value]


def _detectors(rows: list[ScanRow], summary: dict[str, Any]) -> list[DetectorLine]:
    used = Counter(row.detector for row in rows if row.detector)
    described = summary.get("detector")
    if isinstance(described, dict):
        name, fingerprint = _text(described, "name"), _text(described, "fingerprint")
        if not used:
            return [DetectorLine(name, fingerprint, None)] if name else []
        described = f"{name}@{fingerprint}" if fingerprint else name
    if not used:
        described = described if isinstance(described, str) else ""
        return [DetectorLine(*_split_detector(described), None)] if described else []
    return [DetectorLine(*_split_detector(ident), count) for ident, count in used.most_common()]


def _split_detector(ident: str) -> tuple[str, str]:
    name, at, fingerprint = ident.rpartition("@")
    return (name, fingerprint) if at else (ident, "")


def _counts(rows: list[ScanRow]) -> list[VerdictCount]:
    counts = Counter(row.kind for row in rows)
    fused = any(kind in VERDICTS for kind in counts) or not any(kind in ("fake", "real") for kind in counts)
    shown = [k for k in SEVERITY if (k in VERDICTS and fused) or counts[k]]
    shown += sorted(k for k in counts if k not in SEVERITY and k != ERROR_KIND) + [ERROR_KIND]
    return [VerdictCount(k, LABELS.get(k, k), _css_class(k), counts[k]) for k in shown]


def summarise(results: ScanResults, summary: dict[str, Any], thumbs: dict[int, Thumbnail], limit: int) -> SummaryView:
    """The summary block of the page, with notes on anything a reader should not miss."""
    rows = results.rows
    notes: list[str] = []
    if results.partial:
        notes.append("The last line of the results file was incomplete (an interrupted scan?) and is not listed.")
    told = summary.get("files")
    if isinstance(told, int) and not isinstance(told, bool) and told != len(rows):
        notes.append(
            f"The scan's summary counts {told} files but the results hold {len(rows)} rows; the counts here are of the rows."
        )
    threshold = _number(summary.get("threshold"))
    if threshold is None:
        common = Counter(row.threshold for row in rows if row.threshold is not None).most_common(1)
        threshold = common[0][0] if common else None
    bands = _bands(summary, notes)
    eligible = sum(row.status == "ok" for row in rows)
    if limit < eligible:
        notes.append(
            f"Previews for the {limit} most suspicious of {eligible} scanned files (by verdict, then score); "
            "the others show a placeholder."
            if limit
            else "No previews were embedded."
        )
    failed = Counter(t.reason for t in thumbs.values() if t.reason is not None)
    if failed:
        listed = ", ".join(f"{count} {PLACEHOLDERS[reason]}" for reason, count in failed.most_common())
        notes.append(f"{sum(failed.values())} previews could not be made: {listed}.")
    elapsed, scoring = _times(summary)
    errors = Counter(row.error_reason for row in rows if row.status == ERROR_KIND)
    return SummaryView(
        files=len(rows),
        counts=_counts(rows),
        detectors=_detectors(rows, summary),
        threshold=threshold,
        bands=bands,
        errors_by_reason=sorted(errors.items(), key=lambda item: (-item[1], item[0])),
        source=results.source,
        command=_text(summary, "command"),
        engine=_text(summary, "engine"),
        date=_text(summary, "date", "created", "started"),
        version=_text(summary, "aigdetect_version", "version"),
        elapsed=elapsed,
        scoring=scoring,
        c2pa_trust=_text(summary, "c2pa_trust"),
        notes=notes,
        warnings=_warnings(rows, summary),
    )


def _times(summary: dict[str, Any]) -> tuple[str, str]:
    """The scan's whole wall time, and its scoring time and rate. A summary from before 0.3 has only
    ``elapsed_s``, which timed the scoring alone: it is shown as such, never as the scan's time."""
    wall = _number(summary.get("wall_s"))
    scoring = _number(summary.get("scoring_s"))
    if scoring is None and wall is None:
        scoring = _number(summary.get("elapsed_s"))
    rate = _number(summary.get("images_per_s"))
    scoring_text = "" if scoring is None else f"{scoring:.1f} s" + (f" ({rate:.1f} images/s)" if rate else "")
    return ("" if wall is None else f"{wall:.1f} s"), scoring_text


def _warnings(rows: list[ScanRow], summary: dict[str, Any]) -> list[str]:
    """The banner above everything: a random backbone's warning for each such detector the rows or
    the summary name. Written here from the ids, never copied from the file, so a results file
    cannot put words of its own in the banner."""
    described = summary.get("detector")
    idents = {row.detector for row in rows if row.detector} | ({described} if isinstance(described, str) else set())
    return [w for w in (random_backbone_warning(ident) for ident in sorted(idents)) if w]


def page_data(results: ScanResults, thumbs: dict[int, Thumbnail], *, threshold: float | None, bands: Any) -> dict[str, Any]:
    """The data island: the rows as arrays of ``PAGE_FIELDS``, the previews, and the labels the script needs."""
    previews: list[str] = []
    rows = []
    for index, row in enumerate(results.rows):
        thumb: int | str | None = None
        made = thumbs.get(index)
        if made is not None and made.data_uri is not None:
            thumb = len(previews)
            previews.append(made.data_uri)
        elif made is not None:
            thumb = made.reason
        elif row.status == "ok":
            thumb = CAPPED
        evidence = [[f.source, f.claim, f.strength or "", f.detail, f.generator or ""] for f in row.evidence]
        mtime = None if row.mtime_ns is None else row.mtime_ns // 1_000_000_000
        rows.append([
            row.path, row.kind, row.model_verdict, row.score, row.crop_mean, row.crop_max, row.threshold, row.generator,
            evidence, row.detector, row.engine, row.width, row.height, row.format, row.error_reason, row.error_detail,
            row.size, mtime, row.sha256, thumb,
        ])  # fmt: skip
    kinds = [*SEVERITY, *sorted({r.kind for r in results.rows} - set(SEVERITY) - {ERROR_KIND}), ERROR_KIND]
    return {
        "fields": list(PAGE_FIELDS),
        "rows": rows,
        "thumbs": previews,
        "kinds": kinds,
        "labels": {k: LABELS.get(k, k) for k in kinds},
        "classes": {k: _css_class(k) for k in kinds},
        "claims": list(CLAIMS),
        "placeholders": PLACEHOLDERS,
        "threshold": threshold,
        "bands": bands,
    }


def scan_report_html(results: ScanResults, *, thumbs: dict[int, Thumbnail], limit: int, summary: dict[str, Any]) -> str:
    """The page as text, from rows, their previews and the scan's summary."""
    view = summarise(results, summary, thumbs, limit)
    threshold, bands = view.threshold, view.bands
    histogram: Histogram = score_histogram(
        (row.score for row in results.rows if row.score is not None), threshold=threshold, bands=bands
    )
    if histogram.outside:
        view.notes.append(f"{histogram.outside} scores lie outside 0 to 1; they are counted in the end bins.")
    css = asset("report.css") + asset("scan.css")
    js = asset("dom.js") + asset("scan.js")
    data = page_data(results, thumbs, threshold=threshold, bands=None if bands is None else list(bands))
    name = os.path.basename(results.source) or "scan results"
    return render(
        "scan.html.j2",
        csp=content_security_policy(scripts=(js,), styles=(css,)),
        version=__version__,
        title=f"aigdetect scan report: {name}",
        heading="aigdetect scan report",
        subtitle=f"{results.source or name}: {len(results.rows)} files",
        css=css,
        js=js,
        s=view,
        histogram=histogram,
        data=script_json(data),
    )


def write_scan_report(
    results: ScanResults | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    thumbnails: int = DEFAULT_THUMBNAILS,
    summary: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
    within: str | os.PathLike[str] | None = None,
    limits: ReadLimits | None = None,
    progress: ProgressCallback | None = None,
) -> ReportStats:
    """Write one self-contained HTML page for a scan's results.

    Args:
        results: rows read already, or the path of a CSV, JSON or JSONL results file.
        out: the page to write (atomically).
        thumbnails: the most previews embedded (``DEFAULT_THUMBNAILS``); they go to the most
            suspicious files first, made from the originals when those still exist unchanged.
        summary: the scan's summary; its keys override those of a JSON results file.
        root: the folder the scan ran in, against which relative paths are resolved (default:
            the current folder); only files under it get a preview.
        within: the folder files must be under to get a preview, when wider than ``root`` (see
            ``make_thumbnails``).
        limits: caps for reading a results file.
        progress: receives a ``thumbnails`` event (previews done and to make) as previews are made.

    Raises:
        ConfigError: ``thumbnails`` is negative.
        InputError: the results file cannot be read, or the summary cannot be used.
    """
    if thumbnails < 0:
        raise ConfigError(f"thumbnails must be 0 or more, got {thumbnails}")
    if not isinstance(results, ScanResults):
        results = read_scan_results(results, limits=limits)
    limits = limits or ReadLimits()
    try:
        merged = safe_json({**results.summary, **(summary or {})}, limits.max_text)
    except ValueError as exc:
        raise InputError(f"the scan summary cannot be used ({exc})") from None
    thumbs = make_thumbnails(results.rows, thumbnails, root=root, within=within, progress=progress)
    html = scan_report_html(results, thumbs=thumbs, limit=thumbnails, summary=merged)
    size = write_page(out, html)
    embedded = sum(t.data_uri is not None for t in thumbs.values())
    return ReportStats(len(results.rows), embedded, size, len(thumbs) - embedded)
