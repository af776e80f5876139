"""``aigdetect inspect``: the one-image workflow, everything known about each file, in the terminal or as JSON.

Exit codes: 0 when at least one file was scored, 1 when none could be (each still gets its report),
2 for usage errors (a folder, a missing file, a bad option).
"""

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
    BandsOption,
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
    parse_bands,
)

EXIT_NONE_SCORED = 1
"""``inspect``'s exit status when no file could be scored, as ``scan --strict`` when a file fails."""

_STYLE = {
    "ai-generated": "bold red", "ai-edited": "red", "likely-ai": "red", "conflict": "bold magenta", "tampered-credentials": "bold magenta",
    "inconclusive": "yellow", "likely-real": "green", "camera-signed": "bold green",
}  # fmt: skip


def _render(report: dict[str, Any]) -> Any:
    """One file's report as a rich renderable: a panel with the verdict, its reasons and the facts."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text(f"warning: {warning}", style="bold red reverse") for warning in report["warnings"]]
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
    setting = f"threshold {report['threshold']:.3f}, bands {low:.3f}-{high:.3f}"
    if report["score"] is None:
        score = f"not scored ({setting})"
    else:
        score = f"{report['score']:.4f} ({setting}, model says {report['model_verdict']})"
    rows = [
        ("score", score),
        ("crop scores", ", ".join(f"{s:.3f}" for s in report["crop_scores"]) or "-"),
        ("detector", report["detector"]),
        ("file", _file_facts(report)),
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
        parts.extend(_chain(store))
    return Panel(Group(*parts), title=Text(report["path"]), title_align="left")


def _chain(store: dict[str, Any]) -> list[Any]:
    """The store's manifests with the rubric's asset signals, as a table (identities are findings)."""
    from rich.table import Table
    from rich.text import Text

    if not store.get("manifests"):
        return []
    table = Table("manifest", "role", "signer", "trust", "signals", title="C2PA chain", title_justify="left")
    for m in store["manifests"]:
        role = "active" if m["active"] else "pseudo ingredient" if m["pseudo"] else "ingredient"
        table.add_row(*(Text(str(v or "-")) for v in (m["label"], role, m["signer"], m["trust"], ", ".join(m["signals"]))))
    return [table]


def _file_facts(report: dict[str, Any]) -> str:
    """Format, size in pixels and bytes: only what was read (an unreadable file may have none of them)."""
    facts = [report["format"] or ""]
    if report["width"] and report["height"]:
        facts.append(f"{report['width']}x{report['height']}")
    line = " ".join(f for f in facts if f)
    size = "" if report["size"] is None else f"{report['size']} bytes"
    return ", ".join(part for part in (line, size) if part) or "-"


@cli_errors
def inspect(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Image files to inspect.", show_default=False)],
    model: DetectorModelOption = None,
    checkpoint: CheckpointOption = None,
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    allow_random_backbone: AllowRandomBackboneOption = False,
    threshold: Annotated[float | None, option(ScanConfig, "threshold")] = default(ScanConfig, "threshold"),
    bands: BandsOption = None,
    crops: Annotated[int, option(ScanConfig, "crops")] = default(ScanConfig, "crops"),
    c2pa_trust: C2paTrustOption = None,
    c2pa_trust_list: C2paTrustListOption = None,
    c2pa_remote: C2paRemoteOption = default(EvidenceConfig, "c2pa_remote"),
    watermarks: WatermarksOption = default(EvidenceConfig, "watermarks"),
    device: DeviceOption = default(RuntimeConfig, "device"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array of reports instead of panels.")] = False,
) -> None:
    """Show everything known about each file: verdict and reasons, score, evidence, Content Credentials, SHA-256.

    Exits 0 when at least one file was scored, 1 when none could be (each still gets its report),
    2 for a usage error (a folder: scan folders with 'aigdetect scan'; a missing file).

    Example: aigdetect inspect suspicious.jpg --crops 9 --c2pa-trust trust-anchors.pem
    """
    from ..engine.infer import resolve_device
    from ..models.factory import load_chosen
    from ..scan.inspection import inspect_files, require_files
    from ..scan.walk import require_paths

    paths = [str(f) for f in files]
    parsed_bands = parse_bands(bands)
    ScanConfig(paths=tuple(paths), threshold=threshold, crops=crops, bands=parsed_bands)
    require_paths(paths)
    require_files(paths)
    evidence = evidence_config(c2pa_trust, c2pa_trust_list, c2pa_remote, watermarks)
    detector = load_chosen(detector_choice(checkpoint, model, backbone_weights, cache_dir, allow_random_backbone))
    reports = inspect_files(
        detector, paths, evidence=evidence, crops=crops, threshold=threshold, bands=parsed_bands,
        device=resolve_device(device),
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(reports, ensure_ascii=False, indent=1, allow_nan=False))
    else:
        from rich.console import Console

        console = Console()
        for report in reports:
            console.print(_render(report))
    if all("error" in report for report in reports):
        failed = "the file could not be scored" if len(reports) == 1 else f"none of the {len(reports)} files could be scored"
        typer.echo(f"error: {failed}", err=True)
        raise typer.Exit(EXIT_NONE_SCORED)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
