"""``aigdetect serve``: the detector as a local HTTP service, answering ``inspect``'s reports for uploads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..engine.runtime import RuntimeConfig
from ..evidence.config import EvidenceConfig
from ..scan.config import ScanConfig
from ..serve.config import ServeConfig
from .common import Terminated, cli_errors
from .options import (
    AllowRandomBackboneOption,
    BackboneWeightsOption,
    BatchSizeOption,
    CacheDirOption,
    CheckpointOption,
    DetectorModelOption,
    DeviceOption,
    WorkersOption,
    default,
    detector_choice,
    option,
    parse_float_list,
)


@cli_errors
def serve(
    model: DetectorModelOption = None,
    checkpoint: CheckpointOption = None,
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    allow_random_backbone: AllowRandomBackboneOption = False,
    host: Annotated[str, option(ServeConfig, "host")] = default(ServeConfig, "host"),
    port: Annotated[int, option(ServeConfig, "port")] = default(ServeConfig, "port"),
    token_file: Annotated[Path | None, option(ServeConfig, "token_file", dir_okay=False)] = None,
    no_token: Annotated[bool, option(ServeConfig, "no_token")] = False,
    max_upload_mb: Annotated[float, option(ServeConfig, "max_upload_mb")] = default(ServeConfig, "max_upload_mb"),
    max_files: Annotated[int, option(ServeConfig, "max_files")] = default(ServeConfig, "max_files"),
    max_batch: Annotated[int, option(ServeConfig, "max_batch")] = default(ServeConfig, "max_batch"),
    max_wait_ms: Annotated[float, option(ServeConfig, "max_wait_ms")] = default(ServeConfig, "max_wait_ms"),
    max_queue: Annotated[int, option(ServeConfig, "max_queue")] = default(ServeConfig, "max_queue"),
    read_timeout_s: Annotated[float, option(ServeConfig, "read_timeout_s")] = default(ServeConfig, "read_timeout_s"),
    drain_timeout_s: Annotated[float, option(ServeConfig, "drain_timeout_s")] = default(ServeConfig, "drain_timeout_s"),
    threshold: Annotated[float | None, option(ScanConfig, "threshold")] = default(ScanConfig, "threshold"),
    bands: Annotated[str | None, option(ScanConfig, "bands")] = None,
    crops: Annotated[int, option(ScanConfig, "crops")] = default(ScanConfig, "crops"),
    c2pa_trust: Annotated[Path | None, option(EvidenceConfig, "c2pa_trust", dir_okay=False)] = None,
    watermarks: Annotated[bool, option(EvidenceConfig, "watermarks")] = default(EvidenceConfig, "watermarks"),
    device: DeviceOption = default(RuntimeConfig, "device"),
    batch_size: BatchSizeOption = None,
    workers: WorkersOption = None,
) -> None:
    """Serve the detector over HTTP: POST images to /v1/inspect for inspect's JSON reports, or open / to drop them.

    Listens on 127.0.0.1 unless told otherwise; another address needs --token-file (or --no-token).
    SIGTERM or Ctrl-C stops taking requests, finishes those in flight and exits.

    Example: aigdetect serve --checkpoint detector.safetensors --port 8000
    """
    from ..serve.run import run_service
    from ..serve.service import ScoringSettings

    config = ServeConfig(host=host, port=port, token_file=str(token_file) if token_file else None, no_token=no_token,
                         max_upload_mb=max_upload_mb, max_files=max_files, max_batch=max_batch, max_wait_ms=max_wait_ms,
                         max_queue=max_queue, read_timeout_s=read_timeout_s, drain_timeout_s=drain_timeout_s)  # fmt: skip
    scoring = ScoringSettings(
        choice=detector_choice(checkpoint, model, backbone_weights, cache_dir, allow_random_backbone),
        runtime=RuntimeConfig(device=device, batch_size=batch_size, workers=workers),
        evidence=EvidenceConfig(c2pa_trust=str(c2pa_trust) if c2pa_trust else None, watermarks=watermarks),
        threshold=threshold,
        bands=parse_float_list(bands, "bands") if bands else None,  # type: ignore[arg-type]
        crops=crops,
    )
    try:
        run_service(config, scoring, notify=lambda message: typer.echo(f"aigdetect serve: {message}", err=True))
    except Terminated:
        typer.echo("aigdetect serve: stopped (requests in flight were answered)", err=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
