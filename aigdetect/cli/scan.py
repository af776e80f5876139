"""``aigdetect scan``: one verdict row per file under some folders, with progress and a summary."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..engine.runtime import RuntimeConfig
from ..scan.config import ScanConfig
from .common import cli_errors
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
)

if TYPE_CHECKING:
    from ..scan.rows import Tally
    from ..scan.runner import ScanSummary

PathsArgument = Annotated[
    list[str] | None, typer.Argument(metavar="PATH...", help="Image files and folders to scan.", show_default=False)
]


def _tally_text(tally: Tally) -> str:
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(tally.reasons.items()))
    return (
        f"{tally.rows} files: {tally.fake} fake, {tally.real} real, {tally.errors} errors"
        + (f" ({reasons})" if reasons else "")
    )


def _summary_text(summary: ScanSummary) -> str:
    speed = f" ({summary.images_per_s:.1f} images/s)" if summary.images_per_s else ""
    kept = f", {summary.resumed} kept from the earlier run" if summary.resumed else ""
    where = f"; rows in {summary.out}" if summary.out else ""
    return f"{_tally_text(summary.tally)}; {summary.scored} scanned in {summary.elapsed_s:.1f} s{speed}{kept}{where}"


def _finish(tally: Tally, strict: bool) -> None:
    if strict and tally.errors:
        typer.echo(f"strict: {tally.errors} of {tally.rows} files failed", err=True)
        raise typer.Exit(1)


def _scan_with_progress(detector, config: ScanConfig) -> ScanSummary:
    """Run the scan under a progress bar on stderr (shown only on a terminal); rows without `out` go to stdout."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..scan.runner import ScanProgress, run_scan

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        disable=not console.is_terminal,
    )
    task = bar.add_task("scanning", total=None, rate="-- img/s")

    def show(update: ScanProgress) -> None:
        speed = bar.tasks[task].speed
        bar.update(
            task, completed=update.done, total=update.total, description=f"scanning ({update.errors} errors)",
            rate="-- img/s" if speed is None else f"{speed:.1f} img/s",
        )

    with bar:
        return run_scan(detector, config, stream=None if config.out else sys.stdout, progress=show)


def _merge(merge: Path, output_format: str | None, strict: bool) -> None:
    from ..scan.config import infer_format
    from ..scan.shard import merge_parts

    result = merge_parts(str(merge), infer_format(merge, output_format))
    typer.echo(f"merged {len(result.parts)} parts into {result.out}: {_tally_text(result.tally)}", err=True)
    _finish(result.tally, strict)


@cli_errors
def scan(
    paths: PathsArgument = None,
    model: DetectorModelOption = None,
    checkpoint: CheckpointOption = None,
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    allow_random_backbone: AllowRandomBackboneOption = False,
    out: Annotated[Path | None, option(ScanConfig, "out", "--out", "-o", dir_okay=False)] = default(ScanConfig, "out"),
    output_format: Annotated[str | None, option(ScanConfig, "output_format")] = default(ScanConfig, "output_format"),
    threshold: Annotated[float | None, option(ScanConfig, "threshold")] = default(ScanConfig, "threshold"),
    crops: Annotated[int, option(ScanConfig, "crops")] = default(ScanConfig, "crops"),
    device: DeviceOption = default(RuntimeConfig, "device"),
    batch_size: BatchSizeOption = default(RuntimeConfig, "batch_size"),
    workers: WorkersOption = default(RuntimeConfig, "workers"),
    recursive: Annotated[bool, option(ScanConfig, "recursive", "--recursive/--no-recursive")] = default(
        ScanConfig, "recursive"
    ),
    follow_symlinks: Annotated[bool, option(ScanConfig, "follow_symlinks")] = default(ScanConfig, "follow_symlinks"),
    max_pixels: Annotated[int, option(ScanConfig, "max_pixels")] = default(ScanConfig, "max_pixels"),
    resume: Annotated[bool, option(ScanConfig, "resume")] = default(ScanConfig, "resume"),
    shard: Annotated[str | None, option(ScanConfig, "shard")] = default(ScanConfig, "shard"),
    merge: Annotated[
        Path | None,
        typer.Option("--merge", help="Join OUT.part0..OUT.partN-1 (from --shard or torchrun) into OUT, then exit."),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any file could not be scored.")] = False,
) -> None:
    """Score every file under PATH... and write one verdict row per file (CSV, JSON or JSONL).

    Example: aigdetect scan ./photos --out verdicts.csv --checkpoint mole.safetensors
    """
    from ..errors import ConfigError

    if merge is not None:
        if paths:
            raise ConfigError("`merge` joins finished parts and takes no PATH")
        _merge(merge, output_format, strict)
        return
    from ..scan.placement import merge_under_torchrun, place, torchrun_rank

    place_at = place(str(out) if out is not None else None, output_format, shard, device)
    config = ScanConfig(
        paths=tuple(paths or ()),
        out=place_at.out,
        output_format=place_at.output_format,
        threshold=threshold,
        crops=crops,
        recursive=recursive,
        follow_symlinks=follow_symlinks,
        runtime=RuntimeConfig(device=place_at.device, batch_size=batch_size, workers=workers),
        max_pixels=max_pixels,
        shard=place_at.shard,
        resume=resume,
    )
    from ..models.factory import load_chosen
    from ..scan.walk import require_paths

    require_paths(config.paths)
    detector = load_chosen(detector_choice(checkpoint, model, backbone_weights, cache_dir, allow_random_backbone))
    summary = _scan_with_progress(detector, config)
    typer.echo(_summary_text(summary), err=True)
    tally = summary.tally
    if torchrun_rank() is not None and out is not None:
        merged = merge_under_torchrun(str(out), config.output_format)
        if merged is not None:
            typer.echo(f"merged the parts into {out}: {_tally_text(merged)}", err=True)
            tally = merged
        elif "MASTER_ADDR" not in os.environ:
            typer.echo(f"no process group to wait on; when all ranks are done: aigdetect scan --merge {out}", err=True)
    _finish(tally, strict)


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
