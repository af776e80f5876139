"""The scan itself: walk the files, keep what ``resume`` may keep, score the rest, write rows.

Rows follow the byte order of the paths. Entries that cannot be scored (reported by the walker)
take their place in that order, so a resumed or sharded scan lines up with a plain one, and the
output of a resumed scan equals that of a scan of the folder as it is now.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from ..engine.decoding import Decoding
from ..engine.plan import RuntimePlan, known_device
from ..engine.reading import Perturbation, ReadItem, ReadOptions
from ..errors import CheckpointError, ConfigError
from ..evidence import default_bands, validate_bands
from ..fileio import atomic_write
from ..models.identity import detector_id, random_backbone_warning
from ..outputs import Output, OutputError, is_special, open_special
from ..outputs import check_output as check_output_path
from ..progress import ProgressCallback, ProgressEvent
from ..results.previous import Previous, parse_line, read_previous
from ..results.schema import Row, scan_columns
from ..results.write import RowWriter, append_writer, growing_file, header_line, merge_runs, open_writer
from ..version import __version__
from .config import ScanConfig, part_base
from .lock import OutputLock
from .request import SCAN_STAGE
from .resume import ResumeIndex, key_digest
from .rows import RowContext, Tally, found_key, record_row
from .shard import shard_of
from .sidecar import SCAN_RESULTS, RowSettings, read_sidecar, write_sidecar
from .sources import entries
from .walk import FoundFile, WalkRules, require_paths

if TYPE_CHECKING:
    from ..models.detector import Detector


@dataclass
class ScanSummary:
    """The outcome of a scan; ``tally`` counts every row of the output, kept ones included.

    Attributes:
        out: the output file, or None for a stream.
        output_format: csv, json or jsonl.
        settings: what shaped the rows (detector id, threshold, bands, ...).
        command: the command line, as given by the caller.
        started: when the scan started (UTC, ISO 8601).
        tally: verdict and error counts over the whole output.
        scored: rows produced by this run.
        resumed: rows kept from an earlier run by ``resume``.
        stale: rows of an earlier output that were rescanned because their settings or version differ.
        skipped: entries left out by the discovery rules (system junk, hidden entries, globs).
        scoring_s: seconds from the detector being ready to the last row (what ``images_per_s`` divides by).
        wall_s: seconds of the whole run, from ``run_scan``'s ``started_at`` (the caller's start,
            model build and walk included) to the last row.
        gpu_decode_fallbacks: why each file that the batched device decoder gave back to the CPU
            decoder was given back (``gpu_decode``), with the count of each reason.
        c2pa_trust: the trust lists C2PA signatures were checked against (None without evidence).
    """

    out: str | None
    output_format: str
    settings: RowSettings
    command: str = ""
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    tally: Tally = field(default_factory=Tally)
    scored: int = 0
    resumed: int = 0
    stale: int = 0
    skipped: int = 0
    scoring_s: float = 0.0
    wall_s: float = 0.0
    gpu_decode_fallbacks: Counter[str] = field(default_factory=Counter)
    c2pa_trust: str | None = None

    @property
    def detector(self) -> str:
        return self.settings.detector

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    @property
    def images_per_s(self) -> float | None:
        """The scoring rate: rows of this run per second once the detector was ready."""
        return self.scored / self.scoring_s if self.scoring_s > 0 and self.scored else None

    @property
    def warnings(self) -> list[str]:
        """What a reader of any output of this scan must be told (a random backbone's meaningless verdicts)."""
        warning = random_backbone_warning(self.settings.detector)
        return [warning] if warning else []

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.tally.as_dict(),
            "scored": self.scored,
            "resumed": self.resumed,
            "skipped": self.skipped,
            "detector": self.settings.detector,
            "engine": self.settings.engine,
            "threshold": self.settings.threshold,
            "bands": list(self.settings.bands),
            "wall_s": round(self.wall_s, 3),
            "scoring_s": round(self.scoring_s, 3),
            "images_per_s": None if self.images_per_s is None else round(self.images_per_s, 2),
            "gpu_decode_fallbacks": sum(self.gpu_decode_fallbacks.values()),
            "gpu_decode_fallback_reasons": dict(self.gpu_decode_fallbacks.most_common()),
            "warnings": self.warnings,
            "c2pa_trust": self.c2pa_trust,
            "aigdetect_version": __version__,
            "started": self.started,
            "command": self.command,
            "cwd": os.getcwd(),
        }


