"""Where and how fast a command runs: device, batch size and decode workers, with their defaults.

Plain data and arithmetic on the core count, so that ``-h`` shows the real defaults without torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import ConfigError

CUDA_BATCH_SIZE = 128
CPU_BATCH_SIZE = 32
MAX_WORKERS = 16
MAX_BATCH_SIZE = 65536
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_batch_size(device_type: str) -> int:
    return CUDA_BATCH_SIZE if device_type == "cuda" else CPU_BATCH_SIZE


def default_workers(device_type: str) -> int:
    """Decode workers: one per core beside an accelerator; on the CPU, half the cores (at least two,
    so decoding overlaps with the forward pass even on small machines) and the rest compute."""
    cores = available_cores()
    if device_type == "cpu":
        return min(max(2, cores // 2), MAX_WORKERS)
    return min(cores, MAX_WORKERS)


@dataclass(frozen=True)
class RuntimeConfig:
    """Device, batching and decode workers of one run; None picks the device's default."""

    device: str = field(default="auto", metadata={"help": "auto (CUDA, then Apple MPS, then the CPU), cuda, cuda:N, mps or cpu."})
    batch_size: int | None = field(
        default=None,
        metadata={"help": f"Images per forward pass (default: {CUDA_BATCH_SIZE} on CUDA, {CPU_BATCH_SIZE} otherwise)."},
    )
    workers: int | None = field(
        default=None,
        metadata={
            "help": f"Decode worker processes (default: half the available cores on the CPU, at least 2; one per core "
            f"beside a GPU; at most {MAX_WORKERS}). 0 decodes in the main process, where a crashing decoder ends the run."
        },
    )

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"unknown `device` {self.device!r}; use auto, cuda, cuda:N, mps or cpu")
        if self.batch_size is not None and not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ConfigError(f"`batch_size` must be between 1 and {MAX_BATCH_SIZE}, got {self.batch_size}")
        if self.workers is not None and not 0 <= self.workers <= 4 * MAX_WORKERS:
            raise ConfigError(f"`workers` must be between 0 and {4 * MAX_WORKERS}, got {self.workers}")

    def batch_size_for(self, device_type: str) -> int:
        return self.batch_size or default_batch_size(device_type)

    def workers_for(self, device_type: str) -> int:
        return default_workers(device_type) if self.workers is None else self.workers
