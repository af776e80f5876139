"""``aigdetect scan``: one verdict row per file under some folders, with progress and a summary.

Exit codes: 0 when the scan finished (error rows included), 1 with ``--strict`` when a file could
not be scored, 3 with ``--fail-on`` when a file got one of the named verdicts, 2 for usage errors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..data.config import DiscoveryConfig
from ..engine.runtime import RuntimeConfig
from ..evidence.config import EvidenceConfig
from ..evidence.fusion import VERDICTS
from ..jobs.scan import JOINED, MERGED, NOTE, REPORT, SCANNED, WARNING
from ..scan.config import ENGINES, FORMATS, ScanConfig
from ..scan.request import SCAN_STAGE, ScanRequest
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
    from ..progress import ProgressEvent
    from ..scan.rows import Tally
    from ..scan.runner import ScanSummary

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
    """The scan job's events on stderr: progress as a bar on a terminal, otherwise a plain line at
    most every ``PROGRESS_INTERVAL_S``; then the summary, warnings and what else was written."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.console = Console(stderr=True)
        self.terminal = self.console.is_terminal and not quiet
        self.plain = PlainProgress()
        self.bar: Any = None

    def __enter__(self) -> _Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop(*exc)

    def _stop(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*(exc or (None, None, None)))
            self.bar = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == SCAN_STAGE:
            self._progress(event)
            return
        self._stop()
        detail = event.detail
        if event.stage in (WARNING, NOTE):
            typer.echo(f"warning: {detail['message']}" if event.stage == WARNING else detail["message"], err=True)
        elif event.stage == JOINED:
            typer.echo(f"merged the parts into {detail['out']}: {_tally_text(detail['tally'])}", err=True)
        elif self.quiet:
            return
        elif event.stage == SCANNED:
            typer.echo(_summary_text(detail["summary"]), err=True)
            for line in detail["summary"].warnings:
                typer.echo(f"warning: {line}", err=True)
        elif event.stage == MERGED:
            typer.echo(f"merged {plural(detail['parts'], 'part')} into {detail['out']}: {_tally_text(detail['tally'])}", err=True)
        elif event.stage == REPORT:
            typer.echo(f"report of {plural(detail['rows'], 'file')} in {detail['out']}", err=True)

    def _progress(self, update: ProgressEvent) -> None:
        if self.terminal and self.bar is None:
            self._start()
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

    def _start(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=self.console, transient=True,
            redirect_stdout=False, redirect_stderr=False, speed_estimate_period=RATE_WINDOW_S,
        )  # fmt: skip
        self.bar.__enter__()
        self.task = self.bar.add_task("scanning", total=None, rate="-- img/s")


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


