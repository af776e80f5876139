"""``aigdetect scan``: one verdict row per file under some folders, with progress and a summary."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from ..data.images import DEFAULT_MAX_PIXELS
from ..errors import ConfigError
from ..models.detector import Detector
from ..models.zoo import DEFAULT_DETECTOR
from ..scan import (
    FORMATS,
    ScanConfig,
    ScanProgress,
    ScanSummary,
    Tally,
    infer_format,
    merge_parts,
    parse_shard,
    part_path,
    require_paths,
    run_scan,
)
from .common import (
    BackboneWeightsOption,
    BatchSizeOption,
    CacheDirOption,
    CheckpointOption,
    DeviceOption,
    WorkersOption,
    cli_errors,
    detector_options,
)

MERGE_TIMEOUT = timedelta(hours=24)

PathsArgument = Annotated[
    list[str] | None, typer.Argument(metavar="PATH...", help="Image files and folders to scan.", show_default=False)
]
ScanModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help=f"Built-in detector name, or a backbone (vitl14, vitb32, vitb16) whose built-in head to use "
        f"(default: {DEFAULT_DETECTOR}). With --checkpoint, only checked against the checkpoint.",
    ),
]


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text("-- img/s" if task.speed is None else f"{task.speed:.1f} img/s", style="progress.data.speed")


def _torchrun_rank() -> tuple[int, int, int] | None:
    """(RANK, WORLD_SIZE, LOCAL_RANK) when started by torchrun with more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


@dataclass(frozen=True)
class _Placement:
    """Where this process writes and what it scans, after --shard and torchrun are taken into account."""

    out: str | None
    output_format: str | None
    shard: tuple[int, int] | None
    device: str


def _place(out: Path | None, output_format: str | None, shard: str | None, device: str) -> _Placement:
    """Under torchrun each rank takes shard RANK/WORLD_SIZE; any shard with --out OUT writes OUT.partK."""
    spec = parse_shard(shard) if shard is not None else None
    target = str(out) if out is not None else None
    distributed = _torchrun_rank()
    if distributed is not None:
        rank, world, local_rank = distributed
        if spec is not None:
            raise ConfigError("under torchrun each rank takes its shard from RANK/WORLD_SIZE; drop --shard")
        if target is None:
            raise ConfigError("under torchrun every rank writes OUT.partRANK; pass --out OUT")
        spec = (rank, world)
        if device == "auto" and torch.cuda.is_available():
            device = f"cuda:{local_rank % torch.cuda.device_count()}"
    if spec is not None and target is not None:
        output_format = infer_format(target, output_format)
        target = part_path(target, spec[0])
    return _Placement(target, output_format, spec, device)


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


def _scan_with_progress(detector: Detector, config: ScanConfig) -> ScanSummary:
    """Run the scan under a progress bar on stderr (shown only on a terminal); rows without --out go to stdout."""
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        disable=not console.is_terminal,
    )
    task = bar.add_task("scanning", total=None)

    def show(update: ScanProgress) -> None:
        bar.update(task, completed=update.done, total=update.total, description=f"scanning ({update.errors} errors)")

    with bar:
        return run_scan(detector, config, stream=None if config.out else sys.stdout, progress=show)


def _merge_under_torchrun(out: str, output_format: str) -> Tally | None:
    """Wait for every rank, then let rank 0 join the parts; None on other ranks or without a group."""
    import torch.distributed as dist

    distributed = _torchrun_rank()
    if distributed is None or not dist.is_available() or "MASTER_ADDR" not in os.environ:
        return None
    rank, world, _ = distributed
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=MERGE_TIMEOUT)
    try:
        dist.barrier()
        return merge_parts(out, output_format).tally if rank == 0 else None
    finally:
        dist.destroy_process_group()


@cli_errors
def scan(
    paths: PathsArgument = None,
    model: ScanModelOption = None,
    checkpoint: CheckpointOption = None,
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default: rows to stdout).")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help=f"{'|'.join(FORMATS)} (default: from the --out suffix, else csv).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Verdict threshold on the score (default: the detector's calibrated one).")
    ] = None,
    crops: Annotated[int, typer.Option("--crops", help="Also score K crops spread over the image; adds crop_mean, crop_max.")] = 0,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = None,
    workers: WorkersOption = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Descend into sub-folders.")] = True,
    follow_symlinks: Annotated[
        bool, typer.Option("--follow-symlinks", help="Score symlinked files and enter symlinked folders (loops are detected).")
    ] = False,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", help="Refuse images with more pixels than this, from the header alone.")
    ] = DEFAULT_MAX_PIXELS,
    resume: Annotated[bool, typer.Option("--resume", help="Keep the rows already in --out and scan only the rest.")] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard", help="K/N: scan only shard K (0..N-1) of N, chosen by a hash of each path; --out OUT writes OUT.partK."
        ),
    ] = None,
    merge: Annotated[
        Path | None, typer.Option("--merge", help="Join OUT.part0..OUT.partN-1 (from --shard or torchrun) into OUT, then exit.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any file could not be scored.")] = False,
) -> None:
    """Score every file under PATH... and write one verdict row per file (CSV, JSON or JSONL).

    Example: aigdetect scan ./photos --out verdicts.csv --checkpoint mole.safetensors
    """
    if merge is not None:
        if paths:
            raise ConfigError("--merge joins finished parts and takes no PATH")
        result = merge_parts(str(merge), infer_format(merge, output_format))
        typer.echo(f"merged {len(result.parts)} parts into {result.out}: {_tally_text(result.tally)}", err=True)
        _finish(result.tally, strict)
        return
    place = _place(out, output_format, shard, device)
    config = ScanConfig(
        paths=tuple(paths or ()),
        out=place.out,
        output_format=place.output_format,
        threshold=threshold,
        crops=crops,
        recursive=recursive,
        follow_symlinks=follow_symlinks,
        device=place.device,
        batch_size=batch_size,
        workers=workers,
        max_pixels=max_pixels,
        shard=place.shard,
        resume=resume,
    )
    require_paths(config.paths)
    detector = detector_options(checkpoint, model, backbone_weights, cache_dir)
    summary = _scan_with_progress(detector, config)
    typer.echo(_summary_text(summary), err=True)
    tally = summary.tally
    if _torchrun_rank() is not None and out is not None:
        merged = _merge_under_torchrun(str(out), config.output_format)
        if merged is not None:
            typer.echo(f"merged the parts into {out}: {_tally_text(merged)}", err=True)
            tally = merged
        elif "MASTER_ADDR" not in os.environ:
            typer.echo(f"no process group to wait on; when all ranks are done: aigdetect scan --merge {out}", err=True)
    _finish(tally, strict)


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
