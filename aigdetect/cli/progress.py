"""Plain progress lines for a stderr that is not a terminal (a log file, a pipe, a batch job).

A bar redraws itself in place, which a log cannot show, so ``scan`` and ``train`` print one plain
line at most every ``PROGRESS_INTERVAL_S`` instead; this module decides when a line is due and what
rate and time left it reports, and each command words its own line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

PROGRESS_INTERVAL_S = 30.0
"""How often a command whose stderr is not a terminal prints a plain progress line."""


@dataclass(frozen=True)
class Pace:
    """What one plain line reports: units done per second since the start, and the seconds left at that rate."""

    rate: float
    left_s: float

    @property
    def left_text(self) -> str:
        """Whole minutes, as a log reader wants them; "under a minute" rather than "about 0 min"."""
        return "under a minute left" if self.left_s < 30 else f"about {self.left_s / 60:.0f} min left"


class PlainProgress:
    """Says when a plain line is due: after ``interval_s`` without one, once some work is done.

    Args:
        clock: monotonic seconds; tests pass a fake one.
        interval_s: seconds between lines; ``PROGRESS_INTERVAL_S`` when None (read when built).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, interval_s: float | None = None) -> None:
        self.clock = clock
        self.interval_s = PROGRESS_INTERVAL_S if interval_s is None else interval_s
        self.started = self.last_line = clock()

    def due(self, done: int, total: int) -> Pace | None:
        """The pace to print when a line is due for ``done`` of ``total`` units; None when not yet."""
        now = self.clock()
        if done <= 0 or now - self.last_line < self.interval_s:
            return None
        self.last_line = now
        rate = done / max(now - self.started, 1e-9)
        return Pace(rate, max(total - done, 0) / rate)
