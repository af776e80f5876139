"""``scan --engine ray``: the local engine's stages on Ray Data, for clusters and buckets.

The driver lists the entries (``scan.sources``, the local scan's listing) and cuts them into
blocks (``blocks``); blocks whose part file exists are kept. The rest flow through Ray Data:
decode tasks read each block's files with the local engine's ``FileReader`` in a crash-isolated
pool (a decoder that crashes costs its file alone), then an actor pool scores them with
``score_decoded`` under the same ``RuntimePlan``, turns records into rows with ``record_row``
(the same fusion) and writes the block's part. Ray retries a failed task or a lost actor; a part is
written whole under its block's key, so a retry never duplicates rows and a killed run loses none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from ..engine.decoding import Decoding, decode_window
from ..engine.plan import RuntimePlan
from ..engine.reading import Perturbation, ReadItem, ReadOptions
from ..engine.runtime import RuntimeConfig
from ..errors import ConfigError
from ..progress import ProgressCallback, ProgressEvent
from ..results.parquet import FOLDER_SUMMARY, table_bytes
from ..scan.config import ScanConfig
from ..scan.request import SCAN_STAGE
from ..scan.rows import RowContext, Tally, record_row
from ..scan.runner import (
    DetectorSource,
    ScanSummary,
    detector_source,
    read_options,
    row_settings,
    scan_entries,
)
from .blocks import ACTOR_CPUS, Block, RayOptions, entry_fields, plan_blocks
from .parts import PartStore, counts_of, tally_of


def _items(entries: str) -> list[ReadItem]:
    return [
        ReadItem(e["path"], e["follow"], tuple(e["problem"]) if e["problem"] else None, e["size"], e["mtime_ns"], e["version"])
        for e in json.loads(entries)
    ]


def _objects(values: list[Any]) -> np.ndarray:
    """A column of Python objects (Ray Data stores them pickled by Ray itself)."""
    column = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        column[index] = value
    return column


def decode_blocks(batch: dict[str, np.ndarray], reading: ReadOptions) -> dict[str, np.ndarray]:
    """A Ray Data task: each block's files read and decoded by the local engine's worker pool."""
    answers = []
    for entries in batch["entries"]:
        items = _items(str(entries))
        decoding = Decoding(items, reading, workers=1, window=decode_window(len(items), 1))
        try:
            answers.append(list(decoding))
        finally:
            decoding.close()
    return {"key": batch["key"], "answers": _objects(answers)}


class _Decoded:
    """Answers decoded elsewhere, in the shape ``score_decoded`` takes from a ``Decoding``."""

    workers = 0

    def __init__(self, answers: list[Any], reading: ReadOptions) -> None:
        self.answers = answers
        self.reading = reading

    def __iter__(self) -> Iterator[Any]:
        return iter(self.answers)

    def close(self) -> None:
        self.answers = []


def score_answers(detector: Any, answers: list[Any], reading: ReadOptions, plan: RuntimePlan) -> list[Any]:
    """The records of decoded answers, scored as the local engine scores them (``score_decoded``)."""
    from ..engine.infer import score_decoded

    return [record for scored in score_decoded(detector, _Decoded(answers, reading), plan) for record in scored]


def actor_plan(detector: Any, runtime: RuntimeConfig) -> RuntimePlan:
    """The plan of a scoring actor: the run's, with decoding done before the batches reach it."""
    from ..engine.infer import parameter_count, resolve_device

    plan = RuntimePlan.resolve(runtime, str(resolve_device(runtime.device)), parameter_count(detector))
    return replace(plan, workers=0, gpu_decode=False)


class ScoreBlocks:
    """A Ray Data actor: loads the detector once, scores each decoded block under the run's plan,
    fuses the rows and writes the block's part file."""

    def __init__(self, source: DetectorSource, runtime: RuntimeConfig, reading: ReadOptions, context: RowContext,
                 store: PartStore) -> None:  # fmt: skip
        self.detector = source.load()
        self.plan = actor_plan(self.detector, runtime)
        self.reading = reading
        self.context = context
        self.store = store

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        summaries = []
        for key, answers in zip(batch["key"], batch["answers"]):
            records = score_answers(self.detector, list(answers), self.reading, self.plan)
            rows = [record_row(record, self.context) for record in records]
            self.store.write(Block(str(key), ()).part, table_bytes(rows, self.context.columns))
            tally = Tally()
            tally.add(rows)
            summaries.append(json.dumps({"rows": len(rows), "counts": counts_of(tally)}))
        return {"key": batch["key"], "summary": np.array(summaries, dtype=object)}


