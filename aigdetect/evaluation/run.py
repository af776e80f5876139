"""One bench or robustness run, from options to report files: what ``aigdetect bench`` and
``aigdetect robustness`` call with their options, so the CLI only parses and renders."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models.choice import DetectorChoice
from ..progress import ProgressCallback
from .bench_config import BenchConfig, SweepConfig
from .suites import SUITES

FOLDER_SUITE = "folder"


def suite_names() -> list[str]:
    """What ``bench SUITE`` accepts: the registered suites, then ``folder`` (a --real/--fake pair)."""
    return [*SUITES.names(), FOLDER_SUITE]


@dataclass(frozen=True)
class BenchRequest:
    """Everything one run needs; ``sweep`` makes it a robustness run."""

    suite: str
    choice: DetectorChoice = field(default_factory=DetectorChoice)
    config: BenchConfig = field(default_factory=BenchConfig)
    root: str | None = None
    real: str | None = None
    fake: str | None = None
    name: str = FOLDER_SUITE
    out: str | None = None
    compare: str | None = None
    sweep: SweepConfig | None = None
    command: str = ""

    def __post_init__(self) -> None:
        if self.suite not in suite_names():
            raise ConfigError(f"unknown suite {self.suite!r}; choose one of {', '.join(suite_names())}")
        if self.suite == FOLDER_SUITE:
            if self.real is None or self.fake is None or self.root is not None:
                raise ConfigError("the folder suite takes `real` DIR and `fake` DIR (and no `root`)")
        elif self.root is None or self.real is not None or self.fake is not None:
            raise ConfigError(f"suite {self.suite} takes `root` DIR (`real` and `fake` are for the folder suite)")

    @property
    def kind(self) -> str:
        return "bench" if self.sweep is None else "robustness"


@dataclass
class RunOutcome:
    """The results dict (results.json), the files written, and the tables to show."""

    data: dict[str, Any]
    written: list[Path]
    tables: list[Any]


def run_request(request: BenchRequest, progress: ProgressCallback | None = None) -> RunOutcome:
    """Discover the suite, load the detector, score, and write the report files into ``out``.

    Raises:
        InputError, LayoutError: the folders do not hold the suite.
        ConfigError, CheckpointError, WeightsError: the detector cannot be loaded.
    """
    from ..engine.infer import resolve_device
    from ..models.factory import load_chosen
    from .bench import run_bench
    from .report import write_bench_report, write_robustness_report
    from .results import bench_dict, compare_results, load_results, robustness_dict
    from .robustness import run_robustness
    from .suites import discover, discover_pair
    from .tables import bench_tables, robustness_tables

    device = resolve_device(request.config.runtime.device)
    if request.suite == FOLDER_SUITE:
        discovery = discover_pair(request.real, request.fake, request.name)
    else:
        discovery = discover(SUITES.get(request.suite), request.root)
    other = load_results(request.compare, request.kind) if request.compare else None
    detector = load_chosen(request.choice)
    origin = request.choice.checkpoint or f"built-in {detector.name}"
    if request.sweep is None:
        bench = run_bench(detector, discovery, origin=origin, device=device, config=request.config, progress=progress)
        data = bench_dict(bench, request.command)
        write, tables = (lambda out: write_bench_report(bench, data, out)), bench_tables
    else:
        sweep = run_robustness(
            detector, discovery, origin=origin, device=device, config=request.config, sweep=request.sweep,
            progress=progress,
        )
        data = robustness_dict(sweep, request.command)
        write, tables = (lambda out: write_robustness_report(sweep, data, out)), robustness_tables
    if other is not None:
        data["compare"] = compare_results(data, other, os.fsdecode(request.compare))
    written = write(request.out) if request.out is not None else []
    return RunOutcome(data, written, tables(data))
