"""CPU inference engines behind one interface: torch eager (the reference), ONNX Runtime, OpenVINO.

Reduced precision moves scores, so it is never chosen for the user: it is asked for by name, it is
written into ``engine_id`` (which belongs beside every score), and ``compare_logits`` measures the
shift against the reference on the same pixels. A request that a runtime would silently downgrade
or emulate (bf16 on a CPU without bf16 units) is refused unless forced.

Models for ONNX Runtime and OpenVINO come from the engine cache (``engine_cache``): exported once per
detector, runtime and precision, and checked by hash and seal every time they are opened. An entry
the runtime cannot load is rebuilt once, with a note through the ``aigdetect`` logger (which the
CLI shows on stderr), before the failure is let through.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.preprocess import PreprocessConfig
from ..errors import AigdetectError, ConfigError
from .engine_cache import EntryKey, cached_entry
from .export import DEFAULT_OPSET, MIN_OPSET, write_onnx_graph
from .runtime import BACKENDS, WHY_NOT

if TYPE_CHECKING:
    from ..models.detector import Detector

_log = logging.getLogger(__name__)

ENGINE_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
SUPPORTED: dict[str, tuple[str, ...]] = {"torch": ("fp32",), "onnxruntime": ("fp32", "int8"), "openvino": ("fp32", "bf16")}
TORCH_EAGER_ONLY = "the torch runner is the eager reference and runs fp32 only"
_EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "onnxruntime": (("onnxruntime", "onnx", "onnxscript"), "onnx"),
    "openvino": (("openvino", "onnx", "onnxscript"), "openvino"),
}
MODEL_FILE = "model.onnx"
OPENVINO_FILES = ("model.xml", "model.bin")
INT8_OP_TYPES = ["MatMul"]
"""Only the matrix products with constant weights go int8 (ONNX Runtime's dynamic quantization
skips activation x activation products by default). Not the patch-embedding convolution: with it
quantized too (ONNX Runtime's ConvInteger kernel), ViT-B/32 int8 ran about a quarter slower in our
measurements, for the same score shift."""


@dataclass(frozen=True)
class EngineConfig:
    """Which engine scores, at which precision, on how many threads.

    Attributes:
        backend: ``torch`` (eager, the reference), ``onnxruntime`` or ``openvino``.
        precision: ``fp32``; or, opt-in, ``int8`` (onnxruntime) or ``bf16`` (openvino).
        threads: intra-op threads; None lets the runtime use every core. A scan gives the
            engine the cores its decode workers leave free.
        force_bf16: run bf16 even where the CPU has no bf16 units (OpenVINO then emulates it,
            far slower than fp32); for measuring only.
        opset: ONNX opset of the exported graph.
    """

    backend: str = "torch"
    precision: str = "fp32"
    threads: int | None = None
    force_bf16: bool = False
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.precision not in ENGINE_PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(ENGINE_PRECISIONS)}, got {self.precision!r}")
        if self.precision not in SUPPORTED[self.backend]:
            raise ConfigError(f"{self.backend} cannot run {self.precision}: {TORCH_EAGER_ONLY if self.backend == 'torch' else WHY_NOT[(self.backend, self.precision)]}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.opset < MIN_OPSET:
            raise ConfigError(f"opset must be >= {MIN_OPSET}, got {self.opset}")


def require(backend: str) -> dict[str, Any]:
    """Import the packages an engine needs, or say in one line which extra installs them.

    Raises:
        ConfigError: a package is missing.
    """
    modules, extra = _EXTRAS[backend]
    loaded = {}
    for name in modules:
        try:
            loaded[name] = importlib.import_module(name)
        except ImportError:
            raise ConfigError(f"the {backend} backend needs the {name} package: pip install 'aigdetect[{extra}]'") from None
    return loaded


class Runner(ABC):
    """Normalised float32 pixels (B, 3, S, S) in, logits (B,) out, on one engine and precision."""

    name: str
    precision: str
    version: str
    threads: int | None
    preprocess: PreprocessConfig
    """The preprocessing of the detector the model was made from; its size is the model's input size."""

    @property
    def image_size(self) -> int:
        return self.preprocess.size

    @property
    def engine_id(self) -> str:
        """``name-version-precision``, e.g. ``onnxruntime-1.32.0-int8``: what produced a score."""
        return f"{self.name}-{self.version}-{self.precision}"

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Logits for a batch of normalised pixels (as ``normalize_pixels`` makes them).

        Raises:
            ConfigError: the array is not float32 of shape (B, 3, S, S) for this model's S.
        """
        size = self.image_size
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.float32 or pixels.shape[1:] != (3, size, size):
            shape = getattr(pixels, "shape", None)
            dtype = getattr(pixels, "dtype", type(pixels).__name__)
            raise ConfigError(f"pixels must be a float32 array of shape (B, 3, {size}, {size}), got {dtype} {shape}")
        if not len(pixels):
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._logits(np.ascontiguousarray(pixels)), dtype=np.float32).reshape(len(pixels))

    @abstractmethod
    def _logits(self, pixels: np.ndarray) -> np.ndarray: ...


class TorchRunner(Runner):
    """The detector itself in eager mode, fp32: every other engine is measured against it."""

    name = "torch"

    def __init__(self, detector: Detector, *, threads: int | None = None) -> None:
        import torch

        self.detector = detector.eval()
        self.precision = "fp32"
        self.version = torch.__version__
        self.threads = threads
        self.preprocess = detector.preprocess

    def _logits(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                batch = torch.from_numpy(pixels).to(self.detector.device)
                return self.detector(batch).logits.float().cpu().numpy()
        finally:
            torch.set_num_threads(before)


class OnnxRuntimeRunner(Runner):
    """An ONNX model on ONNX Runtime's CPU provider; ``precision`` names what the model holds."""

    name = "onnxruntime"

    def __init__(self, model_path: str | os.PathLike[str], *, precision: str, preprocess: PreprocessConfig,
                 threads: int | None = None) -> None:  # fmt: skip
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(os.fspath(model_path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.precision = precision
        self.version = ort.__version__
        self.threads = threads
        self.preprocess = preprocess

    def _logits(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: pixels})[0]


class OpenVinoRunner(Runner):
    """An OpenVINO model compiled for the CPU at the requested inference precision.

    The precision the compiled model reports is checked against the request, so a runtime that
    quietly picks another one is caught here rather than in the scores.
    """

    name = "openvino"

    def __init__(self, model_xml: str | os.PathLike[str], *, precision: str, preprocess: PreprocessConfig,
                 threads: int | None = None) -> None:  # fmt: skip
        import openvino as ov

        wanted = {"fp32": ov.Type.f32, "bf16": ov.Type.bf16}[precision]
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": wanted, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(os.fspath(model_xml)), "CPU", config)
        actual = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        if actual != wanted:
            raise ConfigError(f"OpenVINO compiled the model for {actual}, not the {precision} asked for")
        self.request = self.compiled.create_infer_request()
        self.precision = precision
        self.version = ov.__version__.split("-")[0]
        self.threads = threads
        self.preprocess = preprocess

    def _logits(self, pixels: np.ndarray) -> np.ndarray:
        return self.request.infer({0: pixels})[self.compiled.output(0)].copy()


def cpu_has_bf16() -> bool:
    """Whether OpenVINO finds bf16 units on this CPU (AVX512-BF16 or AMX); without them it emulates bf16."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def detector_sha256(detector: Detector) -> str:
    """The full SHA-256 of what an exported graph holds: the detector's configs and every value of
    every tensor. ``detector_id`` samples the backbone, which names a detector in a row but could
    not key a cache of graphs that embed all of it."""
    import torch

    config = {"backbone": detector.source.to_dict(), "mole": detector.mole.to_dict()}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(detector.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}:".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice through the root logger, which configures stderr
    logging for the whole process when nothing else has; a no-op handler keeps that from happening."""
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    handler = logging.NullHandler()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def onnx_model(
    detector: Detector, *, opset: int = DEFAULT_OPSET, cache_dir: str | os.PathLike[str] | None = None, rebuild: bool = False
) -> Path:
    """The detector's fp32 ONNX graph, from the cache or exported into it (anew with ``rebuild``)."""
    import torch

    key = EntryKey(detector_sha256(detector), "onnx", "fp32", f"torch-{torch.__version__}+opset{opset}")
    folder = cached_entry(
        key, (MODEL_FILE,), lambda out: write_onnx_graph(detector, out / MODEL_FILE, opset=opset), cache_dir=cache_dir, rebuild=rebuild
    )
    return folder / MODEL_FILE


def int8_model(
    detector: Detector, *, opset: int = DEFAULT_OPSET, cache_dir: str | os.PathLike[str] | None = None, rebuild: bool = False
) -> Path:
    """ONNX Runtime's dynamic int8 quantization of the fp32 graph (weights int8 ahead of time,
    activations per batch at run time: no calibration data), from the cache or built into it."""
    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = onnx_model(detector, opset=opset, cache_dir=cache_dir, rebuild=rebuild)

    def build(out: Path) -> None:
        with _quiet_root_logger():
            quantize_dynamic(source, out / MODEL_FILE, op_types_to_quantize=INT8_OP_TYPES, weight_type=QuantType.QInt8)

    runtime = f"onnxruntime-{onnxruntime.__version__}+torch-{torch.__version__}+opset{opset}"
    key = EntryKey(detector_sha256(detector), "onnxruntime", "int8", runtime)
    return cached_entry(key, (MODEL_FILE,), build, cache_dir=cache_dir, rebuild=rebuild) / MODEL_FILE


def openvino_model(
    detector: Detector, *, opset: int = DEFAULT_OPSET, cache_dir: str | os.PathLike[str] | None = None, rebuild: bool = False
) -> Path:
    """The fp32 graph in OpenVINO's own format (weights kept fp32), from the cache or converted into it.

    One model serves fp32 and bf16: bf16 is a compile-time hint, not a property of the file.
    """
    import openvino as ov
    import torch

    source = onnx_model(detector, opset=opset, cache_dir=cache_dir, rebuild=rebuild)

    def build(out: Path) -> None:
        ov.save_model(ov.convert_model(os.fspath(source)), os.fspath(out / OPENVINO_FILES[0]), compress_to_fp16=False)

    runtime = f"openvino-{ov.__version__}+torch-{torch.__version__}+opset{opset}"
    key = EntryKey(detector_sha256(detector), "openvino", "fp32", runtime)
    return cached_entry(key, OPENVINO_FILES, build, cache_dir=cache_dir, rebuild=rebuild) / OPENVINO_FILES[0]


def open_runner(
    detector: Detector, config: EngineConfig | None = None, *, cache_dir: str | os.PathLike[str] | None = None
) -> Runner:
    """A runner for ``detector`` on the engine ``config`` names, exporting and caching as needed.

    Args:
        detector: a float32 detector.
        config: backend, precision, threads; torch eager fp32 when None.
        cache_dir: overrides the engine cache location (see ``engine_cache.cache_root``).

    Raises:
        ConfigError: the backend's packages are missing, or bf16 was asked for on a CPU without
            bf16 units and not forced.
        InputError: the engine cache cannot be written, or is not private to this user.
    """
    config = config or EngineConfig()
    if config.backend == "torch":
        return TorchRunner(detector, threads=config.threads)
    require(config.backend)
    if config.backend == "openvino" and config.precision == "bf16" and not config.force_bf16 and not cpu_has_bf16():
        raise ConfigError(
            "this CPU has no bf16 units (no AVX512-BF16 or AMX), so OpenVINO would emulate bf16, many times "
            "slower than fp32; use fp32, or force bf16 to measure it anyway"
        )
    try:
        return _cached_runner(detector, config, cache_dir, rebuild=False)
    except AigdetectError:
        raise
    except Exception as exc:  # each runtime raises its own types: ONNX Runtime's InvalidProtobuf, OpenVINO's RuntimeError
        cause = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        _log.warning("note: the cached %s engine could not be loaded (%s); rebuilding it", config.backend, cause)
    return _cached_runner(detector, config, cache_dir, rebuild=True)


def _cached_runner(detector: Detector, config: EngineConfig, cache_dir: str | os.PathLike[str] | None, *, rebuild: bool) -> Runner:
    preprocess, threads = detector.preprocess, config.threads
    if config.backend == "onnxruntime":
        build = int8_model if config.precision == "int8" else onnx_model
        path = build(detector, opset=config.opset, cache_dir=cache_dir, rebuild=rebuild)
        return OnnxRuntimeRunner(path, precision=config.precision, preprocess=preprocess, threads=threads)
    path = openvino_model(detector, opset=config.opset, cache_dir=cache_dir, rebuild=rebuild)
    return OpenVinoRunner(path, precision=config.precision, preprocess=preprocess, threads=threads)


@dataclass(frozen=True)
class Shift:
    """How far an engine's outputs moved from the reference's on the same pixels.

    Attributes:
        max_logit: largest absolute logit difference.
        max_score: largest absolute difference of sigmoid(logit), the score users see.
        flips: how many verdicts changed at ``threshold``.
    """

    max_logit: float
    max_score: float
    flips: int


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probability of AI-generated, in the tanh form that neither overflows nor warns at any logit."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))


def compare_logits(reference: np.ndarray, candidate: np.ndarray, threshold: float = 0.5) -> Shift:
    """Measure a candidate engine's logits against the reference engine's for the same images."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        raise ConfigError(f"cannot compare logits of shapes {reference.shape} and {candidate.shape}")
    if not reference.size:
        return Shift(0.0, 0.0, 0)
    ref_scores, cand_scores = sigmoid(reference), sigmoid(candidate)
    return Shift(
        max_logit=float(np.max(np.abs(candidate - reference))),
        max_score=float(np.max(np.abs(cand_scores - ref_scores))),
        flips=int(np.sum((ref_scores > threshold) != (cand_scores > threshold))),
    )
