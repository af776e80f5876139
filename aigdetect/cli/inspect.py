"""``aigdetect inspect``: the one-image workflow, everything known about each file, in the terminal or as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..engine.runtime import RuntimeConfig
from ..evidence.config import EvidenceConfig
from ..scan.config import ScanConfig
from .common import cli_errors
from .options import (
    AllowRandomBackboneOption,
    BackboneWeightsOption,
    C2paRemoteOption,
    C2paTrustListOption,
    C2paTrustOption,
    CacheDirOption,
    CheckpointOption,
    DetectorModelOption,
    DeviceOption,
    WatermarksOption,
    default,
    detector_choice,
    evidence_config,
    option,
    parse_float_list,
)

_STYLE = {
    "ai-generated": "bold red", "likely-ai": "red", "conflict": "bold magenta", "tampered-credentials": "bold magenta",
    "inconclusive": "yellow", "likely-real": "green", "camera-signed": "bold green",
}  # fmt: skip


def _render(report: dict[str, Any]) -> Any:
    """One file's report as a rich renderable: a panel with the verdict, its reasons and the facts."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    if "error" in report:
        error = report["error"]
        parts.append(Text(f"could not be scored: {error['reason']}: {error['detail']}", style="bold red"))
    else:
        verdict = Text(report["verdict"], style=_STYLE.get(report["verdict"], ""))
        if report.get("generator"):
            verdict.append(f"  ({report['generator']})")
        parts.append(verdict)
        parts.extend(Text(f"- {reason}") for reason in report["reasons"])
    facts = Table.grid(padding=(0, 2))
    low, high = report["bands"]
    score = "-" if report["score"] is None else f"{report['score']:.4f}"
    rows = [
        ("score", f"{score} (threshold {report['threshold']:.3f}, bands {low:.3f}-{high:.3f}, model says {report['model_verdict']})"),
        ("crop scores", ", ".join(f"{s:.3f}" for s in report["crop_scores"]) or "-"),
        ("detector", report["detector"]),
        ("file", f"{report['format'] or '-'} {report['width'] or '-'}x{report['height'] or '-'}, {report['size']} bytes"),
        ("sha256", report["sha256"] or "-"),
        ("C2PA trust", report["c2pa_trust"] or "-"),
    ]
    for name, value in rows:
        facts.add_row(Text(name, style="dim"), Text(str(value)))
    parts.append(facts)
    if report["findings"]:
        findings = Table("source", "claim", "strength", "detail", "generator", title="evidence", title_justify="left")
        for f in report["findings"]:
            findings.add_row(*(Text(str(f.get(k) or "")) for k in ("source", "claim", "strength", "detail", "generator")))
        parts.append(findings)
    for store in report["c2pa"]:
        parts.append(Text("C2PA " + json.dumps(store, ensure_ascii=False), style="cyan"))
    return Panel(Group(*parts), title=Text(report["path"]), title_align="left")


@cli_errors
def inspect(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Image files to inspect.", show_default=False)],
    model: DetectorModelOption = None,
    checkpoint: CheckpointOption = None,
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    allow_random_backbone: AllowRandomBackboneOption = False,
    threshold: Annotated[float | None, option(ScanConfig, "threshold")] = default(ScanConfig, "threshold"),
    bands: Annotated[str | None, option(ScanConfig, "bands")] = None,
    crops: Annotated[int, option(ScanConfig, "crops")] = default(ScanConfig, "crops"),
    c2pa_trust: C2paTrustOption = None,
    c2pa_trust_list: C2paTrustListOption = None,
    c2pa_remote: C2paRemoteOption = default(EvidenceConfig, "c2pa_remote"),
    watermarks: WatermarksOption = default(EvidenceConfig, "watermarks"),
    device: DeviceOption = default(RuntimeConfig, "device"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array of reports instead of panels.")] = False,
) -> None:
    """Show everything known about each file: verdict and reasons, score, evidence, Content Credentials, SHA-256.

    Example: aigdetect inspect suspicious.jpg --crops 9 --c2pa-trust trust-anchors.pem
    """
    from ..engine.infer import resolve_device
    from ..models.factory import load_chosen
    from ..scan.inspection import inspect_files
    from ..scan.walk import require_paths

    paths = [str(f) for f in files]
    parsed_bands = parse_float_list(bands, "bands") if bands else None
    ScanConfig(paths=tuple(paths), threshold=threshold, crops=crops, bands=parsed_bands)  # type: ignore[arg-type]
    require_paths(paths)
    evidence = evidence_config(c2pa_trust, c2pa_trust_list, c2pa_remote, watermarks)
    detector = load_chosen(detector_choice(checkpoint, model, backbone_weights, cache_dir, allow_random_backbone))
    reports = inspect_files(
        detector, paths, evidence=evidence, crops=crops, threshold=threshold, bands=parsed_bands,  # type: ignore[arg-type]
        device=resolve_device(device),
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(reports, ensure_ascii=False, indent=1, allow_nan=False))
        return
    from rich.console import Console

    console = Console()
    for report in reports:
        console.print(_render(report))


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
