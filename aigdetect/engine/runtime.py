"""The runtime settings of a command (device, batch size, decode workers, precision) and the arithmetic of their defaults.

Plain data and arithmetic on the core count, so that ``-h`` shows the real defaults without torch; ``plan.RuntimePlan``
resolves them for one run.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field

from ..errors import ConfigError

CUDA_BATCH_SIZE = 128
CPU_BATCH_SIZE = 32
SMALL_MODEL_PARAMETERS = 5_000_000
"""Below this, a model is decode-bound on the CPU: decoding, not the forward pass, sets the pace."""
CPU_STREAMS = 2
"""Batches a compute-bound model computes at once on the CPU (``cpu_compute``)."""
CORES_PER_WORKER = 4
"""A compute-bound CPU run gets one decode worker per this many cores (``default_workers``)."""
MAX_WORKERS = 64
"""Default decode workers grow with the cores up to this; a GPU scan of small images needs about one
core per 400 images/s, and each worker holds its own copy of the decoder libraries."""
MAX_BATCH_SIZE = 65536
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("auto", "fp32", "fp16"),
    "onnxruntime": ("auto", "fp32", "int8"),
    "openvino": ("auto", "fp32", "bf16"),
}
"""What each backend runs; ``auto`` is fp16 for torch on CUDA and fp32 everywhere else."""
BF16_REFUSED = (
    "`precision` bf16 is refused for torch: its 8-bit mantissa merges adjacent pixel levels after CLIP normalisation "
    "(spacing 2^-6 near 2..4), while fp16 keeps them far apart; use fp16 or fp32 (or, opt-in on a CPU, `backend` openvino)"
)
_CPU_ENGINE_FP16 = "the CPU engines run fp32, int8 (onnxruntime) or bf16 (openvino); fp16 is for `backend` torch on CUDA"
WHY_NOT: dict[tuple[str, str], str] = {
    ("torch", "bf16"): BF16_REFUSED,
    ("torch", "int8"): "the torch backend has no int8 path; for int8 use `backend` onnxruntime",
    ("onnxruntime", "bf16"): "ONNX Runtime has no bf16 path on the CPU; for bf16 use `backend` openvino",
    ("onnxruntime", "fp16"): _CPU_ENGINE_FP16,
    ("openvino", "fp16"): _CPU_ENGINE_FP16,
    ("openvino", "int8"): (
        "OpenVINO int8 needs NNCF post-training quantization, which aigdetect does not depend on "
        "(OpenVINO runs ONNX Runtime's int8 graph slower than its own fp32); for int8 use `backend` onnxruntime"
    ),
}


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_batch_size(device_type: str) -> int:
    """Images per forward pass; on the CPU, per compute stream (``cpu_compute``)."""
    return CUDA_BATCH_SIZE if device_type == "cuda" else CPU_BATCH_SIZE


def compute_bound(parameters: int | None) -> bool:
    """Whether the forward pass, not decoding, sets a CPU scan's pace (unknown sizes count as large)."""
    return parameters is None or parameters >= SMALL_MODEL_PARAMETERS


