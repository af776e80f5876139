"""``aigdetect report``: one self-contained HTML page for a scan's results (CSV, JSON, JSONL or Parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..report.config import DEFAULT_THUMBNAILS
from .common import cli_errors, plural


@cli_errors
def report(
    verdicts: Annotated[Path, typer.Argument(metavar="VERDICTS", help="A scan's output: CSV, JSON, JSONL or Parquet (a file, or a Ray scan's folder).")],
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="The HTML page to write.")],
    thumbnails: Annotated[
        int, typer.Option("--thumbnails", min=0, metavar="N", help="Previews embedded, most suspicious files first; 0 for none.")
    ] = DEFAULT_THUMBNAILS,
    root: Annotated[
        Path | None,
        typer.Option("--root", file_okay=False, help="Folder the scan ran in (default: the one its summary records)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT when it is an earlier aigdetect HTML report.")
    ] = False,
) -> None:
    """Turn a scan's rows into a page to open in any browser, offline: summary, histogram, sortable table, details.

    Example: aigdetect report verdicts.csv --out report.html --thumbnails 500
    """
    from ..outputs import HTML_REPORT, Output, check_output
    from ..report import write_scan_report
    from ..scan.sidecar import read_sidecar, sidecar_path

    sidecar = read_sidecar(str(verdicts)) or {}
    summary = sidecar.get("summary") or {}
    where = root or (Path(summary["cwd"]) if isinstance(summary.get("cwd"), str) else None)
    # The images the page previews lie under the scan's folder: nothing there but a report is replaced.
    reads = [verdicts, sidecar_path(str(verdicts)), where or Path.cwd()]
    check_output(Output.of(out, HTML_REPORT, "out"), overwrite=overwrite, reads=reads)
    stats = write_scan_report(verdicts, out, thumbnails=thumbnails, summary=summary or None, root=where)
    previews = plural(stats.thumbnails, "preview")
    typer.echo(f"report of {plural(stats.rows, 'file')} ({previews}, {stats.bytes / 1e6:.1f} MB) in {out}", err=True)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
