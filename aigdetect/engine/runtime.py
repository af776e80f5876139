"""Where and how fast a command runs: device, batch size, decode workers and precision, with their defaults.

Plain data and arithmetic on the core count, so that ``-h`` shows the real defaults without torch.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field

from ..errors import ConfigError

CUDA_BATCH_SIZE = 128
CPU_BATCH_SIZE = 32
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
    return CUDA_BATCH_SIZE if device_type == "cuda" else CPU_BATCH_SIZE


def default_workers(device_type: str) -> int:
    """Decode workers: one per core beside an accelerator; on the CPU, half the cores (at least two,
    so decoding overlaps with the forward pass even on small machines) and the rest compute."""
    cores = available_cores()
    if device_type == "cpu":
        return min(max(2, cores // 2), MAX_WORKERS)
    return min(cores, MAX_WORKERS)


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
        metadata={"help": f"Images per forward pass (default: {CUDA_BATCH_SIZE} on CUDA, {CPU_BATCH_SIZE} otherwise)."},
    )
    workers: int | None = field(
        default=None,
        metadata={
            "help": f"Decode worker processes (default: half the available cores on the CPU, at least 2; one per core "
            f"beside a GPU; at most {MAX_WORKERS}). 0 decodes in the main process, where a crashing decoder ends the run."
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

    def workers_for(self, device_type: str) -> int:
        return default_workers(device_type) if self.workers is None else self.workers

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
