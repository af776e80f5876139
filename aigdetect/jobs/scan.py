"""A scan request carried out: outputs checked before any model loads, the scan, its summary file,
the joining of torchrun's parts and the HTML report.

Besides the ``scan`` events of every written batch, the job reports (as ``ProgressEvent`` stages)
what a caller may show: ``warning``, ``scanned`` (the summary), ``merged`` (a ``merge`` request),
``joined`` (torchrun's parts joined by rank 0), ``note`` and ``report`` (the HTML report written).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import ConfigError
from ..progress import ProgressCallback, ProgressEvent
from ..scan.request import ScanRequest

if TYPE_CHECKING:
    from ..models.choice import DetectorChoice
    from ..models.detector import Detector
    from ..scan.config import ScanConfig
    from ..scan.rows import Tally

WARNING, SCANNED, MERGED, JOINED, NOTE, REPORT = "warning", "scanned", "merged", "joined", "note", "report"


def run(request: ScanRequest, progress: ProgressCallback | None = None, *, stream: TextIO | None = None) -> Tally:
    """Carry out ``request`` and return the counts over its whole output (all parts once joined).

    Args:
        request: the scan, or the merge, to do.
        progress: receives the job's events (see the module docstring).
        stream: where rows go when the scan has no ``out`` (default: standard output).

    Raises:
        ConfigError, InputError, OutputError: as ``run_scan``, and for a summary or report path
            that would replace an input or another output (refused before any model loads).
    """
    report = progress or (lambda event: None)
    if request.merge is not None:
        return _merge(request, report)
    return _scan(request, report, stream)


def _merge(request: ScanRequest, report: ProgressCallback) -> Tally:
    from ..scan.config import infer_format
    from ..scan.shard import merge_parts

    merge = str(request.merge)
    result = merge_parts(merge, infer_format(merge, request.merge_format), overwrite=request.merge_overwrite)
    report(ProgressEvent(MERGED, detail={"parts": len(result.parts), "out": result.out, "tally": result.tally}))
    return result.tally


def _load(choice: DetectorChoice) -> Detector:
    """The detector itself, loaded only when some file must be scored."""
    from ..models.factory import load_chosen

    return load_chosen(choice)


def _scan(request: ScanRequest, report: ProgressCallback, stream: TextIO | None) -> Tally:
    from ..models.fingerprint import fingerprint
    from ..models.identity import random_backbone_warning
    from ..scan.placement import place_config
    from ..scan.runner import DetectorSource, run_scan
    from ..scan.walk import require_paths

    assert request.config is not None
    target = request.config.out
    stream = stream or sys.stdout
    if target is None and stream is None:
        raise ConfigError("standard output is closed; write the rows to a file with `out` FILE")
    config = place_config(request.config)
    require_paths(config.paths)
    choice = request.detector
    protected = [p for p in (choice.checkpoint, *request.reads) if p is not None]
    if choice.backbone_weights and os.path.exists(choice.backbone_weights):
        protected.append(choice.backbone_weights)
    _check_secondary(config, request, [*config.paths, *config.listed, *protected])
    known = fingerprint(choice)
    warning = random_backbone_warning(known.identity)
    if warning and choice.allow_random_backbone:  # without it, loading refuses the detector
        report(ProgressEvent(WARNING, detail={"message": warning}))
    source = DetectorSource(known.identity, known.threshold, functools.partial(_load, choice),
                            image_size=known.image_size, parameters=known.parameters)  # fmt: skip
    if config.engine == "ray":
        from ..distributed import RayOptions, ray_scan

        options = RayOptions(address=request.ray_address, actors=request.ray_actors)
        summary = ray_scan(source, config, options, progress=report, command=request.command, started_at=request.started_at)
    else:
        summary = run_scan(source, config, stream=None if config.out else stream, progress=report, command=request.command,
                           protected=protected, started_at=request.started_at)  # fmt: skip
    report(ProgressEvent(SCANNED, summary.scored, detail={"summary": summary}))
    if request.summary_json is not None:
        _write_json(Path(request.summary_json), summary.as_dict())
    tally = _join_parts(target, config, report) or summary.tally
    if request.html is not None and config.out is not None:
        from ..data.objects import is_url
        from ..report import write_scan_report

        if is_url(config.out):
            raise ConfigError("`html` reads the rows back from a local `out`; run `aigdetect report` on a copy")

        # these rows are this run's own, naming only what its walk found, wherever its PATHs were
        stats = write_scan_report(config.out, request.html, summary=summary.as_dict(), root=os.getcwd(), within=os.sep)
        report(ProgressEvent(REPORT, stats.rows, detail={"rows": stats.rows, "out": request.html}))
    return tally


def _join_parts(target: str | None, config: ScanConfig, report: ProgressCallback) -> Tally | None:
    """Under torchrun, rank 0 joins every rank's part into ``target``; the joined counts, else None."""
    from ..scan.placement import merge_under_torchrun, torchrun_rank

    if torchrun_rank() is None or target is None:
        return None
    merged = merge_under_torchrun(target, config.output_format, overwrite=config.overwrite or config.resume)
    if merged is not None:
        report(ProgressEvent(JOINED, detail={"out": target, "tally": merged}))
    elif "MASTER_ADDR" not in os.environ:
        report(
            ProgressEvent(
                NOTE, detail={"message": f"no process group to wait on; when all ranks are done: aigdetect scan --merge {target}"}
            )
        )
    return merged


def _write_json(path: Path, document: dict[str, Any]) -> None:
    from ..outputs import write_output

    text = json.dumps(document, ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    write_output(path, lambda name: Path(name).write_text(text, encoding="utf-8"))


def _check_secondary(config: ScanConfig, request: ScanRequest, reads: list[str]) -> None:
    """Refuse, before scanning, a summary or report path that would destroy an input or another output."""
    from ..outputs import HTML_REPORT, SCAN_SUMMARY, Output, check_outputs
    from ..scan.sidecar import SCAN_RESULTS, sidecar_path

    outputs = [Output.of(path, kind, setting) for path, kind, setting in
               ((request.summary_json, SCAN_SUMMARY, "summary_json"), (request.html, HTML_REPORT, "html")) if path is not None]  # fmt: skip
    # The scan's own output and its sidecar are checked by the scan; here they are only taken names.
    own = (
        [Output.of(config.out, SCAN_RESULTS, "out"), Output.of(sidecar_path(config.out), SCAN_SUMMARY, "out")]
        if config.out
        else []
    )
    check_outputs(outputs, overwrite=config.resume or config.overwrite, reads=reads, others=own,
                  allowed_by="pass `overwrite` (or `resume`) to replace it")  # fmt: skip
