"""The HTML page of a bench or robustness run, written as report.html beside results.json.

It shows the same tables as results.md and the terminal (built by ``evaluation.tables`` from the
results dict, so the three never disagree), the robustness plot embedded as a PNG data URI, and the
per-subset figures. The page has no script at all.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..evaluation.bench_config import PIXEL_ONLY, REFERENCE_ENGINE
from ..evaluation.tables import TextTable, bench_tables, family_table, paper_tables, pct, robustness_tables
from ..fileio import open_input, read_capped
from ..version import __version__
from .html import asset, content_security_policy, render, write_page

REPORT_HTML = "report.html"
MAX_PLOT_BYTES = 16 * 1024 * 1024
MAX_LISTED_ERRORS = 1000
"""Undecodable images listed on the page; results.json lists them all."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DETAIL_METRICS = (
    ("ap", "AP"), ("acc_calibrated", "Acc"), ("real_acc_calibrated", "Real"), ("fake_acc_calibrated", "Fake"),
    ("balanced_acc_calibrated", "Bal."), ("acc_0.5", "Acc@0.5"), ("acc_oracle", "Oracle"),
)  # fmt: skip


def _threshold(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def subset_details(pass_data: dict[str, Any], title: str) -> TextTable:
    """Every subset of one pass: counts, both thresholds and the accuracy figures (%)."""
    table = TextTable(
        title=title,
        columns=[
            "Subset",
            "Family",
            "Real",
            "Fake",
            "Errors",
            "Threshold",
            "Oracle thr.",
            *(label for _, label in _DETAIL_METRICS),
        ],
        caption="Threshold: the calibrated one; Oracle thr.: the best on the test labels. "
        "Acc, Real, Fake, Bal. at the calibrated threshold; all figures in %.",
    )
    for s in pass_data["subsets"]:
        table.add(
            [
                s["title"],
                s["family"] or "",
                str(s["n_real"]),
                str(s["n_fake"]),
                str(s["n_errors"]),
                _threshold(s["thresholds"].get("calibrated")),
                _threshold(s["thresholds"].get("oracle")),
                *(pct(s["metrics"].get(key)) for key, _ in _DETAIL_METRICS),
            ]
        )
    return table


def _facts(data: dict[str, Any]) -> list[tuple[str, str]]:
    detector = data["detector"]
    sampling = data.get("sampling") or {}
    facts = [
        ("Suite", data["suite"]["title"]),
        ("Detector", f"{detector['name']} ({detector.get('origin', '')}, backbone {detector.get('backbone', '')})"),
        ("Calibrated threshold", _threshold(data.get("threshold"))),
        ("Scores", str(data.get("scores") or PIXEL_ONLY)),
        ("Engine", str(data.get("engine") or REFERENCE_ENGINE)),
        ("Root", str(data.get("root", ""))),
        ("Command", str(data.get("command", ""))),
        ("Sampling", f"{sampling.get('max_per_class') or 'all'} images per class, seed {sampling.get('seed')}"),
    ]
    if data.get("reencode"):
        facts.append(("Re-encode", str(data["reencode"])))
    if data.get("compare"):
        facts.append(("Compared with", f"{data['compare']['detector']['name']} ({data['compare']['path']})"))
    facts += [("Date", str(data.get("created", ""))), ("aigdetect", str(data.get("aigdetect_version", "")))]
    return facts


def _plot_uri(plot_png: str | os.PathLike[str]) -> str:
    name = os.fspath(plot_png)
    handle, _ = open_input(plot_png, follow_symlinks=True)
    with handle:
        payload = read_capped(handle, MAX_PLOT_BYTES, name)
    if not payload.startswith(_PNG_SIGNATURE):
        raise InputError(f"{name} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(payload).decode("ascii")


def _page(data: dict[str, Any], out_dir: str | os.PathLike[str], tables: list[TextTable], details: list[TextTable],
          plot: str | None) -> Path:  # fmt: skip
    css = asset("report.css")
    errors = data.get("errors") or []
    kind = data["kind"]
    out = Path(out_dir) / REPORT_HTML
    html = render(
        "bench.html.j2",
        csp=content_security_policy(styles=(css,)),
        version=__version__,
        title=f"aigdetect {kind}: {data['suite']['title']}, {data['detector']['name']}",
        heading=f"aigdetect {kind}: {data['suite']['title']}",
        subtitle=data["detector"]["name"],
        css=css,
        facts=_facts(data),
        tables=tables,
        details=details,
        plot=plot,
        missing=data.get("missing") or [],
        notes=data.get("notes") or [],
        errors=errors[:MAX_LISTED_ERRORS],
        more_errors=max(0, len(errors) - MAX_LISTED_ERRORS),
    )
    write_page(out, html)
    return out


def write_bench_html(data: dict[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write report.html for a bench run's results dict (as in results.json); return its path."""
    tables = [*paper_tables(data), *(t for t in (family_table(data),) if t), *bench_tables(data)]
    details = [subset_details(data["clean"], "Per subset, as stored")]
    if data.get("reencoded"):
        details.append(subset_details(data["reencoded"], f"Per subset, re-encoded {data['reencode']}"))
    if data.get("reference"):
        details.append(subset_details(data["reference"], f"Per subset, {REFERENCE_ENGINE} reference"))
    return _page(data, out_dir, tables, details, None)


def write_robustness_html(
    data: dict[str, Any], out_dir: str | os.PathLike[str], plot_png: str | os.PathLike[str] | None = None
) -> Path:
    """Write report.html for a robustness sweep, with the plot (robustness.png) embedded when given.

    Raises:
        InputError: ``plot_png`` is given but unreadable, too large or not a PNG.
    """
    plot = _plot_uri(plot_png) if plot_png is not None else None
    details = [subset_details(level, f"Per subset, {level['label']}") for level in data["levels"]]
    return _page(data, out_dir, robustness_tables(data), details, plot)
