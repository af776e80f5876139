"""Where and how fast a command runs: device, batch size, decode workers and precision, with their defaults.

Plain data and arithmetic on the core count, so that ``-h`` shows the real defaults without torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import ConfigError

CUDA_BATCH_SIZE = 128
CPU_BATCH_SIZE = 32
MAX_WORKERS = 64
"""Default decode workers grow with the cores up to this; a GPU scan of small images needs about one
core per 400 images/s, and each worker holds its own copy of the decoder libraries."""
MAX_BATCH_SIZE = 65536
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
PRECISIONS: tuple[str, ...] = ("auto", "fp16", "fp32")
BF16_REFUSED = (
    "`precision` bf16 is refused: its 8-bit mantissa merges adjacent pixel levels after CLIP normalisation "
    "(spacing 2^-6 near 2..4), while fp16 keeps them far apart; use fp16 or fp32"
)


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


def resolve_precision(precision: str, device_type: str) -> str:
    """fp16 or fp32: ``auto`` is fp16 on CUDA only (the CPU and MPS gain nothing from fp16 matmuls)."""
    if precision == "auto":
        return "fp16" if device_type == "cuda" else "fp32"
    return precision


@dataclass(frozen=True)
class RuntimeConfig:
    """Device, batching, decode workers and precision of one run; None and auto pick the device's default."""

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
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto (fp16 on CUDA, fp32 elsewhere), fp16 or fp32. fp16 scores a half-precision copy of the "
            "detector (its head and sigmoid stay fp32); a test keeps its scores within 2e-3 of fp32."
        },
    )
    gpu_decode: bool = field(
        default=False,
        metadata={
            "help": "Decode baseline and progressive JPEGs on the GPU (nvJPEG), in batches; other files, and every file "
            "without CUDA, are decoded by the workers. Scores can differ slightly from the CPU decode (another IDCT and "
            "upsampling), and nvJPEG parses files in the scanning process, outside the workers' crash isolation."
        },
    )
    compile: bool = field(
        default=False,
        metadata={"help": "Compile the detector with torch.compile: tens of seconds more at the start, for faster batches on a GPU."},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"unknown `device` {self.device!r}; use auto, cuda, cuda:N, mps or cpu")
        if self.batch_size is not None and not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ConfigError(f"`batch_size` must be between 1 and {MAX_BATCH_SIZE}, got {self.batch_size}")
        if self.workers is not None and not 0 <= self.workers <= 4 * MAX_WORKERS:
            raise ConfigError(f"`workers` must be between 0 and {4 * MAX_WORKERS}, got {self.workers}")
        if self.precision == "bf16":
            raise ConfigError(BF16_REFUSED)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown `precision` {self.precision!r}; use {', '.join(PRECISIONS)}")

    def batch_size_for(self, device_type: str) -> int:
        return self.batch_size or default_batch_size(device_type)

    def workers_for(self, device_type: str) -> int:
        return default_workers(device_type) if self.workers is None else self.workers

    def precision_for(self, device_type: str) -> str:
        return resolve_precision(self.precision, device_type)

    def gpu_decode_for(self, device_type: str) -> bool:
        """GPU decoding needs a CUDA device; elsewhere the workers decode as usual."""
        return self.gpu_decode and device_type == "cuda"
