"""The one shape in which every long run (scan, bench, robustness, train, report) tells its caller
how far it got, so that one renderer in the command line can show any of them.

The library never prints: it calls the caller's ``ProgressCallback`` with a ``ProgressEvent``.
Counted work fills ``done``/``total``/``errors``; anything a stage reports besides (a training
step's loss, a scan's summary, a note to show) travels in ``detail``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """What a run reports: ``done`` of ``total`` units of the stage named ``stage``, ``errors`` among them.

    Attributes:
        stage: what is being reported (``scan``, a benchmark pass, a training event such as ``step``).
        done: units finished so far in this run (files, images, optimiser steps).
        total: units this run has to do; 0 when the stage counts nothing.
        errors: units among ``done`` that failed (files that could not be scored).
        detail: what the stage reports besides the counts, read-only.
    """

    stage: str
    done: int = 0
    total: int = 0
    errors: int = 0
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", MappingProxyType(dict(self.detail)))


ProgressCallback = Callable[[ProgressEvent], None]