def default_workers(device_type: str, parameters: int | None = None, cores: int | None = None) -> int:
    """Decode workers: one per core beside an accelerator. On the CPU, a decode-bound model gets half
    the cores (at least two, so that decoding overlaps the forward pass even on small machines); a
    compute-bound one (``parameters`` at or above ``SMALL_MODEL_PARAMETERS``, or unknown) one per
    ``CORES_PER_WORKER`` cores, at least one, since its workers decode far faster than it scores and
    would otherwise take cores from the forward pass. ``cores`` defaults to ``available_cores``."""
    cores = cores or available_cores()
    if device_type != "cpu":
        return min(cores, MAX_WORKERS)
    if parameters is not None and compute_bound(parameters):
        return min(max(1, cores // CORES_PER_WORKER), MAX_WORKERS)
    return min(max(2, cores // 2), MAX_WORKERS)


@dataclass(frozen=True)
class CpuCompute:
    """How the forward pass of a CPU run uses the cores: ``streams`` batches at once, each in its own
    thread with ``threads`` intra-op threads."""

    streams: int
    threads: int


def cpu_compute(parameters: int | None, workers: int, cores: int | None = None) -> CpuCompute:
    """The compute split beside ``workers`` decode processes on ``cores`` (default: ``available_cores``).

    A decode-bound model gets one stream on the cores its workers leave free: more intra-op threads
    than free cores spin against the workers (on 2 cores that made a scan seven times slower). A
    compute-bound model gets ``CPU_STREAMS`` streams sharing every core, and single-threaded streams
    never spin while a worker decodes: with one decode worker and decoding ahead of the model, whole
    ViT-B/32 scans on 2 cores went from 1.0 to 0.8 times the wall time of a plain loop
    (benchmarks/RESULTS.md).
    """
    cores = cores or available_cores()
    if not compute_bound(parameters):
        return CpuCompute(streams=1, threads=max(1, cores - workers) if workers > 0 else cores)
    streams = min(CPU_STREAMS, cores)
    return CpuCompute(streams=streams, threads=max(1, cores // streams))


def known_device_type(device: str) -> str | None:
    """The device type ``device`` resolves to, when that is certain without importing torch: an
    explicit device, or ``auto`` on Linux without the NVIDIA driver (the CPU); None otherwise."""
    if device != "auto":
        return device.split(":")[0]
    return "cpu" if sys.platform.startswith("linux") and cuda_ruled_out() else None


def resolve_precision(precision: str, device_type: str) -> str:
    """``auto`` is fp16 on CUDA only (the CPU and MPS gain nothing from fp16 matmuls), fp32 elsewhere."""
    if precision == "auto":
        return "fp16" if device_type == "cuda" else "fp32"
    return precision


def cuda_ruled_out() -> bool:
    """Whether this machine certainly has no CUDA device (macOS, or Linux without the NVIDIA
    driver loaded), so that ``auto`` resolves without importing torch."""
    if sys.platform == "darwin":
        return True
    return sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class RuntimeConfig:
    """Device, engine, batching, decode workers and precision of one run; None and auto pick the device's default."""

    device: str = field(default="auto", metadata={"help": "auto (CUDA, then Apple MPS, then the CPU), cuda, cuda:N, mps or cpu."})
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": f"Images per forward pass (default: {CUDA_BATCH_SIZE} on CUDA, {CPU_BATCH_SIZE} otherwise; on the CPU a "
            f"CLIP-sized model computes {CPU_STREAMS} batches side by side)."
        },
    )
    workers: int | None = field(
        default=None,
        metadata={
            "help": f"Decode worker processes (default on the CPU: one per {CORES_PER_WORKER} available cores for a "
            f"CLIP-sized model, at least 1; half the cores, at least 2, for a small one; one per core beside a GPU; at most "
            f"{MAX_WORKERS}). 0 decodes in the main process, where a crashing decoder ends the run."
        },
    )
    backend: str = field(
        default="torch",
        metadata={
            "help": "torch, or, on the CPU, onnxruntime or openvino (extras aigdetect[onnx], aigdetect[openvino]): "
            "the detector is exported once and cached. Their fp32 matches torch within 1e-5."
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto (fp16 for torch on CUDA, fp32 elsewhere), fp32, fp16 (torch), int8 (onnxruntime) or bf16 "
            "(openvino). fp16 keeps scores within 2e-3 of fp32; int8 and bf16 move them further (README: CPU engines), "
            "and every row names the engine that scored it."
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
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown `backend` {self.backend!r}; use {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown `precision` {self.precision!r}; use {', '.join(PRECISIONS)}")
        if self.precision not in BACKEND_PRECISIONS[self.backend]:
            raise ConfigError(WHY_NOT[(self.backend, self.precision)])
        if self.backend != "torch":
            if self.device not in ("auto", "cpu"):
                raise ConfigError(f"`backend` {self.backend} runs on the CPU; drop `device` {self.device} or use `backend` torch")
            for name in ("gpu_decode", "compile"):
                if getattr(self, name):
                    raise ConfigError(f"`{name}` is for `backend` torch, not {self.backend}")

    def batch_size_for(self, device_type: str) -> int:
        return self.batch_size or default_batch_size(device_type)

    def precision_for(self, device_type: str) -> str:
        return resolve_precision(self.precision, device_type)

    def engine_label(self) -> str:
        """``backend-precision`` as scoring will run it (``torch-fp16``, ``onnxruntime-int8``): what
        every row records. torch is imported only when ``auto`` may mean CUDA on this machine."""
        if self.backend != "torch" or self.precision != "auto":
            return f"{self.backend}-{resolve_precision(self.precision, 'cpu')}"
        if self.device != "auto":
            return f"torch-{resolve_precision('auto', self.device.split(':')[0])}"
        if cuda_ruled_out():
            return "torch-fp32"
        import torch

        return f"torch-{resolve_precision('auto', 'cuda' if torch.cuda.is_available() else 'cpu')}"

    def gpu_decode_for(self, device_type: str) -> bool:
        """GPU decoding needs a CUDA device; elsewhere the workers decode as usual."""
        return self.gpu_decode and device_type == "cuda"
