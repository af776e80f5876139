"""``aigdetect scan``: one verdict row per file under some folders, with progress and a summary.

Exit codes: 0 when the scan finished (error rows included), 1 with ``--strict`` when a file could
not be scored, 3 with ``--fail-on`` when a file got one of the named verdicts, 2 for usage errors.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..data.config import DiscoveryConfig
from ..engine.runtime import RuntimeConfig
from ..evidence.config import EvidenceConfig
from ..evidence.fusion import VERDICTS
from ..scan.config import ENGINES, FORMATS, ScanConfig
from .common import cli_errors, command_line, plural
from .options import (
    AllowRandomBackboneOption,
    BackboneWeightsOption,
    BackendOption,
    BandsOption,
    BatchSizeOption,
    C2paRemoteOption,
    C2paTrustListOption,
    C2paTrustOption,
    CacheDirOption,
    CheckpointOption,
    CompileOption,
    DetectorModelOption,
    DeviceOption,
    GpuDecodeOption,
    PrecisionOption,
    WatermarksOption,
    WorkersOption,
    completer,
    default,
    detector_choice,
    evidence_config,
    option,
    parse_bands,
)
from .progress import RATE_WINDOW_S, STARTED_AT, PlainProgress

if TYPE_CHECKING:
    from ..scan.rows import Tally
    from ..scan.runner import ScanProgress, ScanSummary

EXIT_FOUND = 3
STDOUT = "-"
FAIL_ON_CHOICES = (*VERDICTS, "fake", "real", "error")

PathsArgument = Annotated[
    list[str] | None, typer.Argument(metavar="PATH", help="Image files and folders to scan.", show_default=False)
]


def _tally_text(tally: Tally) -> str:
    verdicts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(tally.verdicts.items()))
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(tally.reasons.items()))
    errors = plural(tally.errors, "error") + (f" ({reasons})" if reasons else "")
    return f"{plural(tally.rows, 'file')}: " + ", ".join(part for part in (verdicts, errors) if part)


def _summary_text(summary: ScanSummary) -> str:
    """The summary line: the whole run's wall time, then the scoring alone and its rate."""
    rate = f" at {summary.images_per_s:.1f} images/s" if summary.images_per_s else ""
    speed = f" (scoring {summary.scoring_s:.1f} s{rate})" if summary.scored else ""
    kept = f", {summary.resumed} kept from the earlier run" if summary.resumed else ""
    stale = f", {plural(summary.stale, 'row')} of an older version rescanned" if summary.stale else ""
    stale += f", {summary.skipped} system, hidden or excluded entries skipped" if summary.skipped else ""
    fallbacks = sum(summary.gpu_decode_fallbacks.values())
    if fallbacks:
        reason, _ = summary.gpu_decode_fallbacks.most_common(1)[0]
        stale += f", {plural(fallbacks, 'JPEG')} decoded on the CPU after the GPU decoder refused them (most often: {reason})"
    where = f"; rows in {summary.out}" if summary.out else ""
    return f"{_tally_text(summary.tally)}; {summary.scored} scanned in {summary.wall_s:.1f} s{speed}{kept}{stale}{where}"


def _read_list(source: Path, null_separated: bool) -> tuple[str, ...]:
    from ..scan.pathlist import read_path_list

    return read_path_list(str(source), null_separated=null_separated, stdin=sys.stdin.buffer if sys.stdin else None)


