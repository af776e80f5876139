"""A checkpoint's detector id read from its file, without torch and without building the model.

``name@fingerprint``: 12 hex digits of SHA-256 over the checkpoint's bytes and where its backbone's
weights come from (the registry's OpenAI release, a weights file's own SHA-256, or random). A scan
writes it in every row, and ``resume`` and ``merge`` compare it, so a finished resume or a merge
never needs torch or the 0.9 GB of ViT-L/14 weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import CheckpointError, InputFileError
from ..fileio import open_input
from .choice import DetectorChoice, resolve_choice
from .identity import RANDOM_BACKBONE_MARK
from .metadata import check_detector_metadata
from .zoo import BACKBONES, RANDOM_WEIGHTS

MAX_HEADER_BYTES = 100 << 20
"""A safetensors header larger than this (its JSON lists tensors, not their data) is refused."""
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a detector's scores: its id, and its calibrated threshold; with what the
    metadata says of the model's size (None where it is silent or malformed), so that a scan can
    plan its decoding before the model is built."""

    identity: str
    threshold: float
    image_size: int | None = None
    parameters: int | None = None


MAX_VISION_SIZE = 1 << 16
"""Sizes in a vision config above this are not believed (the model's own checks bound them far lower)."""


def _sizes(meta: dict[str, Any]) -> tuple[int | None, int | None]:
    """The input size and the approximate parameter count of the vision tower the metadata
    describes (open_clip's defaults where it is silent): patch embedding, positions, and per layer
    the attention's four and the MLP's two projections."""
    backbone = meta.get("backbone")
    config = backbone.get("config") if isinstance(backbone, dict) else None
    vision = config.get("vision_cfg") if isinstance(config, dict) else None
    if not isinstance(vision, dict):
        preprocess = meta.get("preprocess")
        size = preprocess.get("size") if isinstance(preprocess, dict) else None
        return (size, None) if isinstance(size, int) and not isinstance(size, bool) and 0 < size <= MAX_VISION_SIZE else (None, None)
    size = vision.get("image_size", 224)
    if isinstance(size, list) and len(size) == 2:
        size = size[0]
    width, layers, patch = vision.get("width", 768), vision.get("layers", 12), vision.get("patch_size", 16)
    ratio = vision.get("mlp_ratio", 4.0)
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_VISION_SIZE for v in (size, width, layers, patch)):
        return None, None
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio <= 64:
        return None, None
    tokens = (size // patch) ** 2 + 1
    per_layer = 4 * width * width + 2 * width * int(width * ratio)
    return size, layers * per_layer + (3 * patch * patch + tokens) * width


def open_checkpoint(path: str | os.PathLike[str]) -> tuple[BinaryIO, os.stat_result]:
    """Open a checkpoint file as any input (no FIFO, no device), with a checkpoint's error.

    Raises:
        CheckpointError: there is no such file, or it cannot be read.
    """
    try:
        return open_input(path, follow_symlinks=True)
    except InputFileError as exc:
        if exc.reason == "missing":
            raise CheckpointError(f"checkpoint {os.fsdecode(path)}: no such file") from None
        raise CheckpointError(f"{os.fsdecode(path)} cannot be read as a checkpoint: {exc.detail}") from None


def file_digest(path: str | os.PathLike[str]) -> hashlib._Hash:
    """SHA-256 of a file read in chunks, opened like any input (never a FIFO or a device)."""
    digest = hashlib.sha256()
    handle, _ = open_input(path, follow_symlinks=True)
    with handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest


def read_metadata(path: str) -> dict[str, Any]:
    """The aigdetect metadata of a checkpoint, from its safetensors header alone.

    Raises:
        CheckpointError: the file is not a readable aigdetect checkpoint.
    """
    handle, info = open_checkpoint(path)
    try:
        with handle:
            head = handle.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path} is not a readable safetensors checkpoint (too short)")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER_BYTES, info.st_size - 8):
                raise CheckpointError(f"{path} is not a readable safetensors checkpoint (header of {length} bytes)")
            raw = handle.read(length)
            if len(raw) != length:
                raise CheckpointError(f"{path} is not a readable safetensors checkpoint (truncated header)")
            header = json.loads(raw.decode("utf-8"))
        meta = json.loads(header["__metadata__"]["aigdetect"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not an aigdetect checkpoint ({type(exc).__name__})") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is not an object")
    return meta


def _backbone_source(meta: dict[str, Any], choice: DetectorChoice) -> str:
    weights = choice.backbone_weights
    embedded = bool(meta.get("backbone_embedded"))
    if weights is not None and weights != RANDOM_WEIGHTS:
        return "file:" + file_digest(weights).hexdigest()
    if embedded:
        return "embedded"
    if weights == RANDOM_WEIGHTS:
        return "random"
    name = meta.get("backbone", {}).get("name") if isinstance(meta.get("backbone"), dict) else None
    spec = BACKBONES.find(name) if isinstance(name, str) else None
    if spec is not None:
        return f"{spec.pretrained_tag}:{spec.pretrained_model}"
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"the checkpoint names no known backbone ({name!r})")
    digest = meta["backbone"].get("weights_sha256")
    return f"{name}:{digest}" if isinstance(digest, str) else name


def fingerprint(choice: DetectorChoice) -> Fingerprint:
    """The id, threshold and sizes of the detector ``choice`` names, read from files only.

    Raises:
        CheckpointError: the checkpoint cannot be read or its metadata is refused (``check_detector_metadata``).
        ConfigError: ``model`` names no built-in detector.
    """
    path = os.fsdecode(resolve_choice(choice))
    meta = read_metadata(path)
    check_detector_metadata(meta, path)
    threshold = meta.get("threshold", 0.5)
    digest = file_digest(path)
    digest.update(b"\0" + _backbone_source(meta, choice).encode("utf-8"))
    name = " ".join(str(meta.get("name") or "detector").split())
    if choice.backbone_weights == RANDOM_WEIGHTS and not meta.get("backbone_embedded"):
        name += RANDOM_BACKBONE_MARK
    return Fingerprint(f"{name}@{digest.hexdigest()[:12]}", float(threshold), *_sizes(meta))
