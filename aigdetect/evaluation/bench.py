"""Run a benchmark suite: score every image once, keep the per-image predictions, and compute the
paper's per-subset metrics with their means over all subsets and over generator families.

All figures are fractions in [0, 1] here and in results.json / results.csv; only the rendered
tables (results.md, the terminal) show percentages, as the paper does.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..engine.infer import parameter_count, read_items, score_items
from ..engine.plan import RuntimePlan
from ..engine.reading import Perturbation, ReadOptions
from ..engine.runtime import RuntimeConfig
from ..metrics import accuracy, average_precision, oracle_threshold
from ..models.detector import Detector
from ..progress import ProgressCallback, ProgressEvent
from .bench_config import REFERENCE_ENGINE, UNIVFD_FALLBACK, UNIVFD_MAX_SAMPLE, BenchConfig
from .suites import Discovery, SubsetFiles, Suite

THRESHOLD_KINDS = ("calibrated", "0.5", "oracle")
ACCURACY_FIELDS = ("acc", "real_acc", "fake_acc", "balanced_acc")
METRIC_KEYS = ("ap", *(f"{name}_{kind}" for kind in THRESHOLD_KINDS for name in ACCURACY_FIELDS))
ALL = "all"


def plan_for(runtime: RuntimeConfig, device: torch.device, detector: Detector) -> RuntimePlan:
    """The runtime plan of a pass over a suite: the scan's, for the same settings, device and model."""
    return RuntimePlan.resolve(runtime, str(device), parameter_count(detector))


def needs_reference(runtime: RuntimeConfig, plan: RuntimePlan) -> bool:
    """A precision other than fp32 asked for by name: its effect on the metrics is measured, never assumed."""
    return runtime.precision != "auto" and plan.precision != "fp32"


@dataclass(frozen=True)
class Pipeline:
    """Perturbations applied in order; a picklable callable, so decode workers can run it."""

    steps: tuple[Perturbation, ...]

    def __call__(self, array: np.ndarray) -> np.ndarray:
        for step in self.steps:
            array = step(array)
        return array


def pipeline(*steps: Perturbation | None) -> Perturbation | None:
    kept = tuple(s for s in steps if s is not None)
    return Pipeline(kept) if kept else None


@dataclass(frozen=True)
class Prediction:
    """One image's outcome; ``score`` is None and ``error`` says why when it could not be decoded."""

    subset: str
    path: str
    label: int
    score: float | None
    error: str | None = None


@dataclass(frozen=True)
class DetectorInfo:
    """What identifies the detector in a report: its name, where it came from, its threshold."""

    name: str
    origin: str
    backbone: str
    threshold: float

    @classmethod
    def of(cls, detector: Detector, origin: str) -> DetectorInfo:
        return cls(detector.name, origin, detector.source.label(), float(detector.threshold))


@dataclass
class SubsetResult:
    """Metrics of one subset. ``n_real``/``n_fake`` count scored images; failed ones are in ``n_errors``."""

    key: str
    title: str
    family: str | None
    location: str
    n_real: int
    n_fake: int
    n_errors: int
    thresholds: dict[str, float]
    metrics: dict[str, float]


@dataclass
class PassResult:
    """One scoring pass over a suite (clean, re-encoded, or one robustness level)."""

    subsets: list[SubsetResult]
    means: dict[str, dict[str, float]]
    predictions: list[Prediction]

    @property
    def errors(self) -> list[Prediction]:
        return [p for p in self.predictions if p.error is not None]


@dataclass
class BenchResult:
    """Everything a bench report shows; ``reencoded`` is the same suite scored after ``--reencode``,
    ``reference`` the same suite scored by the fp32 torch reference when ``engine`` runs another
    precision by request."""

    suite: Suite
    discovery: Discovery
    detector: DetectorInfo
    config: BenchConfig
    clean: PassResult
    reencoded: PassResult | None = None
    notes: list[str] = field(default_factory=list)
    engine: str = REFERENCE_ENGINE
    reference: PassResult | None = None


