"""Build, load and save detectors: the one place that joins backbones, MoLE configs and checkpoints."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import torch

from ..data.preprocess import PreprocessConfig
from ..errors import AigdetectError, CheckpointError, ConfigError, WeightsError
from ..version import __version__
from .backbones import (
    BackboneSource,
    backbone_weights_file,
    build_visual,
    load_backbone,
    load_visual_weights,
    resolve_backbone,
)
from .checkpoint import (
    BACKBONE_PREFIX,
    DETECTOR_PREFIXES,
    TRAIN_STATE_PREFIX,
    check_detector_tensors,
    read_checkpoint,
    write_checkpoint,
)
from .choice import DetectorChoice, resolve_choice
from .config import MoLEConfig
from .detector import Detector
from .fingerprint import file_digest, fingerprint
from .identity import RANDOM_BACKBONE_MARK
from .metadata import check_detector_metadata
from .zoo import DEFAULT_DETECTOR, RANDOM_WEIGHTS, builtin_path

MAX_PARAMETERS = 3_000_000_000
"""Parameters of a whole detector (12 GB in float32), counted before anything is allocated. The
largest released CLIP vision tower, ViT-bigG/14, has 1.8 billion."""


def _meta_counts(source: BackboneSource, mole: MoLEConfig) -> dict[str, float]:
    with torch.device("meta"):
        return Detector(build_visual(source), source, mole).parameter_counts()


def check_size(source: BackboneSource, mole: MoLEConfig) -> None:
    """Refuse a detector too large to build, counted on the meta device (no memory).

    Raises:
        ConfigError: more than ``MAX_PARAMETERS`` parameters, or ``mole`` does not fit the backbone.
    """
    total = int(_meta_counts(source, mole)["total_params"])
    if total > MAX_PARAMETERS:
        raise ConfigError(f"the {source.label()} detector would have {total:,} parameters, over the limit of {MAX_PARAMETERS:,}")


def create_detector(
    model: str | os.PathLike[str],
    mole: MoLEConfig | None = None,
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
) -> Detector:
    """Build a fresh detector from a backbone name or config JSON and a MoLE config.

    The backbone's random init (with ``backbone_weights="none"``) and the adapters' init both come
    from ``seed``, so two calls with the same arguments give identical detectors.
    """
    source = resolve_backbone(model, cache_dir=cache_dir)
    mole = mole or MoLEConfig()
    check_size(source, mole)
    path = backbone_weights_file(source, backbone_weights, cache_dir)
    visual = load_backbone(source, path or RANDOM_WEIGHTS, seed=seed)
    if path is not None:
        source = replace(source, weights_sha256=file_digest(path).hexdigest())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        return Detector(visual, source, mole)


def parameter_summary(model: str | os.PathLike[str], mole: MoLEConfig) -> dict[str, float]:
    """Trainable and total parameter counts of a detector, built on the meta device (no weights, no memory)."""
    return _meta_counts(resolve_backbone(model), mole)


def detector_metadata(detector: Detector) -> dict[str, Any]:
    """What a checkpoint records about a detector besides its tensors."""
    return {
        "aigdetect_version": __version__,
        "name": detector.name,
        "backbone": detector.source.to_dict(),
        "backbone_embedded": not detector.source.downloadable,
        "mole": detector.mole.to_dict(),
        "preprocess": detector.preprocess.to_dict(),
        "threshold": detector.threshold,
        "provenance": detector.provenance,
    }


def detector_tensors(detector: Detector) -> dict[str, torch.Tensor]:
    """Adapters and head; the backbone too when it cannot be fetched again."""
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
    write_checkpoint(
        path, {**detector_tensors(detector), **(extra_tensors or {})}, {**detector_metadata(detector), **(extra_metadata or {})}
    )


def _checked_weights(
    source: BackboneSource, weights: str | os.PathLike[str] | None, cache_dir: str | None, origin: str
) -> str:
    """The backbone weights file for a checkpoint's detector, refused when its SHA-256 is not the
    one the detector was trained on; ``"none"`` (random weights) as asked.

    Raises:
        WeightsError: other weights than the checkpoint records, or none found.
    """
    path = backbone_weights_file(source, weights, cache_dir)
    if path is None:
        return RANDOM_WEIGHTS
    if source.weights_sha256 is not None:
        actual = file_digest(path).hexdigest()
        if actual != source.weights_sha256:
            raise WeightsError(
                f"{origin} was trained on backbone weights with SHA-256 {source.weights_sha256[:16]}..., "
                f"{path} has {actual[:16]}...; pass the weights it was trained with"
            )
    return path


def detector_from_checkpoint(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    origin: str,
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    cache_dir: str | None = None,
) -> Detector:
    """Rebuild a detector from checkpoint contents; backbone weights come from the file when embedded.

    Metadata types, the threshold, every size in the configs and the tensors' dtypes are checked
    before anything is built (``check_detector_metadata``, ``check_size``).
    """
    check_detector_metadata(meta, origin)
    check_detector_tensors(tensors, origin)
    try:
        source = BackboneSource.from_dict(meta["backbone"])
        mole = MoLEConfig.from_dict(meta["mole"])
        preprocess = PreprocessConfig.from_dict(meta["preprocess"]) if "preprocess" in meta else source.preprocess
        check_size(source, mole)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{origin}: checkpoint metadata is incomplete or invalid ({str(exc)[:200]})") from None
    except AigdetectError as exc:
        raise CheckpointError(f"{origin}: {exc}") from None
    threshold = float(meta.get("threshold", 0.5))
    embedded = {k[len(BACKBONE_PREFIX):]: v for k, v in tensors.items() if k.startswith(BACKBONE_PREFIX)}
    # A stored backbone is the model's own: "none" (no download) must not swap it for a fresh random one.
    if embedded and (backbone_weights is None or str(backbone_weights) == RANDOM_WEIGHTS):
        visual = load_backbone(source, "none")
        load_visual_weights(visual, embedded, f"{origin} (embedded backbone)")
    else:
        visual = load_backbone(source, _checked_weights(source, backbone_weights, cache_dir, origin))
    try:
        detector = Detector(
            visual, source, mole, threshold=threshold, name=meta.get("name"), provenance=meta.get("provenance"),
            preprocess=preprocess,
        )  # fmt: skip
    except ConfigError as exc:
        raise CheckpointError(f"{origin}: {exc}") from None
    unknown = sorted(k for k in tensors if not k.startswith((*DETECTOR_PREFIXES, BACKBONE_PREFIX, TRAIN_STATE_PREFIX)))
    if unknown:
        raise CheckpointError(f"{origin}: unexpected tensors {', '.join(unknown[:3])}")
    adapter = {k: v for k, v in tensors.items() if k.startswith(DETECTOR_PREFIXES)}
    detector.load_adapter_state_dict(adapter, origin)
    return detector


def load_detector(
    checkpoint_or_name: str | os.PathLike[str] = DEFAULT_DETECTOR,
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    cache_dir: str | None = None,
    device: str | torch.device = "cpu",
    allow_random_backbone: bool = False,
) -> Detector:
    """Load a built-in detector by name (see ``zoo.DETECTORS``) or a checkpoint file.

    The detector comes back in eval mode and known by its file's id (``identity.detector_id``), the
    id that a command-line scan of the same file writes.

    Args:
        checkpoint_or_name: a built-in detector's name or a ``.safetensors`` checkpoint.
        backbone_weights: overrides where the backbone's weights come from (a file, or ``"none"``).
        cache_dir: open_clip / Hugging Face cache for registry backbones.
        device: where the detector is placed.
        allow_random_backbone: accept ``"none"`` for a detector whose head was trained on pretrained
            features; its name then says ``+random-backbone``, so its scores are never mistaken for
            the real detector's.

    Raises:
        CheckpointError: the file is missing, corrupt, truncated, a training state, or does not
            match its config.
        WeightsError: the backbone's weights cannot be found or do not fit.
        ConfigError: random weights for a pretrained detector without ``allow_random_backbone``.
    """
    path = builtin_path(str(checkpoint_or_name)) or checkpoint_or_name
    tensors, meta = read_checkpoint(path)
    if "train_state" in meta:
        out = meta["train_state"].get("config", {}).get("out") if isinstance(meta["train_state"], dict) else None
        target = f"; the detector is {out}" if isinstance(out, str) else ""
        raise CheckpointError(f"{path} is a training state (to continue training with `resume`), not a detector{target}")
    random = backbone_weights is not None and str(backbone_weights) == RANDOM_WEIGHTS
    pretrained = isinstance(meta.get("backbone"), dict) and bool(meta["backbone"].get("name"))
    if random and pretrained and not allow_random_backbone:
        raise ConfigError(
            f"{path} was trained on pretrained {meta['backbone']['name']} features: random backbone weights would give "
            "meaningless scores under its name; pass real `backbone_weights`, or `allow_random_backbone` to measure cost"
        )
    detector = detector_from_checkpoint(tensors, meta, str(path), backbone_weights=backbone_weights, cache_dir=cache_dir)
    if random and pretrained:
        detector.name = f"{detector.name}{RANDOM_BACKBONE_MARK}"
    detector.eval()
    weights = None if backbone_weights is None else os.fspath(backbone_weights)
    chosen = DetectorChoice(checkpoint=os.fspath(path), backbone_weights=weights, allow_random_backbone=allow_random_backbone)
    detector.file_identity = fingerprint(chosen).identity
    return detector.to(device)


def load_chosen(choice: DetectorChoice, device: str | torch.device = "cpu") -> Detector:
    """Load the detector a command's options name: a checkpoint, a built-in, or a backbone's built-in.

    Raises:
        ConfigError: ``model`` names no built-in detector or backbone, or contradicts the checkpoint.
        CheckpointError, WeightsError: as ``load_detector``.
    """
    options = {
        "backbone_weights": choice.backbone_weights,
        "cache_dir": choice.cache_dir,
        "device": device,
        "allow_random_backbone": choice.allow_random_backbone,
    }
    detector = load_detector(resolve_choice(choice), **options)
    names = (detector.source.name, detector.name, (detector.source.name or "").partition(":")[0])
    if choice.checkpoint is not None and choice.model and choice.model not in names:
        raise ConfigError(
            f"`model` {choice.model} conflicts with the checkpoint's backbone ({detector.source.label()}); drop `model`"
        )
    return detector
