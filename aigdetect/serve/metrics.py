"""The service's Prometheus metrics, in a registry of its own (no process-wide state), all named ``aigdetect_``."""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    """Requests and errors by reason, inspect latency, batch sizes, queue depth, verdicts and file errors."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("aigdetect_requests", "HTTP requests answered, by endpoint and status code.",
                                ["endpoint", "status"], registry=self.registry)  # fmt: skip
        self.errors = Counter("aigdetect_request_errors", "Requests refused or failed, by reason.", ["reason"],
                              registry=self.registry)  # fmt: skip
        self.latency = Histogram("aigdetect_inspect_seconds", "Time to answer POST /v1/inspect, upload included.",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.batch_files = Histogram("aigdetect_batch_files", "Files per scored batch.", buckets=BATCH_BUCKETS,
                                     registry=self.registry)  # fmt: skip
        self.batch_seconds = Histogram("aigdetect_batch_seconds", "Time to decode and score one batch.",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.queue_files = Gauge("aigdetect_queue_files", "Files waiting for a batch.", registry=self.registry)
        self.in_flight = Gauge("aigdetect_inspect_in_flight", "POST /v1/inspect requests being received or scored.",
                               registry=self.registry)  # fmt: skip
        self.verdicts = Counter("aigdetect_verdicts", "Files scored, by verdict.", ["verdict"], registry=self.registry)
        self.file_errors = Counter("aigdetect_file_errors", "Uploaded files that could not be scored, by reason.",
                                   ["reason"], registry=self.registry)  # fmt: skip
        self.loaded = Gauge("aigdetect_detector_loaded", "1 once the detector is loaded.", registry=self.registry)

    def batch(self, files: int, seconds: float) -> None:
        self.batch_files.observe(files)
        self.batch_seconds.observe(seconds)

    def reports(self, reports: list[dict[str, Any]]) -> None:
        for report in reports:
            if "error" in report:
                self.file_errors.labels(str(report["error"]["reason"])).inc()
            else:
                self.verdicts.labels(str(report["verdict"])).inc()

    def text(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
