"""The service behind the HTTP app: the detector, its runtime plan, the batching queue, the metrics.

It loads the detector after the server is listening (``load``, in a thread), so that ``/v1/health``
answers 503 while a large model loads rather than the connection being refused. Uploads are scored
exactly as ``aigdetect inspect`` scores files (``inspect_files``), batched across requests and
decoded in crash-isolated worker processes as the runtime plan says, in one scoring session (the
decode workers, the model's scoring copy and its compute threads live as long as the service).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..engine.plan import RuntimePlan
from ..engine.runtime import RuntimeConfig
from ..evidence.config import EvidenceConfig
from ..models.choice import DetectorChoice
from ..scan.config import ScanConfig
from ..version import __version__
from .batching import BatchQueue
from .config import ServeConfig
from .metrics import ServiceMetrics
from .refusals import Refused
from .uploads import Uploads

if TYPE_CHECKING:
    from ..engine.infer import ScoringSession
    from ..models.detector import Detector


@dataclass(frozen=True)
class ScoringSettings:
    """What ``inspect`` would be given: the detector, the run's settings, the evidence, the verdict's threshold and bands.

    Raises:
        ConfigError: a threshold, bands or crops that ``inspect`` refuses.
    """

    choice: DetectorChoice = field(default_factory=DetectorChoice)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    threshold: float | None = None
    bands: tuple[float, float] | None = None
    crops: int = 0

    def __post_init__(self) -> None:
        # The same checks as a scan's, on a placeholder path: uploads arrive later.
        ScanConfig(paths=("uploads",), threshold=self.threshold, bands=self.bands, crops=self.crops)


@dataclass(frozen=True)
class _Loaded:
    detector: Detector
    plan: RuntimePlan
    device: Any
    threshold: float
    bands: tuple[float, float]
    identity: str


class Service:
    """Loads the detector, queues uploads in batches, and answers with ``inspect``'s reports."""

    def __init__(self, config: ServeConfig, scoring: ScoringSettings, metrics: ServiceMetrics | None = None) -> None:
        self.config = config
        self.scoring = scoring
        self.metrics = metrics or ServiceMetrics()
        self.failure: BaseException | None = None
        self._loaded: _Loaded | None = None
        self._session: ScoringSession | None = None
        self._queue: BatchQueue | None = None

    @property
    def ready(self) -> bool:
        return self._queue is not None

    def load(self) -> None:
        """Load the detector, plan the run and start the scoring thread; a failure is kept in ``failure``.

        Raises:
            AigdetectError: as ``load_chosen`` and ``RuntimePlan.resolve``.
        """
        try:
            self._load()
        except BaseException as exc:
            self.failure = exc
            raise

    def _load(self) -> None:
        from ..engine.infer import ScoringSession, parameter_count, resolve_device
        from ..evidence import default_bands, validate_bands
        from ..models.factory import load_chosen
        from ..models.identity import detector_id
        from ..scan.inspection import inspect_reading

        scoring = self.scoring
        device = resolve_device(scoring.runtime.device)
        detector = load_chosen(scoring.choice)
        plan = RuntimePlan.resolve(scoring.runtime, str(device), parameter_count(detector))
        threshold = float(detector.threshold if scoring.threshold is None else scoring.threshold)
        bands = validate_bands(threshold, scoring.bands if scoring.bands is not None else default_bands(threshold))
        self._loaded = _Loaded(detector, plan, device, threshold, bands, detector_id(detector))
        reading = inspect_reading(detector, scoring.crops, scoring.evidence)

        def open_session() -> None:
            self._session = ScoringSession(detector, plan, reading)

        config = self.config
        self._queue = BatchQueue(self._score, max_batch=config.max_batch, max_wait_s=config.max_wait_ms / 1000,
                                 max_queue=config.max_queue, on_batch=self.metrics.batch, on_start=open_session)  # fmt: skip
        self.metrics.loaded.set(1)

    def _score(self, paths: list[str]) -> list[dict[str, Any]]:
        """One batch, in the scoring thread: ``inspect_files`` in the session's decode workers and compute threads."""
        from ..scan.inspection import inspect_files

        loaded = self._loaded
        assert loaded is not None
        scoring = self.scoring
        return inspect_files(loaded.detector, paths, evidence=scoring.evidence, crops=scoring.crops,
                             threshold=scoring.threshold, bands=scoring.bands, device=loaded.device,
                             session=self._session)  # fmt: skip

    async def inspect(self, uploads: Uploads) -> list[dict[str, Any]]:
        """The reports of one request's files, ``path`` set to each file's name as the client gave it.

        Raises:
            Refused: 503 before the detector is loaded or while stopping, 429 when the queue is full.
        """
        if self._queue is None:
            raise Refused(503, "loading", "the detector is still loading; retry shortly")
        future = self._queue.submit(uploads.paths)
        self.metrics.queue_files.set(self._queue.waiting)
        try:
            reports = await asyncio.wrap_future(future)
        finally:
            self.metrics.queue_files.set(self._queue.waiting)
        for report, name in zip(reports, uploads.names):
            report["path"] = name
        self.metrics.reports(reports)
        return reports

    def info(self) -> dict[str, Any]:
        """What a client needs to read the reports: detector, threshold, bands, limits, trust anchors."""
        loaded = self._loaded
        evidence = self.scoring.evidence
        return {
            "version": __version__,
            "ready": loaded is not None,
            "detector": loaded.identity if loaded else None,
            "threshold": loaded.threshold if loaded else None,
            "bands": list(loaded.bands) if loaded else None,
            "crops": self.scoring.crops,
            "engine": loaded.plan.engine if loaded else None,
            "watermarks": evidence.watermarks,
            "c2pa_trust": trust_summary(evidence),
            "limits": {
                "max_upload_bytes": self.config.max_upload_bytes,
                "max_files": self.config.max_files,
                "max_batch": self.config.max_batch,
                "max_queue": self.config.max_queue,
            },  # fmt: skip
        }

    def close(self) -> None:
        """Score what is queued and stop the scoring thread (after the server stopped taking requests)."""
        if self._queue is not None:
            self._queue.close()
        if self._session is not None:
            self._session.close()


def trust_summary(evidence: EvidenceConfig) -> dict[str, Any] | None:
    """The trust anchors in use, without their path: how many, their SHA-256, the file's date."""
    if evidence.trust_pem is None or evidence.c2pa_trust is None:
        return None
    try:
        modified = datetime.fromtimestamp(os.stat(evidence.c2pa_trust).st_mtime, timezone.utc).isoformat(timespec="seconds")
    except OSError:
        modified = None
    return {
        "anchors": evidence.trust_pem.count("-----BEGIN CERTIFICATE-----"),
        "sha256": hashlib.sha256(evidence.trust_pem.encode()).hexdigest(),
        "date": modified,
    }
