"""``RayScorer``: aigdetect as one stage of a user's own pipeline (Ray Data's ``map_batches``, Spark's
``mapInPandas``): batches of image bytes and their paths in, the scan's row columns out.

It reads each image with the scan's reader (the same caps, evidence and hash), scores with the
same plan and fuses with the same rules, so its rows equal a scan's of the same files (``mtime_ns``
stays empty: bytes carry no time). Decoding runs in the calling worker: a decoder that crashes
takes that worker down, and Ray or Spark retries its batch; run ``scan --engine ray`` where the
local engine's crash isolation per file matters.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

from ..engine.reading import FileReader, ReadOptions
from ..engine.records import ImageRecord
from ..engine.runtime import RuntimeConfig
from ..evidence.config import EvidenceConfig
from ..results.parquet import rows_table
from ..results.schema import COLUMN_TYPES, scan_columns
from ..scan.config import ScanConfig
from ..scan.rows import RowContext, record_row
from ..scan.runner import DetectorSource, detector_source, read_options, row_settings
from .engine import actor_plan, score_answers

_SPARK_TYPES = {"text": "string", "enum": "string", "float": "double", "int": "bigint",
                "evidence": "array<struct<source:string,claim:string,strength:string,detail:string,generator:string>>"}  # fmt: skip


def spark_schema(crops: int = 0) -> str:
    """The DDL schema of the rows, for ``mapInPandas``."""
    return ", ".join(f"{name} {_SPARK_TYPES[COLUMN_TYPES[name].kind]}" for name in scan_columns(crops))


class RayScorer:
    """A callable class for ``Dataset.map_batches`` (one instance per actor: the model loads once).

    Example::

        ds = ray.data.read_binary_files("s3://bucket/images/", include_paths=True)
        rows = ds.map_batches(RayScorer, fn_constructor_kwargs={"checkpoint": "detector.safetensors"},
                              concurrency=4, num_gpus=1, batch_size=64, batch_format="pyarrow")

    Args:
        checkpoint: a checkpoint file or built-in detector name (``load_detector``).
        detector: a loaded ``Detector``, or a callable returning one, instead of ``checkpoint``.
        bytes_column: the column holding each image's bytes.
        path_column: the column holding its path or URL (the row's ``path``).
        threshold, crops, evidence, sha256, runtime, max_pixels, max_bytes: as ``ScanConfig``.
    """

    def __init__(self, checkpoint: str | None = None, *, detector: Any = None, bytes_column: str = "bytes",
                 path_column: str = "path", threshold: float | None = None, crops: int = 0, evidence: bool = True,
                 sha256: bool = True, runtime: RuntimeConfig | None = None, max_pixels: int | None = None,
                 max_bytes: int | None = None) -> None:  # fmt: skip
        if (checkpoint is None) == (detector is None):
            raise TypeError("RayScorer takes a checkpoint or a detector, one of them")
        if detector is None:
            from ..models.factory import load_detector

            detector = load_detector(checkpoint)
        loaded = detector() if callable(detector) and not hasattr(detector, "image_size") else detector
        limits = {k: v for k, v in (("max_pixels", max_pixels), ("max_bytes", max_bytes)) if v is not None}
        config = ScanConfig(paths=("-",), threshold=threshold, crops=crops, sha256=sha256, runtime=runtime or RuntimeConfig(),
                            evidence=EvidenceConfig() if evidence else None, **limits)  # fmt: skip
        source: DetectorSource = detector_source(loaded)
        settings = row_settings(source, config)
        self.detector = loaded
        self.context = RowContext(settings.detector, settings.engine, settings.threshold, settings.bands, settings.columns)
        self.reader = FileReader(read_options(config, loaded.image_size, None))
        self.reading: ReadOptions = self.reader.options
        self.plan = actor_plan(loaded, config.runtime)
        self.columns = (bytes_column, path_column)

    def rows(self, blobs: Iterable[bytes | None], paths: Iterable[str]) -> list[dict[str, Any]]:
        """The rows of images given as bytes, in order (missing bytes are an error row)."""
        answers = []
        for index, (data, path) in enumerate(zip(blobs, paths)):
            record = ImageRecord(index=index, path=str(path))
            if data is None:
                record.error_reason, record.error = "missing", "no bytes in the batch"
                answers.append((record, None))
                continue
            record.size = len(data)
            answers.append(self.reader.read_open(io.BytesIO(bytes(data)), record))
        records = score_answers(self.detector, answers, self.reading, self.plan)
        return [record_row(record, self.context) for record in records]

    def __call__(self, batch: Any) -> Any:
        """A pyarrow table, a pandas frame or a dict of arrays in; the same kind out, with the row columns."""
        blob_name, path_name = self.columns
        if hasattr(batch, "column_names"):  # pyarrow
            rows = self.rows(batch.column(blob_name).to_pylist(), batch.column(path_name).to_pylist())
            return rows_table(rows, self.context.columns)
        if hasattr(batch, "iloc"):  # pandas
            rows = self.rows(batch[blob_name].tolist(), batch[path_name].tolist())
            return rows_table(rows, self.context.columns).to_pandas()
        rows = self.rows(list(batch[blob_name]), [str(p) for p in batch[path_name]])
        return {name: [row.get(name) for row in rows] for name in self.context.columns}


def score_frames(frames: Iterator[Any], **options: Any) -> Iterator[Any]:
    """For Spark's ``mapInPandas``: one scorer per partition, each pandas frame of bytes and paths scored.

    Example::

        frames = spark.read.format("binaryFile").load("s3a://bucket/images/")
        rows = frames.mapInPandas(lambda it: score_frames(it, checkpoint="detector.safetensors"), spark_schema())
    """
    scorer = RayScorer(**{"bytes_column": "content", **options})
    for frame in frames:
        yield scorer(frame)
