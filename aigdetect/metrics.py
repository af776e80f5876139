"""Detection metrics with exactly UnivFD's definitions (validate.py of UniversalFakeDetect).

Labels are 1 for fake and 0 for real; scores are probabilities of fake. An image counts as fake
when its score is strictly above the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score

from .errors import InputError


@dataclass(frozen=True)
class Accuracy:
    """Accuracy on reals, on fakes, over all images, and the mean of the first two."""

    real: float
    fake: float
    overall: float

    @property
    def balanced(self) -> float:
        return (self.real + self.fake) / 2


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise InputError(f"{labels.size} labels but {scores.size} scores")
    if not set(np.unique(labels)) <= {0, 1}:
        raise InputError("labels must be 0 (real) or 1 (fake)")
    return labels, scores


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """sklearn's average precision with fake as the positive class; NaN unless both classes exist."""
    labels, scores = _check(labels, scores)
    if labels.min() == labels.max():
        return float("nan")
    return float(average_precision_score(labels, scores))


def accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Accuracy:
    """UnivFD's calculate_acc: score > threshold is fake; a class with no images gives NaN."""
    labels, scores = _check(labels, scores)
    predicted = scores > threshold
    correct = predicted == (labels == 1)

    def mean(mask: np.ndarray) -> float:
        return float(correct[mask].mean()) if mask.any() else float("nan")

    return Accuracy(real=mean(labels == 0), fake=mean(labels == 1), overall=mean(np.ones_like(labels, bool)))


def oracle_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """UnivFD's find_best_threshold: the best single threshold chosen with the test labels.

    When the classes separate perfectly it returns the midpoint of the gap. Otherwise it tries each
    score t as a threshold (score >= t counts as fake, as in the reference) and keeps the last one,
    in input order, that reaches the highest accuracy.
    """
    labels, scores = _check(labels, scores)
    real, fake = scores[labels == 0], scores[labels == 1]
    if real.size and fake.size and real.max() <= fake.min():
        return float((real.max() + fake.min()) / 2)
    sorted_real, sorted_fake = np.sort(real), np.sort(fake)
    real_below = np.searchsorted(sorted_real, scores, side="left")
    fake_at_or_above = fake.size - np.searchsorted(sorted_fake, scores, side="left")
    acc = (real_below + fake_at_or_above) / scores.size
    best = np.flatnonzero(acc == acc.max())[-1]
    return float(scores[best])


def calibrate_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold that maximises balanced accuracy on validation data (score > t is fake).

    Candidates are midpoints between consecutive distinct scores, so the threshold does not sit on
    any validation score; ties keep the candidate closest to 0.5 for stability.
    """
    labels, scores = _check(labels, scores)
    if labels.min() == labels.max():
        raise InputError("threshold calibration needs both real and fake validation images")
    distinct = np.unique(scores)
    candidates = np.concatenate([[distinct[0] - 1e-6], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + 1e-6]])
    real, fake = np.sort(scores[labels == 0]), np.sort(scores[labels == 1])
    real_acc = np.searchsorted(real, candidates, side="right") / real.size
    fake_acc = 1 - np.searchsorted(fake, candidates, side="right") / fake.size
    balanced = (real_acc + fake_acc) / 2
    best = np.flatnonzero(np.isclose(balanced, balanced.max(), rtol=0, atol=1e-12))
    choice = best[np.argmin(np.abs(candidates[best] - 0.5))]
    return float(np.clip(candidates[choice], 0.0, 1.0))