class _Reporter:
    """Progress on stderr: a bar on a terminal; otherwise a plain line at most every ``PROGRESS_INTERVAL_S``."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.console = Console(stderr=True)
        self.terminal = self.console.is_terminal and not quiet
        self.plain = PlainProgress()
        self.bar: Any = None

    def __enter__(self) -> _Reporter:
        if self.terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=self.console, transient=True,
                redirect_stdout=False, redirect_stderr=False, speed_estimate_period=RATE_WINDOW_S,
            )  # fmt: skip
            self.bar.__enter__()
            self.task = self.bar.add_task("scanning", total=None, rate="-- img/s")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, update: ScanProgress) -> None:
        if self.bar is not None:
            speed = self.bar.tasks[self.task].speed
            self.bar.update(
                self.task, completed=update.done, total=update.total, description=f"scanning ({plural(update.errors, 'error')})",
                rate="-- img/s" if speed is None else f"{speed:.1f} img/s",
            )  # fmt: skip
            return
        pace = None if self.quiet else self.plain.due(update.done, update.total)
        if pace is not None:
            typer.echo(
                f"scanned {update.done} of {plural(update.total, 'file')} ({plural(update.errors, 'error')}), {pace.rate:.1f} files/s, "
                f"{pace.left_text}", err=True,
            )  # fmt: skip


def _merge(merge: Path, output_format: str | None, strict: bool, quiet: bool) -> None:
    from ..scan.config import infer_format
    from ..scan.shard import merge_parts

    result = merge_parts(str(merge), infer_format(merge, output_format))
    if not quiet:
        typer.echo(f"merged {plural(len(result.parts), 'part')} into {result.out}: {_tally_text(result.tally)}", err=True)
    _finish(result.tally, strict, ())


def _finish(tally: Tally, strict: bool, fail_on: tuple[str, ...]) -> None:
    if strict and tally.errors:
        typer.echo(f"strict: {tally.errors} of {plural(tally.rows, 'file')} failed", err=True)
        raise typer.Exit(1)
    counts = {**tally.verdicts, **tally.model, "error": tally.errors}
    found = {verdict: counts.get(verdict, 0) for verdict in fail_on if counts.get(verdict, 0)}
    if found:
        typer.echo("fail-on: " + ", ".join(f"{count} {verdict}" for verdict, count in found.items()), err=True)
        raise typer.Exit(EXIT_FOUND)


def _fail_on(text: str | None) -> tuple[str, ...]:
    from ..errors import ConfigError

    if not text:
        return ()
    verdicts = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [v for v in verdicts if v not in FAIL_ON_CHOICES]
    if unknown:
        raise ConfigError(f"`fail_on` takes verdicts among {', '.join(FAIL_ON_CHOICES)}; got {', '.join(unknown)}")
    return verdicts


def _write_json(path: Path, document: dict[str, Any]) -> None:
    from ..fileio import atomic_write

    text = json.dumps(document, ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _after(summary: ScanSummary, quiet: bool, summary_json: Path | None) -> None:
    if not quiet:
        typer.echo(_summary_text(summary), err=True)
        for line in summary.warnings:
            typer.echo(f"warning: {line}", err=True)
    if summary_json is not None:
        _write_json(summary_json, summary.as_dict())


def _storage_options(text: str | None) -> dict[str, Any]:
    from ..errors import ConfigError

    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError:
        raise ConfigError("`storage_options` takes a JSON object, e.g. '{\"anon\": true}'") from None
    if not isinstance(options, dict):
        raise ConfigError("`storage_options` takes a JSON object, e.g. '{\"anon\": true}'")
    return options


def _load(choice):
    """The detector itself, loaded only when some file must be scored."""
    from ..models.factory import load_chosen

    return load_chosen(choice)


@cli_errors
def scan(
    ctx: typer.Context,
    paths: PathsArgument = None,
    model: DetectorModelOption = None,
    checkpoint: CheckpointOption = None,
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    allow_random_backbone: AllowRandomBackboneOption = False,
    out: Annotated[str | None, option(ScanConfig, "out", "--out", "-o")] = default(ScanConfig, "out"),
    output_format: Annotated[
        str | None, option(ScanConfig, "output_format", autocompletion=completer(FORMATS))
    ] = default(ScanConfig, "output_format"),
    threshold: Annotated[float | None, option(ScanConfig, "threshold")] = default(ScanConfig, "threshold"),
    bands: BandsOption = None,
    crops: Annotated[int, option(ScanConfig, "crops")] = default(ScanConfig, "crops"),
    evidence: Annotated[bool, typer.Option("--evidence/--no-evidence", help="Read the evidence files carry about themselves (C2PA, XMP, EXIF, PNG text).")] = True,
    c2pa_trust: C2paTrustOption = None,
    c2pa_trust_list: C2paTrustListOption = None,
    c2pa_remote: C2paRemoteOption = default(EvidenceConfig, "c2pa_remote"),
    watermarks: WatermarksOption = default(EvidenceConfig, "watermarks"),
    sha256: Annotated[bool, option(ScanConfig, "sha256", "--sha256/--no-sha256")] = default(ScanConfig, "sha256"),
    formula_guard: Annotated[bool, option(ScanConfig, "formula_guard", "--formula-guard/--raw-csv")] = default(
        ScanConfig, "formula_guard"
    ),
    device: DeviceOption = default(RuntimeConfig, "device"),
    batch_size: BatchSizeOption = default(RuntimeConfig, "batch_size"),
    workers: WorkersOption = default(RuntimeConfig, "workers"),
    backend: BackendOption = default(RuntimeConfig, "backend"),
    precision: PrecisionOption = default(RuntimeConfig, "precision"),
    gpu_decode: GpuDecodeOption = default(RuntimeConfig, "gpu_decode"),
    compile: CompileOption = default(RuntimeConfig, "compile"),
    recursive: Annotated[bool, option(ScanConfig, "recursive", "--recursive/--no-recursive")] = default(
        ScanConfig, "recursive"
    ),
    follow_symlinks: Annotated[bool, option(ScanConfig, "follow_symlinks")] = default(ScanConfig, "follow_symlinks"),
    max_pixels: Annotated[int, option(ScanConfig, "max_pixels")] = default(ScanConfig, "max_pixels"),
    max_bytes: Annotated[int, option(ScanConfig, "max_bytes")] = default(ScanConfig, "max_bytes"),
    hidden: Annotated[bool, option(DiscoveryConfig, "hidden")] = default(DiscoveryConfig, "hidden"),
    include: Annotated[list[str], option(DiscoveryConfig, "include", metavar="GLOB")] = default(DiscoveryConfig, "include"),
    exclude: Annotated[list[str], option(DiscoveryConfig, "exclude", metavar="GLOB")] = default(DiscoveryConfig, "exclude"),
    files_from: Annotated[
        Path | None,
        typer.Option("--files-from", help="Also scan the paths listed in FILE ('-' for stdin), one per line."),
    ] = None,
    null: Annotated[bool, typer.Option("-0", "--null", help="--files-from paths are separated by NUL bytes.")] = False,
    resume: Annotated[bool, option(ScanConfig, "resume")] = default(ScanConfig, "resume"),
    overwrite: Annotated[bool, option(ScanConfig, "overwrite")] = default(ScanConfig, "overwrite"),
    shard: Annotated[str | None, option(ScanConfig, "shard")] = default(ScanConfig, "shard"),
    merge: Annotated[
        Path | None,
        typer.Option("--merge", help="Join OUT.part0..OUT.partN-1 (from --shard or torchrun) into OUT, then exit."),
    ] = None,
    summary_json: Annotated[
        Path | None, typer.Option("--summary-json", dir_okay=False, help="Also write the scan's summary to this JSON file.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", dir_okay=False, help="Write a self-contained HTML report of the scan here.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any file could not be scored.")] = False,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on", metavar="VERDICT[,VERDICT]", autocompletion=completer(FAIL_ON_CHOICES, ","),
            help=f"Exit {EXIT_FOUND} when any file gets one of these verdicts (fused, fake|real, or error).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary on stderr (warnings and errors only).")] = False,
    engine: Annotated[str, option(ScanConfig, "engine", autocompletion=completer(ENGINES))] = default(ScanConfig, "engine"),
    storage_options: Annotated[str | None, option(ScanConfig, "storage_options", metavar="JSON")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Join this Ray cluster (default: start a local Ray); with --engine ray.")] = None,
    ray_actors: Annotated[int | None, typer.Option("--ray-actors", min=1, help="Scoring actors (default: one per GPU, else one per 4 CPUs); with --engine ray.")] = None,
) -> None:
    """Score every file under PATH... and write one verdict row per file (CSV, JSON or JSONL).

    Example: aigdetect scan ./photos --out verdicts.csv --html report.html
    """
    from ..errors import ConfigError

    failing = _fail_on(fail_on)
    target = None if out is None or str(out) == STDOUT else str(out)
    if merge is not None:
        if paths:
            raise ConfigError("`merge` joins finished parts and takes no PATH")
        _merge(merge, output_format, strict, quiet)
        return
    if html is not None and target is None:
        raise ConfigError("`html` reads the rows back from `out`; pass `out` FILE too")
    if target is None and sys.stdout is None:
        raise ConfigError("standard output is closed; write the rows to a file with `out` FILE")
    from ..scan.placement import merge_under_torchrun, place, torchrun_rank

    place_at = place(target, output_format, shard, device)
    parsed_bands = parse_bands(bands)
    config = ScanConfig(
        paths=tuple(paths or ()),
        listed=_read_list(files_from, null) if files_from is not None else (),
        out=place_at.out,
        output_format=place_at.output_format,
        threshold=threshold,
        crops=crops,
        recursive=recursive,
        follow_symlinks=follow_symlinks,
        runtime=RuntimeConfig(device=place_at.device, batch_size=batch_size, workers=workers, backend=backend,
                              precision=precision, gpu_decode=gpu_decode, compile=compile),  # fmt: skip
        max_pixels=max_pixels,
        max_bytes=max_bytes,
        discovery=DiscoveryConfig(hidden=hidden, include=tuple(include), exclude=tuple(exclude)),
        shard=place_at.shard,
        resume=resume,
        overwrite=overwrite,
        bands=parsed_bands,
        evidence=evidence_config(c2pa_trust, c2pa_trust_list, c2pa_remote, watermarks) if evidence else None,
        sha256=sha256,
        formula_guard=formula_guard,
        engine=engine,
        storage_options=_storage_options(storage_options),
    )
    from ..models.fingerprint import fingerprint
    from ..models.identity import random_backbone_warning
    from ..scan.runner import DetectorSource, run_scan
    from ..scan.walk import require_paths

    require_paths(config.paths)
    choice = detector_choice(checkpoint, model, backbone_weights, cache_dir, allow_random_backbone)
    protected = [str(p) for p in (checkpoint, c2pa_trust, c2pa_trust_list, files_from) if p is not None]
    if backbone_weights and os.path.exists(backbone_weights):
        protected.append(backbone_weights)
    known = fingerprint(choice)
    warning = random_backbone_warning(known.identity)
    if warning and choice.allow_random_backbone:  # without it, loading refuses the detector
        typer.echo(f"warning: {warning}", err=True)
    source = DetectorSource(known.identity, known.threshold, lambda: _load(choice), image_size=known.image_size,
                            parameters=known.parameters)  # fmt: skip
    if engine == "ray":
        from ..distributed import RayOptions, ray_scan

        with _Reporter(quiet) as reporter:
            summary = ray_scan(source, config, RayOptions(address=ray_address, actors=ray_actors), progress=reporter,
                               command=command_line(ctx), started_at=STARTED_AT)  # fmt: skip
        _after(summary, quiet, summary_json)
        if html is not None:
            from ..data.objects import is_url
            from ..report import write_scan_report

            if is_url(config.out or ""):
                raise ConfigError("`html` reads the rows back from a local `out`; run `aigdetect report` on a copy")
            write_scan_report(config.out, html, summary=summary.as_dict(), root=os.getcwd(), within=os.sep)
        _finish(summary.tally, strict, failing)
        return
    with _Reporter(quiet) as reporter:
        summary = run_scan(
            source, config, stream=None if config.out else sys.stdout, progress=reporter, command=command_line(ctx),
            protected=protected, started_at=STARTED_AT,
        )  # fmt: skip
    _after(summary, quiet, summary_json)
    tally = summary.tally
    if torchrun_rank() is not None and target is not None:
        merged = merge_under_torchrun(target, config.output_format)
        if merged is not None:
            typer.echo(f"merged the parts into {target}: {_tally_text(merged)}", err=True)
            tally = merged
        elif "MASTER_ADDR" not in os.environ:
            typer.echo(f"no process group to wait on; when all ranks are done: aigdetect scan --merge {target}", err=True)
    if html is not None and config.out is not None:
        from ..report import write_scan_report

        # these rows are this run's own, naming only what its walk found, wherever its PATHs were
        stats = write_scan_report(config.out, html, summary=summary.as_dict(), root=os.getcwd(), within=os.sep)
        if not quiet:
            typer.echo(f"report of {plural(stats.rows, 'file')} in {html}", err=True)
    _finish(tally, strict, failing)


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
