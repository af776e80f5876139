"""The one id of a detector, ``name@fingerprint``: scan rows carry it, a resumed scan keeps only rows
with the same id, and ``inspect``, ``export`` and the Python API report the same one.

A detector loaded from a checkpoint file is known by that file (``fingerprint.fingerprint``: a hash
of its bytes and of where its backbone's weights come from), which a scan can compute without torch
or the weights; ``load_detector`` records it on the detector. Only a detector that was never saved,
or whose weights may have changed since (one put in training mode), falls back to a hash of its
tensors. Nothing here imports torch, so a scan that only resumes or merges never loads it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .detector import Detector

_SAMPLES_PER_TENSOR = 4096

RANDOM_BACKBONE_MARK = "+random-backbone"
"""Appended to the name of a trained detector whose pretrained backbone was swapped for random weights."""


def random_backbone_warning(identity: str) -> str | None:
    """The warning every output of a random-backbone detector carries; None for any other detector."""
    name = identity.rpartition("@")[0] or identity
    if not name.endswith(RANDOM_BACKBONE_MARK):
        return None
    return (
        f"detector {identity} runs on a random backbone: its scores and verdicts mean nothing "
        "(for measuring cost only); give it its pretrained backbone weights to judge images"
    )


def _tensor_bytes(key: str, tensor: torch.Tensor) -> bytes:
    return f"{key}:{tuple(tensor.shape)}".encode() + tensor.detach().float().cpu().contiguous().numpy().tobytes()


def _tensor_id(detector: Detector) -> str:
    """12 hex digits of SHA-256 over the config, head and adapters, and a sample of the backbone
    (every k-th value of each tensor, at most 4096), so hashing ViT-L takes no time."""
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


def detector_id(detector: Detector) -> str:
    """``name@fingerprint``: the checkpoint file's id when the detector was loaded from one and has
    not been trained since, else a hash of its tensors."""
    return detector.file_identity or _tensor_id(detector)
