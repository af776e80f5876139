"""``aigdetect export``: the detector as an ONNX graph, with a JSON sidecar that reproduces our scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..engine.export import DEFAULT_OPSET
from ..scan.config import ScanConfig
from .common import cli_errors
from .options import (
    AllowRandomBackboneOption,
    BackboneWeightsOption,
    BandsOption,
    CacheDirOption,
    CheckpointOption,
    DetectorModelOption,
    completer,
    detector_choice,
    option,
    parse_bands,
)

FORMATS = ("onnx",)


@cli_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="The model file to write (e.g. model.onnx).")],
    checkpoint: CheckpointOption = None,
    model: DetectorModelOption = None,
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    allow_random_backbone: AllowRandomBackboneOption = False,
    export_format: Annotated[str, typer.Option("--format", help=f"Graph format: {', '.join(FORMATS)}.", autocompletion=completer(FORMATS))] = "onnx",
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset of the graph (18 or newer).")] = DEFAULT_OPSET,
    threshold: Annotated[float | None, option(ScanConfig, "threshold")] = None,
    bands: BandsOption = None,
    sidecar: Annotated[
        bool, typer.Option("--sidecar/--no-sidecar", help="Write OUT.json: preprocessing, threshold, bands, detector id.")
    ] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT (and OUT.json) when they are an earlier export.")
    ] = False,
) -> None:
    """Export a detector (backbone, MoLE bypasses, head) for ONNX Runtime, Triton and other servers.

    Example: aigdetect export --checkpoint mole.safetensors --format onnx --out mole.onnx
    """
    from ..engine.export import export_onnx, sidecar_path_for
    from ..errors import ConfigError
    from ..models.factory import load_chosen
    from ..outputs import EXPORT_SIDECAR, ONNX_GRAPH, Output, check_outputs

    if export_format not in FORMATS:
        raise ConfigError(f"`export_format` must be one of {', '.join(FORMATS)}, got {export_format!r}")
    parsed = parse_bands(bands)
    outputs = [Output.of(out, ONNX_GRAPH, "out")] + ([Output.of(sidecar_path_for(out), EXPORT_SIDECAR, "out")] if sidecar else [])
    reads = [p for p in (checkpoint, backbone_weights) if p is not None]
    check_outputs(outputs, overwrite=overwrite, reads=reads)
    detector = load_chosen(detector_choice(checkpoint, model, backbone_weights, cache_dir, allow_random_backbone))
    result = export_onnx(detector, out, opset=opset, sidecar=sidecar, threshold=threshold, bands=parsed)
    written = f" and {result.sidecar_path}" if result.sidecar_path else ""
    typer.echo(f"exported {result.detector_id} to {result.model_path}{written} (opset {result.opset})", err=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
