"""The runtime plan: every decision about where and how fast a run computes, made once.

A scan, a benchmark, a robustness sweep and a training run all need the same answers: the device,
the precision, the batch size, how many decode workers and how far they may run ahead, and how the
CPU's cores are split between decoding and the forward pass. ``RuntimePlan.resolve`` derives them
from a ``RuntimeConfig`` (whose ``None`` and ``auto`` mean "the default") and the model's size, so
that no caller re-derives one of them, and ``describe`` states them in one line for the log.

Plain data and arithmetic: nothing here imports torch until a context (``autocast``, ``threads``)
is entered, so a scan can plan and start its decode workers before the model is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

from .decoding import ahead_limit, decode_window
from .reading import ReadOptions
from .runtime import (
    CpuCompute,
    RuntimeConfig,
    compute_bound,
    cpu_compute,
    default_workers,
    known_device_type,
)

log = logging.getLogger("aigdetect.plan")


def known_device(device: str) -> str | None:
    """The device ``device`` names, when that is certain without importing torch (``known_device_type``)."""
    if device != "auto":
        return device
    return known_device_type(device)


def autocast(device_type: str, precision: str) -> AbstractContextManager[object]:
    """fp16 autocast where a run computes in fp16 on CUDA (training; scoring casts a copy of the model
    instead, ``infer.inference_copy``), nothing elsewhere. Never bf16: its 8-bit mantissa merges
    adjacent pixel levels after CLIP normalisation (``runtime.BF16_REFUSED``)."""
    if device_type != "cuda" or precision != "fp16":
        return nullcontext()
    import torch

    return torch.autocast("cuda", dtype=torch.float16)


@dataclass(frozen=True)
class RuntimePlan:
    """How one run computes, as ``resolve`` decides it from a ``RuntimeConfig`` and the model's size.

    Attributes:
        device: the concrete device (``cpu``, ``cuda``, ``cuda:1``, ``mps``), never ``auto``.
        backend: torch, or a CPU engine (onnxruntime, openvino).
        precision: the resolved precision (fp32, fp16, int8, bf16), never ``auto``.
        batch_size: images per forward pass (on the CPU, per compute stream).
        workers: decode worker processes; 0 decodes in the calling process.
        window: files handed to the workers but not yet taken, at most (``decode_window``).
        compute: the CPU compute streams of the torch backend (``cpu_compute``); None runs one batch
            at a time in the calling thread (an accelerator, a CPU engine, or ``compile``).
        threads: intra-op threads of a single-stream forward pass beside the decode workers (a
            decode-bound model on the CPU); None keeps every core.
        gpu_decode: plain JPEGs are decoded on the device (CUDA only).
        compile: the model runs through ``torch.compile``.
    """

    device: str
    backend: str
    precision: str
    batch_size: int
    workers: int
    window: int
    compute: CpuCompute | None
    threads: int | None
    gpu_decode: bool
    compile: bool

    @classmethod
    def resolve(
        cls, runtime: RuntimeConfig, device: str, parameters: int | None, *, ranks: int = 1, cores: int | None = None
    ) -> RuntimePlan:
        """The plan of ``runtime`` for a model of ``parameters`` on ``device``, logged once.

        Args:
            runtime: the run's settings; explicit values win over every default.
            device: the concrete device the run computes on (from ``known_device`` or torch).
            parameters: the model's parameter count (from the checkpoint's metadata before it is
                built); None when unknown.
            ranks: processes sharing this machine's cores (torchrun's local world size): each gets
                its share of the default decode workers, at least one.
            cores: the cores to plan for (default: ``available_cores``).
        """
        device_type = device.split(":")[0]
        batch_size = runtime.batch_size_for(device_type)
        if runtime.workers is not None:
            workers = runtime.workers
        else:
            workers = max(1, default_workers(device_type, parameters, cores) // max(1, ranks))
        on_cpu = device_type == "cpu"
        split = cpu_compute(parameters, workers, cores)
        plan = cls(
            device=device,
            backend=runtime.backend,
            precision=runtime.precision_for(device_type),
            batch_size=batch_size,
            workers=workers,
            window=decode_window(batch_size, workers),
            compute=split if on_cpu and runtime.backend == "torch" and not runtime.compile else None,
            threads=split.threads if on_cpu and workers > 0 and not compute_bound(parameters) else None,
            gpu_decode=runtime.gpu_decode_for(device_type),
            compile=runtime.compile,
        )
        log.info(plan.describe())
        return plan

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    @property
    def engine(self) -> str:
        """``backend-precision``, as every row records it."""
        return f"{self.backend}-{self.precision}"

    def ahead_limit(self, reading: ReadOptions) -> int:
        """Answers the decode workers may gather while the model loads (``decoding.ahead_limit``)."""
        return ahead_limit(reading, self.window)

    def describe(self) -> str:
        """The plan in one line, for the log and ``--verbose``."""
        workers = f"{self.workers} decode worker{'s' if self.workers != 1 else ''}" if self.workers else "decoding in-process"
        parts = [f"device {self.device}", f"engine {self.engine}", f"batch {self.batch_size}", workers,
                 f"window {self.window}"]  # fmt: skip
        if self.compute is not None:
            parts.append(f"{self.compute.streams} compute stream{'s' if self.compute.streams != 1 else ''} "
                         f"x {self.compute.threads} thread{'s' if self.compute.threads != 1 else ''}")  # fmt: skip
        if self.threads is not None:
            parts.append(f"{self.threads} intra-op thread{'s' if self.threads != 1 else ''}")
        if self.gpu_decode:
            parts.append("JPEGs decoded on the GPU")
        if self.compile:
            parts.append("torch.compile")
        return "runtime plan: " + ", ".join(parts)

    def autocast(self) -> AbstractContextManager[object]:
        """The training forward pass's autocast (``autocast``)."""
        return autocast(self.device_type, self.precision)

    @contextmanager
    def threads_beside_workers(self) -> Iterator[None]:
        """torch's intra-op threads set to ``threads`` (never above torch's own count) for the duration."""
        if self.threads is None:
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(min(before, self.threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)