OutOption = Annotated[str | None, option(ScanConfig, "out", "--out", "-o")]
FormatOption = Annotated[str | None, option(ScanConfig, "output_format", autocompletion=completer(FORMATS))]
ThresholdOption = Annotated[float | None, option(ScanConfig, "threshold")]
CropsOption = Annotated[int, option(ScanConfig, "crops")]
EvidenceOption = Annotated[
    bool,
    typer.Option("--evidence/--no-evidence", help="Read the evidence files carry about themselves (C2PA, XMP, EXIF, PNG text)."),
]
Sha256Option = Annotated[bool, option(ScanConfig, "sha256", "--sha256/--no-sha256")]
FormulaGuardOption = Annotated[bool, option(ScanConfig, "formula_guard", "--formula-guard/--raw-csv")]
RecursiveOption = Annotated[bool, option(ScanConfig, "recursive", "--recursive/--no-recursive")]
FollowSymlinksOption = Annotated[bool, option(ScanConfig, "follow_symlinks")]
MaxPixelsOption = Annotated[int, option(ScanConfig, "max_pixels")]
MaxBytesOption = Annotated[int, option(ScanConfig, "max_bytes")]
HiddenOption = Annotated[bool, option(DiscoveryConfig, "hidden")]
IncludeOption = Annotated[list[str], option(DiscoveryConfig, "include", metavar="GLOB")]
ExcludeOption = Annotated[list[str], option(DiscoveryConfig, "exclude", metavar="GLOB")]
FilesFromOption = Annotated[
    Path | None, typer.Option("--files-from", help="Also scan the paths listed in FILE ('-' for stdin), one per line.")
]
NullOption = Annotated[bool, typer.Option("-0", "--null", help="--files-from paths are separated by NUL bytes.")]
ResumeOption = Annotated[bool, option(ScanConfig, "resume")]
OverwriteOption = Annotated[bool, option(ScanConfig, "overwrite")]
ShardOption = Annotated[str | None, option(ScanConfig, "shard")]
MergeOption = Annotated[
    Path | None,
    typer.Option("--merge", help="Join OUT.part0..OUT.partN-1 (from --shard or torchrun) into OUT, then exit."),
]
SummaryJsonOption = Annotated[
    Path | None, typer.Option("--summary-json", dir_okay=False, help="Also write the scan's summary to this JSON file.")
]
HtmlOption = Annotated[
    Path | None, typer.Option("--html", dir_okay=False, help="Write a self-contained HTML report of the scan here.")
]
StrictOption = Annotated[bool, typer.Option("--strict", help="Exit 1 when any file could not be scored.")]
FailOnOption = Annotated[
    str | None,
    typer.Option(
        "--fail-on", metavar="VERDICT[,VERDICT]", autocompletion=completer(FAIL_ON_CHOICES, ","),
        help=f"Exit {EXIT_FOUND} when any file gets one of these verdicts (fused, fake|real, or error).",
    ),
]  # fmt: skip
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress and no summary on stderr (warnings and errors only).")
]
EngineOption = Annotated[str, option(ScanConfig, "engine", autocompletion=completer(ENGINES))]
StorageOptionsOption = Annotated[str | None, option(ScanConfig, "storage_options", metavar="JSON")]
RayAddressOption = Annotated[
    str | None, typer.Option("--ray-address", help="Join this Ray cluster (default: start a local Ray); with --engine ray.")
]
RayActorsOption = Annotated[
    int | None,
    typer.Option("--ray-actors", min=1, metavar="N", help="Scoring actors (default: one per GPU, else one per 4 CPUs); with --engine ray."),
]


@cli_errors
def scan(
    ctx: typer.Context,
    paths: PathsArgument = None,
    model: DetectorModelOption = None,
    checkpoint: CheckpointOption = None,
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    allow_random_backbone: AllowRandomBackboneOption = False,
    out: OutOption = default(ScanConfig, "out"),
    output_format: FormatOption = default(ScanConfig, "output_format"),
    threshold: ThresholdOption = default(ScanConfig, "threshold"),
    bands: BandsOption = None,
    crops: CropsOption = default(ScanConfig, "crops"),
    evidence: EvidenceOption = True,
    c2pa_trust: C2paTrustOption = None,
    c2pa_trust_list: C2paTrustListOption = None,
    c2pa_remote: C2paRemoteOption = default(EvidenceConfig, "c2pa_remote"),
    watermarks: WatermarksOption = default(EvidenceConfig, "watermarks"),
    sha256: Sha256Option = default(ScanConfig, "sha256"),
    formula_guard: FormulaGuardOption = default(ScanConfig, "formula_guard"),
    device: DeviceOption = default(RuntimeConfig, "device"),
    batch_size: BatchSizeOption = default(RuntimeConfig, "batch_size"),
    workers: WorkersOption = default(RuntimeConfig, "workers"),
    backend: BackendOption = default(RuntimeConfig, "backend"),
    precision: PrecisionOption = default(RuntimeConfig, "precision"),
    gpu_decode: GpuDecodeOption = default(RuntimeConfig, "gpu_decode"),
    compile: CompileOption = default(RuntimeConfig, "compile"),
    recursive: RecursiveOption = default(ScanConfig, "recursive"),
    follow_symlinks: FollowSymlinksOption = default(ScanConfig, "follow_symlinks"),
    max_pixels: MaxPixelsOption = default(ScanConfig, "max_pixels"),
    max_bytes: MaxBytesOption = default(ScanConfig, "max_bytes"),
    hidden: HiddenOption = default(DiscoveryConfig, "hidden"),
    include: IncludeOption = default(DiscoveryConfig, "include"),
    exclude: ExcludeOption = default(DiscoveryConfig, "exclude"),
    files_from: FilesFromOption = None,
    null: NullOption = False,
    resume: ResumeOption = default(ScanConfig, "resume"),
    overwrite: OverwriteOption = default(ScanConfig, "overwrite"),
    shard: ShardOption = default(ScanConfig, "shard"),
    merge: MergeOption = None,
    summary_json: SummaryJsonOption = None,
    html: HtmlOption = None,
    strict: StrictOption = False,
    fail_on: FailOnOption = None,
    quiet: QuietOption = False,
    engine: EngineOption = default(ScanConfig, "engine"),
    storage_options: StorageOptionsOption = json.dumps(default(ScanConfig, "storage_options")),
    ray_address: RayAddressOption = None,
    ray_actors: RayActorsOption = None,
) -> None:
    """Score every file under PATH... and write one verdict row per file (CSV, JSON or JSONL).

    Example: aigdetect scan ./photos --out verdicts.csv --html report.html
    """
    _run(ctx, SimpleNamespace(**locals()))