def subset_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[dict[str, float], dict[str, float]]:
    """AP and accuracies at the calibrated threshold, at 0.5 and at the oracle threshold.

    ``labels``/``scores`` must be ordered reals first, as UnivFD scores them: its oracle search
    keeps the last best threshold in that order. A subset lacking one class gets NaN throughout.

    Returns:
        (thresholds by kind, metrics keyed as in ``METRIC_KEYS``).
    """
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=np.float64)
    if not ((labels == 0).any() and (labels == 1).any()):
        return {k: math.nan for k in THRESHOLD_KINDS}, {k: math.nan for k in METRIC_KEYS}
    thresholds = {"calibrated": float(threshold), "0.5": 0.5, "oracle": oracle_threshold(labels, scores)}
    metrics = {"ap": average_precision(labels, scores)}
    for kind, value in thresholds.items():
        acc = accuracy(labels, scores, value)
        metrics[f"acc_{kind}"] = acc.overall
        metrics[f"real_acc_{kind}"] = acc.real
        metrics[f"fake_acc_{kind}"] = acc.fake
        metrics[f"balanced_acc_{kind}"] = acc.balanced
    return thresholds, metrics


def finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarize(suite: Suite, subsets: Sequence[SubsetResult]) -> dict[str, dict[str, float]]:
    """Means of every metric over all subsets and over each family that has a scored subset."""
    groups = {ALL: list(subsets)}
    for family, members in suite.family_members().items():
        scored = [s for s in subsets if s.key in members]
        if scored:
            groups[family] = scored
    return {
        name: {"n_subsets": float(len(group)), **{k: finite_mean([s.metrics[k] for s in group]) for k in METRIC_KEYS}}
        for name, group in groups.items()
    }


def univfd_sample(real: Sequence, fake: Sequence, max_sample: int, seed: int) -> tuple[list, list]:
    """UnivFD validate.py's draw for one subset: ``max_sample`` reals and fakes, or 100 of each when
    either class has fewer than ``max_sample``; each list shuffled by Python's ``random`` seeded
    once (their ``set_seed``), reals first, and cut. The kept files stay in shuffled order, the order
    their threshold search walks. A class with fewer than 100 keeps all of its images.
    """
    if max_sample > len(real) or max_sample > len(fake):
        max_sample = UNIVFD_FALLBACK
    rng = random.Random(seed)
    real, fake = list(real), list(fake)
    rng.shuffle(real)
    rng.shuffle(fake)
    return real[:max_sample], fake[:max_sample]


def sample_files(discovery: Discovery, max_per_class: int | None, seed: int, protocol: str = "all") -> Discovery:
    """The images each subset scores.

    ``protocol`` all: at most ``max_per_class`` reals and fakes per subset, drawn without
    replacement; each (subset, class) draw is seeded from ``seed`` and the subset key, so adding or
    removing a subset does not change which images another subset uses, and the kept files stay in
    sorted order. ``protocol`` univfd: ``univfd_sample`` per subset (``max_per_class`` replaces
    its 1000), with a note for each subset that falls back to 100 or has fewer than 100 in a class.
    """
    if protocol == "univfd":
        limit = max_per_class or UNIVFD_MAX_SAMPLE
        found, notes = [], list(discovery.notes)
        for f in discovery.found:
            real, fake = univfd_sample(f.real, f.fake, limit, seed)
            if min(len(f.real), len(f.fake)) < UNIVFD_FALLBACK:
                notes.append(
                    f"{f.subset.title}: {len(f.real)} real and {len(f.fake)} fake images, fewer than "
                    f"{UNIVFD_FALLBACK} in a class; UnivFD's validate.py stops on such a subset, here all of the smaller class is scored"
                )
            elif len(real) < limit:
                notes.append(
                    f"{f.subset.title}: fewer than {limit} images in a class, {UNIVFD_FALLBACK} per class scored (UnivFD's rule)"
                )
            found.append(replace(f, real=real, fake=fake))
        return replace(discovery, found=found, notes=notes)
    if max_per_class is None:
        return discovery

    def draw(paths: list, key: str, label: int) -> list:
        if len(paths) <= max_per_class:
            return paths
        rng = np.random.default_rng([seed, zlib.crc32(key.encode()), label])
        keep = np.sort(rng.choice(len(paths), size=max_per_class, replace=False))
        return [paths[i] for i in keep]

    found = [
        replace(f, real=draw(f.real, f.subset.key, 0), fake=draw(f.fake, f.subset.key, 1)) for f in discovery.found
    ]
    return replace(discovery, found=found)


