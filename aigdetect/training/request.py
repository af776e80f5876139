"""One training run as a caller asks for it; ``aigdetect.jobs.train.run`` carries it out."""

from __future__ import annotations

from dataclasses import dataclass

from .config import TrainConfig


@dataclass(frozen=True)
class TrainRequest:
    """Train ``config``.

    Attributes:
        config: the run (data, recipe, detector, where it is written).
        overwrite: replace ``config.out`` when it is an earlier aigdetect checkpoint.
        command: the command line, recorded in the checkpoint's provenance and the log.
    """

    config: TrainConfig
    overwrite: bool = False
    command: str | None = None
