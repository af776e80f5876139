"""Self-contained HTML reports: one page per scan (``write_scan_report``) and per bench or robustness run.

The names are imported on first use (PEP 562): reading a results file needs neither the model
stack nor the bench tables.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..evidence.findings import Finding
    from ..results.read import read_scan_results
    from ..results.schema import ReadLimits, ScanResults, ScanRow
    from .bench_page import REPORT_HTML, write_bench_html, write_robustness_html
    from .config import DEFAULT_THUMBNAILS
    from .scan_page import ReportStats, write_scan_report

_LAZY = {
    "REPORT_HTML": ".bench_page",
    "write_bench_html": ".bench_page",
    "write_robustness_html": ".bench_page",
    "DEFAULT_THUMBNAILS": ".config",
    "ReportStats": ".scan_page",
    "write_scan_report": ".scan_page",
    "Finding": "..evidence.findings",
    "ReadLimits": "..results.schema",
    "ScanResults": "..results.schema",
    "ScanRow": "..results.schema",
    "read_scan_results": "..results.read",
}

__all__ = [
    "DEFAULT_THUMBNAILS",
    "REPORT_HTML",
    "Finding",
    "ReadLimits",
    "ReportStats",
    "ScanResults",
    "ScanRow",
    "read_scan_results",
    "write_bench_html",
    "write_robustness_html",
    "write_scan_report",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
