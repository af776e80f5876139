"""Detector checkpoints: one safetensors file holding tensors plus a JSON header entry.

Tensors are the head and the MoLE bypasses; the frozen backbone is added only when it cannot be
fetched again (a random or custom-config backbone). Nothing is ever unpickled on load.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .. import __version__
from ..config import MoLEConfig
from ..errors import AigdetectError, CheckpointError
from .backbones import RANDOM_WEIGHTS, BackboneSource, load_backbone, load_visual_weights
from .detector import Detector

CHECKPOINT_FORMAT = "aigdetect.detector"
CHECKPOINT_VERSION = 1
METADATA_KEY = "aigdetect"
BACKBONE_PREFIX = "backbone."
TRAIN_STATE_PREFIX = "train_state."
DETECTOR_PREFIXES = ("adapters.", "head.")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Any) -> None:
    """Run ``write(tmp_path)`` then fsync and rename, so readers never see a half-written file.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask), not
    mkstemp's private 0600, so checkpoints can be shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def detector_metadata(detector: Detector) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "aigdetect_version": __version__,
        "name": detector.name,
        "backbone": detector.source.to_dict(),
        "backbone_embedded": not detector.source.downloadable,
        "mole": detector.mole.to_dict(),
        "threshold": detector.threshold,
        "provenance": detector.provenance,
    }


def detector_tensors(detector: Detector) -> dict[str, torch.Tensor]:
    tensors = {k: v.float().cpu() for k, v in detector.adapter_state_dict().items()}
    if not detector.source.downloadable:
        tensors.update({BACKBONE_PREFIX + k: v.float().cpu() for k, v in detector.backbone_state_dict().items()})
    return tensors


def save_detector(
    detector: Detector,
    path: str | os.PathLike[str],
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> None:
    """Write the detector atomically; ``extra_*`` carry resumable training state beside it."""
    meta = detector_metadata(detector)
    if extra_metadata:
        meta.update(extra_metadata)
    tensors = detector_tensors(detector)
    if extra_tensors:
        tensors.update({k: v.detach().contiguous().cpu() for k, v in extra_tensors.items()})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={METADATA_KEY: json.dumps(meta)}))


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read tensors and metadata, turning every kind of damage into a ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
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
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON ({exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    if int(meta.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {meta['format_version']} is newer than this aigdetect reads "
            f"({CHECKPOINT_VERSION}); upgrade aigdetect"
        )
    return tensors, meta


def detector_from_checkpoint(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    origin: str,
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    cache_dir: str | None = None,
) -> Detector:
    """Rebuild a detector from checkpoint contents; backbone weights come from the file when embedded."""
    try:
        source = BackboneSource.from_dict(meta["backbone"])
        mole = MoLEConfig.from_dict(meta["mole"])
        threshold = float(meta.get("threshold", 0.5))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{origin}: checkpoint metadata is incomplete or invalid ({exc})") from None
    except AigdetectError as exc:
        raise CheckpointError(f"{origin}: {exc}") from None
    embedded = {k[len(BACKBONE_PREFIX):]: v for k, v in tensors.items() if k.startswith(BACKBONE_PREFIX)}
    # A stored backbone is the model's own: "none" (no download) must not swap it for a fresh random one.
    if embedded and (backbone_weights is None or str(backbone_weights) == RANDOM_WEIGHTS):
        visual = load_backbone(source, "none")
        load_visual_weights(visual, embedded, f"{origin} (embedded backbone)")
    else:
        visual = load_backbone(source, backbone_weights, cache_dir=cache_dir)
    detector = Detector(
        visual, source, mole, threshold=threshold, name=meta.get("name"), provenance=meta.get("provenance")
    )
    unknown = sorted(k for k in tensors if not k.startswith((*DETECTOR_PREFIXES, BACKBONE_PREFIX, TRAIN_STATE_PREFIX)))
    if unknown:
        raise CheckpointError(f"{origin}: unexpected tensors {', '.join(unknown[:3])}")
    adapter = {k: v for k, v in tensors.items() if k.startswith(DETECTOR_PREFIXES)}
    detector.load_adapter_state_dict(adapter, origin)
    return detector


def load_detector(
    path: str | os.PathLike[str],
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    cache_dir: str | None = None,
) -> Detector:
    """Load a checkpoint written by ``save_detector``.

    Args:
        path: the ``.safetensors`` checkpoint.
        backbone_weights: overrides where the backbone's weights come from (a file, or ``"none"``).
        cache_dir: open_clip / Hugging Face cache for registry backbones.

    Raises:
        CheckpointError: the file is missing, corrupt, truncated, or does not match its config.
        WeightsError: the backbone's weights cannot be found or do not fit.
    """
    tensors, meta = read_checkpoint(path)
    return detector_from_checkpoint(tensors, meta, str(path), backbone_weights=backbone_weights, cache_dir=cache_dir)