def _connect(options: RayOptions) -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError("`engine` ray needs Ray: pip install 'aigdetect[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=options.address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return ray


def _actors(ray: Any, options: RayOptions) -> tuple[int, dict[str, Any]]:
    """How many scoring actors, and what each asks for: a GPU each where the cluster has some."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return options.actors or gpus, {"num_gpus": 1}
    return options.actors or max(1, int(resources.get("CPU", 1)) // 4), {"num_cpus": ACTOR_CPUS}


def ray_scan(
    detector: Any,
    config: ScanConfig,
    options: RayOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    perturb: Perturbation | None = None,
    command: str = "",
    started_at: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> ScanSummary:
    """Scan ``config.paths`` (local paths or URLs) on Ray and write a folder of Parquet parts at ``config.out``.

    Rerunning the same command keeps the parts already written (each block is keyed by its entries
    and the settings) and scans the rest; a finished scan rerun scans nothing.

    Args:
        detector: the model, or a ``DetectorSource`` that loads it (in each actor).
        config: what to scan and how; ``out`` is the folder (a local path or a URL).
        options: the cluster, the actors and the block size.
        progress: called after every written block.
        perturb: applied to each decoded image, in the decode tasks (as ``run_scan``'s).
        command: the command line, recorded in the summary.
        started_at: when the run began on ``clock``.
        clock: monotonic seconds.

    Raises:
        ConfigError: no ``out``, a format other than Parquet, the folder is another scan's, or Ray is missing.
        InputError: a PATH or URL does not exist.
    """
    options = options or RayOptions()
    started_at = clock() if started_at is None else started_at
    if config.out is None or config.output_format != "parquet":
        raise ConfigError("`engine` ray writes a folder of Parquet parts; pass `out` NAME.parquet")
    source = detector_source(detector)
    settings = row_settings(source, config)
    context = RowContext(settings.detector, settings.engine, settings.threshold, settings.bands, settings.columns)
    trust = config.evidence.anchors.describe() if config.evidence is not None else None
    summary = ScanSummary(config.out, "parquet", settings, command=command, c2pa_trust=trust)
    store = PartStore(config.out, config.storage_options)
    blocks = plan_blocks(scan_entries(config), settings, options.block_size)
    store.claim(settings, config.overwrite)
    existing = store.parts()
    todo = [b for b in blocks if b.part not in existing]
    for block in blocks:
        if block.part in existing:
            kept = store.tally(block.part)
            summary.tally.add_counts(kept)
            summary.resumed += kept.rows
    total = sum(len(b.entries) for b in todo)
    ready = clock()
    if todo:
        if source.image_size is None:
            loaded = source.load()
            source = DetectorSource(source.identity, source.threshold, lambda: loaded, image_size=loaded.image_size)
        _run_blocks(source, config, options, context, store, todo, summary, progress, total, perturb)
    finished = clock()
    summary.scoring_s, summary.wall_s = finished - ready, finished - started_at
    wanted = {b.part for b in blocks}
    for stale in sorted(existing - wanted):
        store.remove(stale)
    if todo or existing != wanted or not _finished(store):
        store.finish(summary.as_dict())
    return summary


def _finished(store: PartStore) -> bool:
    return FOLDER_SUMMARY in store.names()


def _run_blocks(source: DetectorSource, config: ScanConfig, options: RayOptions, context: RowContext, store: PartStore,
                todo: list[Block], summary: ScanSummary, progress: ProgressCallback | None, total: int,
                perturb: Perturbation | None) -> None:  # fmt: skip
    ray = _connect(options)
    assert source.image_size is not None
    reading = replace(read_options(config, source.image_size, perturb), jpeg_bytes=False)
    actors, resources = _actors(ray, options)
    items = [{"key": b.key, "entries": json.dumps([entry_fields(f) for f in b.entries])} for b in todo]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    # Ray Data's defaults retry a failed task and restart a lost actor (re-running its blocks). Decode
    # tasks ask for other resources than the actors, so Ray Data keeps the two stages apart (it fuses
    # stages with equal requests) and decoding overlaps with scoring, as the local engine's workers do.
    decoded = dataset.map_batches(decode_blocks, fn_kwargs={"reading": reading}, batch_size=1, num_cpus=options.decode_cpus)
    scored = decoded.map_batches(
        ScoreBlocks, batch_size=1, concurrency=actors,
        fn_constructor_kwargs={"source": source, "runtime": config.runtime, "reading": reading, "context": context,
                               "store": store}, **resources,
    )  # fmt: skip
    errors = 0
    if progress:
        progress(ProgressEvent(SCAN_STAGE, 0, total, 0))
    for result in scored.iter_rows():
        done = json.loads(str(result["summary"]))
        tally = tally_of(done["counts"])
        summary.tally.add_counts(tally)
        summary.scored += done["rows"]
        errors += tally.errors
        if progress:
            progress(ProgressEvent(SCAN_STAGE, summary.scored, total, errors))
