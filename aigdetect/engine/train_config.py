"""What defines a training run: ``TrainConfig``, validated on creation, and where its state lives.

Kept apart from the training loop so that the CLI, the benchmarks and a resumed run can build and
compare configurations without touching the loop.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import MoLEConfig, check_known_keys
from ..data.images import DEFAULT_MAX_PIXELS
from ..data.transforms import AugmentConfig
from ..errors import ConfigError
from ..models.zoo import BACKBONES, RANDOM_WEIGHTS

SCHEDULES = ("constant", "cosine")
DEFAULT_EPOCHS = 10
STATE_VERSION = 1
STATE_SUFFIX = ".state.safetensors"
# Settings a resumed run may change; every other one must match the run being resumed.
RUNTIME_FIELDS = frozenset({"device", "workers", "log", "resume"})
_PATH_FIELDS = ("out", "data", "real", "fake", "val", "log", "resume", "cache_dir")

def state_path_for(out: str | os.PathLike[str]) -> Path:
    """``m.safetensors`` -> ``m.state.safetensors``: the resumable state written beside the detector."""
    out = Path(out)
    stem = out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name
    return out.with_name(stem + STATE_SUFFIX)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; validated on creation.

    Attributes:
        out: where the best detector is written (``.safetensors``).
        data: dataset root in one of the layouts of ``data.layouts``; or give ``real`` and ``fake``.
        real: folder of real images (with ``fake``, instead of ``data``).
        fake: folder of AI-generated images.
        val: validation dataset root; default: the layout's val split, else a held-out fraction.
        val_fraction: hold out this fraction of the training images for validation.
        train_size: train on a balanced, seeded subset of this many images.
        model: backbone name or open_clip config JSON.
        backbone_weights: weights file, ``none`` for random weights, or None for the cache/download.
        cache_dir: open_clip / Hugging Face cache.
        mole: the adapter configuration.
        augment: training augmentation.
        steps: optimizer steps to run (exclusive with ``epochs``).
        epochs: passes over the training set (default 10 when neither is given).
        batch_size: global batch size, split evenly over distributed ranks.
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        schedule: ``constant`` or ``cosine`` learning rate.
        eval_every: validate every N steps; 0 validates at the end of each epoch.
        patience: stop after this many validations without a better AP; 0 never stops early.
        log_every: write a step record every N steps.
        seed: seeds the backbone/adapter init, shuffling, hold-out, sub-sampling and augmentation.
        device: ``auto``, ``cuda`` or ``cpu``.
        workers: decoding worker processes per rank (default: the cores, shared among ranks).
        log: JSONL file that receives step and validation records (appended to).
        resume: training-state file to continue from.
        max_pixels: decompression-bomb cap per image.
    """

    out: str
    data: str | None = None
    real: str | None = None
    fake: str | None = None
    val: str | None = None
    val_fraction: float | None = None
    train_size: int | None = None
    model: str = "vitb32"
    backbone_weights: str | None = None
    cache_dir: str | None = None
    mole: MoLEConfig = field(default_factory=MoLEConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 6e-4
    weight_decay: float = 0.01
    schedule: str = "constant"
    eval_every: int = 0
    patience: int = 5
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    log: str | None = None
    resume: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not self.out:
            raise ConfigError("--out is required: the file the trained detector is written to")
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.path.abspath(os.fspath(value)))
        if self.model not in BACKBONES and os.path.exists(self.model):
            object.__setattr__(self, "model", os.path.abspath(self.model))
        if self.backbone_weights not in (None, RANDOM_WEIGHTS) and os.path.exists(self.backbone_weights):
            object.__setattr__(self, "backbone_weights", os.path.abspath(self.backbone_weights))
        if self.steps is None and self.epochs is None:
            object.__setattr__(self, "epochs", DEFAULT_EPOCHS)
        self._validate()

    def _validate(self) -> None:
        if (self.real is None) != (self.fake is None):
            raise ConfigError("--real and --fake go together")
        if (self.data is None) == (self.real is None):
            raise ConfigError("give either --data DIR or both --real DIR and --fake DIR")
        if self.val is not None and self.val_fraction is not None:
            raise ConfigError("--val and --val-fraction are exclusive: validation comes from one of them")
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if self.train_size is not None and self.train_size < 2:
            raise ConfigError(f"--train-size must be at least 2 (one image per class), got {self.train_size}")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("--steps and --epochs are exclusive")
        for name in ("steps", "epochs", "batch_size", "log_every", "max_pixels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 1, got {value}")
        for name in ("eval_every", "patience", "workers"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 0, got {value}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.resume is not None and os.path.abspath(self.resume) == os.path.abspath(self.out):
            raise ConfigError(f"--resume takes the training state ({state_path_for(self.out)}), not the --out detector")

    @property
    def state_path(self) -> Path:
        return state_path_for(self.out)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["mole"] = self.mole.to_dict()
        augment = asdict(self.augment)
        data["augment"] = {k: list(v) if isinstance(v, tuple) else v for k, v in augment.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        check_known_keys(cls, data, "training config")
        values = dict(data)
        values["mole"] = MoLEConfig.from_dict(values["mole"])
        augment = dict(values["augment"])
        augment["blur_sigma"] = tuple(augment["blur_sigma"])
        augment["jpeg_quality"] = tuple(augment["jpeg_quality"])
        values["augment"] = AugmentConfig(**augment)
        return cls(**values)

    def differences(self, other: TrainConfig) -> list[str]:
        """Settings (other than the runtime ones) where ``other`` differs: ``name: other -> self``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{name}: {theirs[name]!r} -> {mine[name]!r}"
            for name in mine
            if name not in RUNTIME_FIELDS and mine[name] != theirs[name]
        ]