def _run(ctx: typer.Context, given: SimpleNamespace) -> None:
    """Parse, build the one request, run it, render its events and turn its counts into the exit code."""
    from ..jobs.scan import run

    failing = _fail_on(given.fail_on)
    request = _request(ctx, given)
    with _Reporter(given.quiet) as reporter:
        tally = run(request, reporter)
    _finish(tally, given.strict, () if request.merge is not None else failing)


def _request(ctx: typer.Context, given: SimpleNamespace) -> ScanRequest:
    from ..errors import ConfigError
    from ..scan.config import parse_shard

    if given.merge is not None:
        if given.paths:
            raise ConfigError("`merge` joins finished parts and takes no PATH")
        return ScanRequest(merge=str(given.merge), merge_format=given.output_format, merge_overwrite=given.overwrite,
                           command=command_line(ctx))  # fmt: skip
    bands = parse_bands(given.bands)
    runtime = RuntimeConfig(device=given.device, batch_size=given.batch_size, workers=given.workers, backend=given.backend,
                            precision=given.precision, gpu_decode=given.gpu_decode, compile=given.compile)  # fmt: skip
    config = ScanConfig(
        paths=tuple(given.paths or ()),
        listed=_read_list(given.files_from, given.null) if given.files_from is not None else (),
        out=None if given.out is None or str(given.out) == STDOUT else str(given.out),
        output_format=given.output_format, threshold=given.threshold, crops=given.crops, recursive=given.recursive,
        follow_symlinks=given.follow_symlinks, runtime=runtime, max_pixels=given.max_pixels, max_bytes=given.max_bytes,
        discovery=DiscoveryConfig(hidden=given.hidden, include=tuple(given.include), exclude=tuple(given.exclude)),
        shard=parse_shard(given.shard) if given.shard is not None else None,
        resume=given.resume, overwrite=given.overwrite, bands=bands,
        evidence=evidence_config(given.c2pa_trust, given.c2pa_trust_list, given.c2pa_remote, given.watermarks)
        if given.evidence else None,
        sha256=given.sha256, formula_guard=given.formula_guard, engine=given.engine,
        storage_options=_storage_options(given.storage_options),
    )  # fmt: skip
    choice = detector_choice(given.checkpoint, given.model, given.backbone_weights, given.cache_dir, given.allow_random_backbone)
    reads = tuple(str(p) for p in (given.c2pa_trust, given.c2pa_trust_list, given.files_from) if p is not None)
    return ScanRequest(config=config, detector=choice, reads=reads, command=command_line(ctx), started_at=STARTED_AT,
                       summary_json=_text(given.summary_json), html=_text(given.html), ray_address=given.ray_address,
                       ray_actors=given.ray_actors)  # fmt: skip


def _storage_options(text: str | None) -> dict[str, Any]:
    """``--storage-options`` as the JSON object fsspec takes."""
    from ..errors import ConfigError

    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise ConfigError("`storage_options` takes a JSON object, e.g. '{\"anon\": true}'")
    return options


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
