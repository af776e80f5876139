"""The score histogram of a scan, laid out in Python as SVG geometry so the page needs no charting code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass(frozen=True)
class Bar:
    """One bin: its place on the drawing, its score range and count, and its zone (real, mid, ai or plain)."""

    x: float
    y: float
    width: float
    height: float
    low: float
    high: float
    count: int
    zone: str


@dataclass(frozen=True)
class Marker:
    """A vertical line at a score: the threshold, or an edge of the inconclusive band."""

    x: float
    score: float
    kind: str


@dataclass(frozen=True)
class Histogram:
    """Everything the template draws; coordinates are in the SVG's own units."""

    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    bars: list[Bar]
    markers: list[Marker] = field(default_factory=list)
    band: tuple[float, float] | None = None
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_max: int = 0
    scored: int = 0
    outside: int = 0


def _zone(centre: float, threshold: float | None, bands: tuple[float, float] | None) -> str:
    if bands is not None:
        return "real" if centre < bands[0] else "ai" if centre > bands[1] else "mid"
    if threshold is not None:
        return "ai" if centre > threshold else "real"
    return "plain"


def score_histogram(
    scores: Iterable[float],
    *,
    threshold: float | None = None,
    bands: tuple[float, float] | None = None,
    bins: int = 40,
    width: int = 720,
    height: int = 200,
) -> Histogram:
    """Bin scores over [0, 1] (scores outside are counted in the end bins and in ``outside``).

    Args:
        scores: the finite scores of the scored files.
        threshold: the verdict threshold, drawn as a line.
        bands: (low, high) of the inconclusive band, shaded; bars are coloured by zone.
        bins: equal-width bins; a score on an inner edge belongs to the bin above it.
        width, height: the drawing's size.
    """
    if bins < 1:
        raise ConfigError(f"a histogram needs at least one bin, got {bins}")
    counts = [0] * bins
    outside = 0
    for score in scores:
        if not 0.0 <= score <= 1.0:
            outside += 1
        counts[min(bins - 1, max(0, int(score * bins)))] += 1
    left, top, right, bottom = 44.0, 12.0, width - 12.0, height - 30.0
    span = right - left
    y_max = max(counts)
    step = span / bins
    bars = []
    for index, count in enumerate(counts):
        low, high = index / bins, (index + 1) / bins
        bar_height = (bottom - top) * count / y_max if y_max else 0.0
        zone = _zone((low + high) / 2, threshold, bands)
        bars.append(Bar(round(left + index * step, 2), round(bottom - bar_height, 2), round(step, 2), round(bar_height, 2),
                        low, high, count, zone))  # fmt: skip

    def x_of(score: float) -> float:
        return round(left + span * min(1.0, max(0.0, score)), 2)

    markers = [Marker(x_of(s), s, kind) for s, kind in ((threshold, "threshold"),) if s is not None]
    band = None
    if bands is not None:
        band = (x_of(bands[0]), x_of(bands[1]))
        markers += [Marker(x_of(bands[0]), bands[0], "band"), Marker(x_of(bands[1]), bands[1], "band")]
    ticks = [(x_of(t / 4), f"{t / 4:g}") for t in range(5)]
    return Histogram(width, height, left, top, right, bottom, bars, markers, band, ticks, y_max, sum(counts), outside)