def _trust_fingerprint(config: ScanConfig) -> str | None:
    evidence = config.evidence
    if evidence is None or evidence.trust_pem is None:
        return None
    return hashlib.sha256(evidence.trust_pem.encode("utf-8")).hexdigest()[:16]


def row_settings(source: DetectorSource, config: ScanConfig) -> RowSettings:
    threshold = float(source.threshold if config.threshold is None else config.threshold)
    bands = validate_bands(threshold, config.bands if config.bands is not None else default_bands(threshold))
    return RowSettings(
        detector=source.identity,
        engine=config.runtime.engine_label(),
        threshold=threshold,
        bands=bands,
        columns=scan_columns(config.crops),
        evidence=config.evidence is not None,
        watermarks=config.evidence is not None and config.evidence.watermarks,
        trust=_trust_fingerprint(config),
        sha256=config.sha256,
    )


def check_output(config: ScanConfig, protected: Sequence[str]) -> None:
    """Refuse an output that would destroy an input, or an earlier output without ``resume``/``overwrite``
    (the rule of ``aigdetect.outputs``, with ``resume`` allowed to keep an earlier output).

    Raises:
        OutputError: ``out`` is a folder, a link, a protected file (the checkpoint in use, say), an
            existing file without ``resume`` or ``overwrite``, or a file that is not a scan output.
    """
    out = config.out
    if out is None:
        return
    allowed = config.resume or config.overwrite
    allowed_by = "pass `resume` to continue it or `overwrite` to replace it"
    growing = growing_file(out, config.output_format)
    if growing != out and os.path.lexists(growing) and not allowed:
        raise OutputError(f"`out` {out} exists; {allowed_by}")
    reads = [*config.paths, *protected]
    check_output_path(Output.of(out, SCAN_RESULTS, "out"), overwrite=allowed, reads=reads, allowed_by=allowed_by)


def _own_files(config: ScanConfig) -> Callable[[FoundFile], bool]:
    """Whether a found file is this scan's own output (or a shard's part of it): never a row."""
    if config.out is None:
        return lambda found: False
    cwd = os.getcwd()
    base = os.path.normpath(os.path.join(cwd, part_base(config.out)))

    def own(found: FoundFile) -> bool:
        path = os.path.normpath(os.path.join(cwd, found.path))
        return path == base or path.startswith(base + ".")

    return own


def scan_entries(config: ScanConfig, rules: WalkRules | None = None) -> Iterator[FoundFile]:
    """This scan's entries in path order, streamed (collected first only to follow links in folders);
    ``rules`` counts what they leave out."""
    found = entries(config.paths, listed=config.listed, recursive=config.recursive, follow_symlinks=config.follow_symlinks,
                    rules=rules or WalkRules(config.discovery), storage_options=config.storage_options)  # fmt: skip
    own = _own_files(config)
    for entry in found:
        if not own(entry) and (config.shard is None or shard_of(entry.path, config.shard[1]) == config.shard[0]):
            yield entry


def _kept_row(line: str, previous: Previous) -> Row:
    return parse_line(previous.path, previous.output_format, 0, line, previous.columns).row


