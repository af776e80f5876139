"""The detector file format: one safetensors file holding tensors plus a JSON metadata entry.

Tensors are the head and the MoLE bypasses; the frozen backbone is added only when it cannot be
fetched again (a random or custom-config backbone). Nothing is ever unpickled on load. Building a
detector from the contents is ``factory``'s job; this module only reads and writes the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError
from ..outputs import write_output
from .fingerprint import open_checkpoint

CHECKPOINT_FORMAT = "aigdetect.detector"
CHECKPOINT_VERSION = 1
METADATA_KEY = "aigdetect"
BACKBONE_PREFIX = "backbone."
TRAIN_STATE_PREFIX = "train_state."
DETECTOR_PREFIXES = ("adapters.", "head.")
def write_checkpoint(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write tensors (moved to the CPU, contiguous) and metadata atomically."""
    plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {METADATA_KEY: json.dumps({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **metadata})}
    write_output(path, lambda tmp: save_file(plain, tmp, metadata=header))


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read tensors and metadata, turning every kind of damage into a ``CheckpointError``."""
    path = Path(path)
    open_checkpoint(path)[0].close()
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({str(exc).splitlines()[0]})") from None
    if METADATA_KEY not in header:
        raise CheckpointError(f"{path} is a safetensors file but not an aigdetect checkpoint (no '{METADATA_KEY}' metadata)")
    try:
        meta = json.loads(header[METADATA_KEY])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format') if isinstance(meta, dict) else meta!r}")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this aigdetect reads "
            f"({CHECKPOINT_VERSION}); upgrade aigdetect"
        )
    return tensors, meta


def check_detector_tensors(tensors: dict[str, torch.Tensor], origin: str) -> None:
    """Detector weights are floating point: an integer or boolean tensor would be cast silently.

    Raises:
        CheckpointError: naming the first tensor that is not.
    """
    for key, tensor in tensors.items():
        if key.startswith((*DETECTOR_PREFIXES, BACKBONE_PREFIX)) and not tensor.dtype.is_floating_point:
            raise CheckpointError(f"{origin}: tensor {key} is {str(tensor.dtype).removeprefix('torch.')}, not floating point")