def score_pass(
    detector: Detector,
    found: Sequence[SubsetFiles],
    suite: Suite,
    *,
    plan: RuntimePlan,
    config: BenchConfig,
    perturb: Perturbation | None = None,
    stage: str = "clean",
    progress: ProgressCallback | None = None,
) -> PassResult:
    """Score all subsets in one ``score_items`` run (full batches across subset boundaries)."""
    items = [(f.subset.key, label, path) for f in found for label, paths in ((0, f.real), (1, f.fake)) for path in paths]
    predictions: list[Prediction] = []
    reading = ReadOptions(size=detector.image_size, perturb=perturb, max_pixels=config.max_pixels, max_bytes=config.max_bytes)
    for batch in score_items(detector, read_items([path for _, _, path in items], reading), plan, reading=reading):
        for record in batch:
            key, label, _ = items[record.index]
            error = None if record.ok else f"{record.error_reason}: {record.error}"
            predictions.append(Prediction(key, record.path, label, record.score, error))
        if progress is not None:
            progress(ProgressEvent(stage, len(predictions), len(items)))
    by_subset: dict[str, list[Prediction]] = {f.subset.key: [] for f in found}
    for prediction in predictions:
        by_subset[prediction.subset].append(prediction)
    subsets = []
    for f in found:
        own = by_subset[f.subset.key]
        ok = [p for p in own if p.error is None]
        labels = np.array([p.label for p in ok], dtype=int)
        scores = np.array([p.score for p in ok], dtype=np.float64)
        thresholds, metrics = subset_metrics(labels, scores, detector.threshold)
        subsets.append(
            SubsetResult(
                key=f.subset.key,
                title=f.subset.title,
                family=f.subset.family,
                location=f.location,
                n_real=int((labels == 0).sum()),
                n_fake=int((labels == 1).sum()),
                n_errors=len(own) - len(ok),
                thresholds=thresholds,
                metrics=metrics,
            )
        )
    return PassResult(subsets, summarize(suite, subsets), predictions)


def pass_notes(result: PassResult) -> list[str]:
    """Notes for subsets whose metrics are undefined because decoding failures emptied a class."""
    return [
        f"{s.title}: metrics undefined, {s.n_real} real and {s.n_fake} fake images decoded ({s.n_errors} failed)"
        for s in result.subsets
        if not (s.n_real and s.n_fake)
    ]


def run_bench(
    detector: Detector,
    discovery: Discovery,
    *,
    origin: str,
    device: torch.device,
    config: BenchConfig = BenchConfig(),
    progress: ProgressCallback | None = None,
) -> BenchResult:
    """Score a discovered suite (and, with ``config.reencode``, score it again re-encoded).

    Args:
        detector: the model; its ``threshold`` is the calibrated threshold.
        discovery: from ``suites.discover`` or ``suites.discover_pair``.
        origin: the checkpoint path or built-in name, for the report.
        device: where to run the forward pass.
        config: sampling, re-encoding, batching and engine; a precision other than fp32 asked for
            by name also scores the suite with the fp32 torch reference, for the metrics' shift.
        progress: called after every batch with ``done`` of ``total`` images in the pass named ``stage``.
    """
    sampled = sample_files(discovery, config.max_per_class, config.seed, config.protocol)
    plan = plan_for(config.runtime, device, detector)
    clean = score_pass(detector, sampled.found, discovery.suite, plan=plan, config=config, progress=progress)
    reencoded = None
    if config.reencode is not None:
        reencoded = score_pass(
            detector,
            sampled.found,
            discovery.suite,
            plan=plan,
            config=config,
            perturb=config.reencode.transform(),
            stage=f"reencode {config.reencode.label}",
            progress=progress,
        )
    reference = None
    if needs_reference(config.runtime, plan):
        fp32 = replace(config, runtime=replace(config.runtime, backend="torch", precision="fp32"))
        reference = score_pass(detector, sampled.found, discovery.suite, plan=plan_for(fp32.runtime, device, detector), config=fp32,
                               stage=REFERENCE_ENGINE, progress=progress)  # fmt: skip
    notes = list(sampled.notes) + pass_notes(clean)
    return BenchResult(discovery.suite, sampled, DetectorInfo.of(detector, origin), config, clean, reencoded, notes,
                       plan.engine, reference)  # fmt: skip
