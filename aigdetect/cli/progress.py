"""How the command line renders the library's ``ProgressEvent``: bars, and plain progress lines for a
stderr that is not a terminal (a log file, a pipe, a batch job).

A bar redraws itself in place, which a log cannot show, so ``scan`` and ``train`` print one plain
line at most every ``PROGRESS_INTERVAL_S`` instead; this module decides when a line is due and what
rate and time left it reports, and each command words its own line.

The rate is that of the last ``RATE_WINDOW_S`` seconds, not the average since the start: a run
that spent its first minutes loading a model, or on a slow folder, would otherwise be promised
far more time than it has left.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ..progress import ProgressEvent

PROGRESS_INTERVAL_S = 30.0
"""How often a command whose stderr is not a terminal prints a plain progress line."""
RATE_WINDOW_S = 60.0
"""The recent stretch of a run whose pace the rate and the time left follow."""
STARTED_AT = time.perf_counter()
"""When the command line was imported: where the wall time a command reports starts."""


@dataclass(frozen=True)
class Pace:
    """What one plain line reports: units done per second lately, and the seconds left at that rate."""

    rate: float
    left_s: float

    @property
    def left_text(self) -> str:
        """Whole minutes, as a log reader wants them; "under a minute" rather than "about 0 min"."""
        if self.left_s == float("inf"):
            return "time left unknown (no progress lately)"
        return "under a minute left" if self.left_s < 30 else f"about {self.left_s / 60:.0f} min left"


class PlainProgress:
    """Says when a plain line is due (after ``interval_s`` without one, once some work is done), and
    the pace over the last ``window_s`` seconds.

    Every update is a sample of (time, units done); the rate runs from the last sample at or before
    the window's start to now. Until the first unit is done the start moves with each update, so
    loading a model does not count as slow work.

    Args:
        clock: monotonic seconds; tests pass a fake one.
        interval_s: seconds between lines; ``PROGRESS_INTERVAL_S`` when None (read when built).
        window_s: how far back the rate looks; ``RATE_WINDOW_S`` when None.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, interval_s: float | None = None, window_s: float | None = None
    ) -> None:
        self.clock = clock
        self.interval_s = PROGRESS_INTERVAL_S if interval_s is None else interval_s
        self.window_s = RATE_WINDOW_S if window_s is None else window_s
        self.last_line = clock()
        self.samples: deque[tuple[float, int]] = deque([(self.last_line, 0)])

    def _rate(self, now: float, done: int) -> float:
        if done <= 0:
            self.samples = deque([(now, 0)])
            return 0.0
        self.samples.append((now, done))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()
        since, before = self.samples[0]
        return (done - before) / max(now - since, 1e-9)

    def due(self, done: int, total: int) -> Pace | None:
        """The pace to print when a line is due for ``done`` of ``total`` units; None when not yet."""
        now = self.clock()
        rate = self._rate(now, done)
        if done <= 0 or now - self.last_line < self.interval_s:
            return None
        self.last_line = now
        left = max(total - done, 0)
        return Pace(rate, left / rate if rate > 0 else float("inf"))


class StageBars:
    """One transient bar per stage (a benchmark's passes, each named by its events' ``stage``), on ``console``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tasks: dict[str, Any] = {}
        self.bars: Any = None

    def __enter__(self) -> StageBars:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self.bars = Progress(*columns, console=self.console, transient=True)
        self.bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bars.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage not in self.tasks:
            self.tasks[event.stage] = self.bars.add_task(event.stage, total=event.total)
        self.bars.update(self.tasks[event.stage], completed=event.done)
