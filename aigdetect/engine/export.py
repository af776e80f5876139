"""Export a detector to ONNX, with a JSON sidecar that lets another program reproduce our scores.

The graph is traced by torch's ``torch.export``-based exporter (``dynamo=True``), not the
TorchScript one: the TorchScript exporter is deprecated, cannot translate the fused
multi-head-attention kernel that eval-mode ``nn.MultiheadAttention`` takes, and bakes every
Python value it meets into the graph without a word. ``torch.export`` tracks the batch axis as a
symbol and fails loudly on anything data-dependent instead. The detector runs in eval mode, where
it computes no auxiliary losses, so the graph holds only backbone, bypasses and head.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..evidence.fusion import DEFAULT_BAND_MARGIN, default_bands, validate_bands
from ..outputs import OutputError, is_special, write_output
from ..version import __version__
from .engine_cache import file_sha256

if TYPE_CHECKING:
    from ..data.preprocess import PreprocessConfig
    from ..models.detector import Detector

DEFAULT_OPSET = 18
"""The lowest opset torch's exporter writes natively; ONNX Runtime >= 1.14 and OpenVINO >= 2023.0 run it."""
MIN_OPSET = 18
INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"
SIDECAR_FORMAT = "aigdetect-onnx-sidecar/1"
ONNX_HINT = "pip install 'aigdetect[onnx]'"


@dataclass(frozen=True)
class ExportResult:
    """What ``export_onnx`` wrote.

    Attributes:
        model_path: the ONNX model.
        sidecar_path: the JSON sidecar, or None when none was asked for.
        detector_id: ``name@fingerprint`` of the exported detector.
        opset: the ONNX opset of the graph.
        sha256: SHA-256 of the model file.
        sidecar: the sidecar's content (also when it was not written).
    """

    model_path: Path
    sidecar_path: Path | None
    detector_id: str
    opset: int
    sha256: str
    sidecar: dict[str, Any]


def sidecar_path_for(model_path: str | os.PathLike[str]) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: the sidecar sits beside the model it describes."""
    path = Path(model_path)
    return path.with_name(path.name + ".json")


def _require_exporter() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"exporting to ONNX needs the onnx and onnxscript packages ({exc.name} is missing): {ONNX_HINT}") from None


def _check_opset(opset: int) -> None:
    if opset < MIN_OPSET:
        raise ConfigError(f"opset must be >= {MIN_OPSET} (the lowest torch's ONNX exporter writes), got {opset}")


def write_onnx_graph(detector: Detector, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET) -> None:
    """Write the detector's logits graph (float32 pixels with a dynamic batch axis in, logits out).

    The file is written in place, weights inside it (no external data file); ``export_onnx`` is
    the atomic, documented entry point, this is the step it shares with the engine cache.

    Raises:
        ConfigError: the onnx extra is missing, the opset is too low, or the detector is not float32.
    """
    _check_opset(opset)
    _require_exporter()
    import torch

    if any(p.dtype != torch.float32 for p in detector.parameters()):
        raise ConfigError("ONNX export needs a float32 detector; call detector.float() first")

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.detector = detector

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.detector(pixels).logits

    size = detector.image_size
    example = torch.zeros(2, 3, size, size, device=detector.device)
    was_training = detector.training
    detector.eval()
    try:
        program = torch.onnx.export(
            LogitsOnly().eval(),
            (example,),
            dynamo=True,
            verbose=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
        program.save(os.fspath(path), external_data=False)
    finally:
        detector.train(was_training)


def preprocessing_spec(config: PreprocessConfig) -> dict[str, Any]:
    """How an image becomes the model's input, in enough detail to reimplement it exactly."""
    return {
        "decode": (
            "RGB, 8 bits per channel; EXIF orientation not applied; alpha dropped, not composited; "
            "16-bit values v become round(v / 257); palette and CMYK images use Pillow's RGB conversion; "
            "animated images use their first frame"
        ),
        "crop": {
            "size": config.size,
            "mode": "center",
            "resize": config.resize_mode != "none",
            "pad_value": 0,
            "pad": "a side shorter than size is zero-padded to size: floor(d / 2) before, the rest after (d = size - side)",
            "offset": "after padding, top = round((height - size) / 2) and left = round((width - size) / 2), "
            "rounding halves to even",
        },
        "channel_order": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
        "scale": 255.0,
        "mean": list(config.mean),
        "std": list(config.std),
        "formula": "x = ((float32(pixel) / scale) - mean[channel]) / std[channel], each step in float32",
    }


def build_sidecar(
    detector: Detector,
    *,
    model_file: str,
    sha256: str,
    opset: int,
    threshold: float,
    bands: tuple[float, float],
) -> dict[str, Any]:
    """The sidecar's content: model, preprocessing, threshold, bands, detector id and versions."""
    import torch

    from ..models.identity import detector_id

    size = detector.image_size
    return {
        "format": SIDECAR_FORMAT,
        "aigdetect_version": __version__,
        "detector": detector_id(detector),
        "model": {
            "file": model_file,
            "sha256": sha256,
            "opset": opset,
            "exporter": f"torch.onnx.export (torch.export-based) from torch {torch.__version__}",
            "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", 3, size, size]},
            "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch"]},
        },
        "preprocessing": preprocessing_spec(detector.preprocess),
        "score": "sigmoid(logit), the probability that the image is AI-generated",
        "threshold": threshold,
        "verdict": "fake when score > threshold, else real",
        "bands": {
            "low": bands[0],
            "high": bands[1],
            "default": f"sigmoid(logit(threshold) -/+ {DEFAULT_BAND_MARGIN:g})",
        },
    }


def export_onnx(
    detector: Detector,
    out_path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    sidecar: bool = True,
    threshold: float | None = None,
    bands: tuple[float, float] | None = None,
) -> ExportResult:
    """Export a detector to ONNX and, beside it, the sidecar (``<out_path>.json``); both atomically.

    Args:
        detector: a float32 detector; it is left in the training mode it was in.
        out_path: the ONNX file to write.
        opset: ONNX opset of the graph (at least ``MIN_OPSET``).
        sidecar: also write the JSON sidecar.
        threshold: the verdict threshold to record; the detector's own when None.
        bands: (low, high) probabilities of the uncertain band; ``default_bands(threshold)`` when None.

    Raises:
        ConfigError: the onnx extra is missing, the opset is too low, the detector is not float32,
            or the threshold or bands are invalid.
        OutputError: ``out_path`` is a FIFO or device (its hash could not be read back).
    """
    _check_opset(opset)
    out_path = Path(out_path)
    if is_special(out_path):
        raise OutputError(f"`out` {out_path} is not a regular file; the graph is read back for its SHA-256")
    threshold = float(detector.threshold if threshold is None else threshold)
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ConfigError(f"`threshold` must be within [0, 1], got {threshold}")
    bands = validate_bands(threshold, default_bands(threshold) if bands is None else bands)
    write_output(out_path, lambda tmp: write_onnx_graph(detector, tmp, opset=opset))
    sha256 = file_sha256(out_path)
    content = build_sidecar(detector, model_file=out_path.name, sha256=sha256, opset=opset, threshold=threshold, bands=bands)
    written = None
    if sidecar:
        written = sidecar_path_for(out_path)
        text = json.dumps(content, indent=2, allow_nan=False) + "\n"
        write_output(written, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return ExportResult(
        model_path=out_path,
        sidecar_path=written,
        detector_id=content["detector"],
        opset=opset,
        sha256=sha256,
        sidecar=content,
    )