def _write_kept(index: ResumeIndex, config: ScanConfig, context: RowContext, summary: ScanSummary) -> tuple[set[bytes], int]:
    """Rewrite the output (atomically) with its header and the rows it keeps, in path order.

    Returns:
        The key digests of the kept rows, and the byte offset where the rows of this run will start.
    """
    assert config.out is not None
    kept: set[bytes] = set()
    growing = growing_file(config.out, config.output_format)
    fmt = "jsonl" if config.output_format == "json" else config.output_format

    def dump(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as target:
            target.writelines(line + "\n" for line in header_line(fmt, context.columns))
            for found in scan_entries(config):
                key = found_key(found, context.detector)
                line = index.take(key)
                if line is not None:
                    target.write(line + "\n")
                    kept.add(key_digest(key))
                    summary.tally.add([_kept_row(line, index.previous)])
                    summary.resumed += 1

    atomic_write(growing, dump)
    return kept, os.path.getsize(growing)


def _resume_index(config: ScanConfig, settings: RowSettings, summary: ScanSummary) -> ResumeIndex | None:
    """The rows an earlier output may give this scan; None when there is nothing to resume."""
    if not config.resume or config.out is None:
        return None
    recorded = read_sidecar(config.out)
    if recorded is not None:
        changed = settings.differences(recorded["settings"])
        if changed:
            raise ConfigError(
                f"{config.out} was made with other settings ({'; '.join(changed)}); "
                "resume with the same settings, or `overwrite` it"
            )
    previous = read_previous(config.out, config.output_format, settings.columns)
    if previous is None:
        return None
    index = ResumeIndex.build(previous, settings.threshold)
    if previous.stale:
        summary.stale = sum(1 for _ in previous.rows())
    return index


@dataclass(frozen=True)
class DetectorSource:
    """A detector known by its id and threshold, loaded only when a file must be scored, so that a
    resumed scan with nothing left to do, or a merge, never loads torch or the weights.

    ``image_size`` and ``parameters``, when known before loading (from the checkpoint's metadata),
    let the decode workers start while the model loads; the loaded model must have that size.
    """

    identity: str
    threshold: float
    load: Callable[[], Detector]
    image_size: int | None = None
    parameters: int | None = None


def detector_source(detector: Detector | DetectorSource) -> DetectorSource:
    if isinstance(detector, DetectorSource):
        return detector
    from ..engine.infer import parameter_count

    return DetectorSource(detector_id(detector), float(detector.threshold), lambda: detector, image_size=detector.image_size,
                          parameters=parameter_count(detector))  # fmt: skip


def run_scan(
    detector: Detector | DetectorSource,
    config: ScanConfig,
    *,
    stream: TextIO | None = None,
    progress: ProgressCallback | None = None,
    perturb: Perturbation | None = None,
    command: str = "",
    protected: Sequence[str] = (),
    started_at: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> ScanSummary:
    """Scan ``config.paths`` and write one row per entry to ``config.out`` (or ``stream``).

    Entries are streamed from the walk to the decode workers and on to the output, so memory does
    not grow with the number of files (except with ``follow_symlinks``, whose walk collects them).

    Args:
        detector: the model that scores the images, or a ``DetectorSource`` that loads it on demand.
        config: what to scan and how.
        stream: where rows go when ``config.out`` is None.
        progress: called after every written batch with a ``scan`` event: files done and to do in this
            run, and errors among them.
        perturb: applied to each decoded image before cropping (robustness studies; tests use it
            to make a decoder worker crash on purpose).
        command: the command line, recorded in the summary.
        protected: files this scan reads (the checkpoint, say), which ``out`` must not be.
        started_at: when the run began on ``clock`` (a command passes its own start, so the wall
            time counts the imports and the model build); now when None.
        clock: monotonic seconds; tests pass a fake one.

    Returns:
        The counts over the whole output and the speed of this run.

    Raises:
        InputError: a PATH does not exist, the output is locked by another scan, or the output to
            resume is damaged.
        ConfigError: the output exists without ``resume``/``overwrite``, would replace an input, or
            was written with other settings.
    """
    started_at = clock() if started_at is None else started_at
    require_paths(config.paths)
    if config.out is not None and is_special(config.out):
        # A FIFO or a device (/dev/stdout) is a stream: written in place, with no lock, sidecar or resume.
        check_output(config, protected)
        with open_special(config.out) as target:
            return run_scan(detector, replace(config, out=None, overwrite=False), stream=target, progress=progress,
                            perturb=perturb, command=command, protected=protected)  # fmt: skip
    source = detector_source(detector)
    settings = row_settings(source, config)
    context = RowContext(settings.detector, settings.engine, settings.threshold, settings.bands, settings.columns)
    trust = config.evidence.anchors.describe() if config.evidence is not None else None
    summary = ScanSummary(config.out, config.output_format, settings, command=command, c2pa_trust=trust)
    check_output(config, protected)
    with ExitStack() as stack:
        if config.out is not None:
            stack.enter_context(OutputLock(config.out))
        total = sum(1 for _ in scan_entries(config)) if progress else 0
        index = _resume_index(config, settings, summary)
        kept: set[bytes] = set()
        boundary = 0
        if index is not None:
            stack.callback(index.close)
            kept, boundary = _write_kept(index, config, context, summary)
        rules = WalkRules(config.discovery)
        todo = (
            ReadItem(f.path, f.follow, f.problem, f.size, f.mtime_ns, f.version)
            for f in scan_entries(config, rules)
            if not kept or key_digest(found_key(f, context.detector)) not in kept
        )
        # The detector loads before a new output is created: one that fails to load leaves none behind.
        batches = _scorer(source, todo, config, perturb)
        if index is not None:
            writer: RowWriter = append_writer(config.out, config.output_format)
        else:
            writer = open_writer(config.output_format, context.columns, out=config.out, stream=stream)
        if config.out is not None:
            write_sidecar(config.out, settings, complete=False, shard=config.shard)
        ready = clock()
        errors = 0
        try:
            if progress:
                progress(ProgressEvent(SCAN_STAGE, 0, total - summary.resumed, 0))
            for records in batches:
                rows = [record_row(record, context) for record in records]
                writer.write_rows(rows, context.columns, config.formula_guard)
                summary.tally.add(rows)
                summary.scored += len(rows)
                summary.gpu_decode_fallbacks.update(r.device_decode_refused for r in records if r.device_decode_refused)
                errors += sum(1 for row in rows if row["status"] != "ok")
                if progress:
                    progress(ProgressEvent(SCAN_STAGE, summary.scored, total - summary.resumed, errors))
            finished = clock()
            summary.scoring_s, summary.wall_s = finished - ready, finished - started_at
            summary.skipped = rules.skipped
            if config.out is not None and summary.resumed and summary.scored:
                writer.close()
                merge_runs(growing_file(config.out, config.output_format), config.output_format,
                           len(header_line(config.output_format, context.columns)), boundary)  # fmt: skip
            writer.finish(summary.as_dict(), context.columns)
        finally:
            writer.close()
        if config.out is not None:
            write_sidecar(config.out, settings, complete=True, summary=summary.as_dict(), shard=config.shard)
    return summary


def _scorer(
    source: DetectorSource, todo: Iterator[ReadItem], config: ScanConfig, perturb: Perturbation | None
) -> Iterator[list[Any]]:
    """Records of the entries left to score, one list per batch. The detector (and torch) is loaded
    here, only when some entry is left to score. When the device and the input size are known
    without torch, the decode workers start first and decode while the model loads."""
    first = next(todo, None)
    if first is None:
        return iter(())
    runtime = config.runtime
    items = itertools.chain([first], todo)
    device_name = known_device(runtime.device)
    if device_name is None or source.image_size is None:
        from ..engine.infer import parameter_count, resolve_device, score_items

        detector = source.load()
        plan = RuntimePlan.resolve(runtime, str(resolve_device(runtime.device)), parameter_count(detector))
        return score_items(detector, items, plan, reading=read_options(config, detector.image_size, perturb))
    plan = RuntimePlan.resolve(runtime, device_name, source.parameters)
    reading = read_options(config, source.image_size, perturb).decoded_on_device(plan.gpu_decode)
    decoding = Decoding(items, reading, workers=plan.workers, window=plan.window)
    try:
        detector = decoding.ahead_of(source.load, plan.ahead_limit(reading))
        if detector.image_size != source.image_size:
            raise CheckpointError(
                f"the checkpoint's metadata gives an input size of {source.image_size}, its backbone {detector.image_size}"
            )
    except BaseException:
        decoding.close()
        raise
    from ..engine.infer import score_decoded

    return score_decoded(detector, decoding, plan)


def read_options(config: ScanConfig, size: int, perturb: Perturbation | None) -> ReadOptions:
    return ReadOptions(
        size=size, crops=config.crops, perturb=perturb, max_pixels=config.max_pixels, max_bytes=config.max_bytes,
        sha256=config.sha256, evidence=config.evidence, storage_options=config.storage_options or None,
    )  # fmt: skip
