"""A short id that changes whenever a detector would give different scores: scan rows carry it, and a
resumed scan keeps only rows with the same id."""

from __future__ import annotations

import hashlib
import json

import torch

from .detector import Detector

_SAMPLES_PER_TENSOR = 4096


def _tensor_bytes(key: str, tensor: torch.Tensor) -> bytes:
    return f"{key}:{tuple(tensor.shape)}".encode() + tensor.detach().float().cpu().contiguous().numpy().tobytes()


def detector_id(detector: Detector) -> str:
    """``name@fingerprint``: 12 hex digits of SHA-256 over the config, head and adapters, and a sample
    of the backbone (every k-th value of each tensor, at most 4096), so hashing ViT-L takes no time."""
    digest = hashlib.sha256()
    config = {"backbone": detector.source.to_dict(), "mole": detector.mole.to_dict()}
    digest.update(json.dumps(config, sort_keys=True).encode())
    for key, tensor in sorted(detector.adapter_state_dict().items()):
        digest.update(_tensor_bytes(key, tensor))
    for key, tensor in sorted(detector.backbone_state_dict().items()):
        flat = tensor.reshape(-1)
        step = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
        digest.update(_tensor_bytes(key, flat[::step][:_SAMPLES_PER_TENSOR]))
    name = " ".join(detector.name.split()).encode("utf-8", "backslashreplace").decode("utf-8")
    return f"{name}@{digest.hexdigest()[:12]}"
