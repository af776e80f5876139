"""Robustness sweeps: the suite scored again under Gaussian blur and JPEG compression (Figure 4).

Each perturbation is applied to the full decoded image before the centre crop, as UnivFD's
validate.py does, using the same per-channel scipy filter and Pillow JPEG round trip
(``data.transforms.gaussian_blur`` / ``jpeg``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..models.detector import Detector
from ..progress import ProgressCallback
from .bench import BenchConfig, DetectorInfo, PassResult, pass_notes, pipeline, plan_for, sample_files, score_pass
from .bench_config import REFERENCE_ENGINE, Level, SweepConfig
from .suites import Discovery, Suite


@dataclass
class RobustnessResult:
    """One ``PassResult`` per level, in sweep order, plus what identifies the run."""

    suite: Suite
    discovery: Discovery
    detector: DetectorInfo
    config: BenchConfig
    sweep: SweepConfig
    levels: list[tuple[Level, PassResult]]
    notes: list[str] = field(default_factory=list)
    engine: str = REFERENCE_ENGINE


def run_robustness(
    detector: Detector,
    discovery: Discovery,
    *,
    origin: str,
    device: torch.device,
    config: BenchConfig = BenchConfig(),
    sweep: SweepConfig = SweepConfig(),
    progress: ProgressCallback | None = None,
) -> RobustnessResult:
    """Score the suite once per level.

    ``config.reencode``, when set, runs before each perturbation so that every image enters the
    sweep in the same container format.
    """
    sampled = sample_files(discovery, config.max_per_class, config.seed, config.protocol)
    reencode = config.reencode.transform() if config.reencode else None
    plan = plan_for(config.runtime, device, detector)
    results = []
    for level in sweep.levels():
        result: PassResult = score_pass(
            detector,
            sampled.found,
            discovery.suite,
            plan=plan,
            config=config,
            perturb=pipeline(reencode, level.transform()),
            stage=level.label,
            progress=progress,
        )
        results.append((level, result))
    notes = list(sampled.notes) + pass_notes(results[0][1])
    return RobustnessResult(discovery.suite, sampled, DetectorInfo.of(detector, origin), config, sweep, results, notes,
                            plan.engine)  # fmt: skip
