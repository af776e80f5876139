"""One scan as a caller asks for it: what to scan, with which detector, and which extra outputs.

A command builds one ``ScanRequest`` from its options and hands it to ``aigdetect.jobs.scan.run``;
the service and the distributed scans to come build the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..models.choice import DetectorChoice
from ..outputs import is_special
from .config import ScanConfig

SCAN_STAGE = "scan"
"""The stage of the events a scan reports after every written batch (files done, to do, errors)."""


@dataclass(frozen=True)
class ScanRequest:
    """A scan of ``config`` with ``detector``, or (``merge``) the joining of finished shard parts.

    Attributes:
        config: what to scan and where the rows go, before torchrun's ranks place it; None with ``merge``.
        detector: the detector options; the job loads it only when some file must be scored.
        reads: files the run reads besides the scanned ones (trust lists, the path list): never outputs.
        summary_json: also write the scan's summary to this JSON file.
        html: also write a self-contained HTML report of the scan's rows (needs ``config.out``).
        merge: join MERGE.part0..N-1 into MERGE instead of scanning.
        merge_format: the format of the parts (default: from the suffix of ``merge``).
        merge_overwrite: replace an existing ``merge`` output.
        command: the command line, recorded in the summary.
        started_at: when the run began on ``time.perf_counter`` (the wall time counts imports); now when None.
        ray_address: with ``config.engine`` ray, the cluster to join (None starts a local Ray).
        ray_actors: with ``config.engine`` ray, the scoring actors (None: one per GPU, else one per 4 CPUs).
    """

    config: ScanConfig | None = None
    detector: DetectorChoice = field(default_factory=DetectorChoice)
    reads: tuple[str, ...] = ()
    summary_json: str | None = None
    html: str | None = None
    merge: str | None = None
    merge_format: str | None = None
    merge_overwrite: bool = False
    command: str = ""
    started_at: float | None = None
    ray_address: str | None = None
    ray_actors: int | None = None

    def __post_init__(self) -> None:
        if (self.config is None) == (self.merge is None):
            raise ConfigError("a scan request takes either a scan `config` or `merge` OUT, not both")
        if self.html is not None and self.config is not None and (self.config.out is None or is_special(self.config.out)):
            raise ConfigError("`html` reads the rows back from `out`; pass `out` FILE too")
