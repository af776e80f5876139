"""Robustness sweeps: the suite scored again under Gaussian blur and JPEG compression (Figure 4).

Each perturbation is applied to the full decoded image before the centre crop, as UnivFD's
validate.py does, using the same per-channel scipy filter and Pillow JPEG round trip
(``data.transforms.gaussian_blur`` / ``jpeg``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import torch

from ..data.transforms import gaussian_blur, jpeg
from ..engine.infer import Perturbation
from ..errors import ConfigError
from ..models.detector import Detector
from .bench import BenchConfig, DetectorInfo, PassResult, ProgressFn, pass_notes, pipeline, sample_files, score_pass
from .suites import Discovery, Suite

PAPER_BLUR = (1.0, 2.0, 3.0, 4.0)
PAPER_JPEG = (90, 80, 70, 60, 50, 40, 30)


@dataclass(frozen=True)
class Level:
    """One point of a sweep: ``clean`` (no perturbation), a blur sigma or a JPEG quality."""

    kind: Literal["clean", "blur", "jpeg"]
    value: float | None = None

    @property
    def label(self) -> str:
        if self.kind == "clean":
            return "clean"
        return f"blur σ={self.value:g}" if self.kind == "blur" else f"jpeg q={self.value:g}"

    def transform(self) -> Perturbation | None:
        if self.kind == "blur":
            return partial(gaussian_blur, sigma=float(self.value))
        if self.kind == "jpeg":
            return partial(jpeg, quality=int(self.value))
        return None


@dataclass(frozen=True)
class SweepConfig:
    """The levels to score: the paper's by default; a clean pass is the reference point of both curves."""

    blur: tuple[float, ...] = PAPER_BLUR
    jpeg: tuple[int, ...] = PAPER_JPEG
    clean: bool = True

    def __post_init__(self) -> None:
        if any(not sigma > 0 for sigma in self.blur):
            raise ConfigError(f"--blur sigmas must be positive, got {list(self.blur)}")
        if any(not 1 <= quality <= 100 for quality in self.jpeg):
            raise ConfigError(f"--jpeg qualities must be within 1..100, got {list(self.jpeg)}")
        if len(set(self.blur)) != len(self.blur) or len(set(self.jpeg)) != len(self.jpeg):
            raise ConfigError("--blur and --jpeg levels must not repeat")
        if not self.blur and not self.jpeg:
            raise ConfigError("give at least one --blur or --jpeg level")

    def levels(self) -> list[Level]:
        return (
            ([Level("clean")] if self.clean else [])
            + [Level("blur", float(s)) for s in self.blur]
            + [Level("jpeg", float(q)) for q in self.jpeg]
        )


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


def run_robustness(
    detector: Detector,
    discovery: Discovery,
    *,
    origin: str,
    device: torch.device,
    config: BenchConfig = BenchConfig(),
    sweep: SweepConfig = SweepConfig(),
    progress: ProgressFn | None = None,
) -> RobustnessResult:
    """Score the suite once per level.

    ``config.reencode``, when set, runs before each perturbation so that every image enters the
    sweep in the same container format.
    """
    sampled = sample_files(discovery, config.max_per_class, config.seed)
    reencode = config.reencode.transform() if config.reencode else None
    results = []
    for level in sweep.levels():
        result: PassResult = score_pass(
            detector,
            sampled.found,
            discovery.suite,
            device=device,
            config=config,
            perturb=pipeline(reencode, level.transform()),
            stage=level.label,
            progress=progress,
        )
        results.append((level, result))
    notes = list(discovery.notes) + pass_notes(results[0][1])
    return RobustnessResult(discovery.suite, sampled, DetectorInfo.of(detector, origin), config, sweep, results, notes)
