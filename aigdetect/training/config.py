"""What defines a training run: ``TrainConfig``, validated on creation, and where its state lives.

Kept apart from the training loop so that the CLI, the benchmarks and a resumed run can build and
compare configurations without touching the loop.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data.config import AugmentConfig, max_bytes_field, max_pixels_field
from ..engine.runtime import RuntimeConfig
from ..errors import ConfigError
from ..models.config import MoLEConfig
from ..models.zoo import BACKBONES, RANDOM_WEIGHTS
from ..registry import Registry
from ..settings import check_known_keys, require_finite

SCHEDULES = ("constant", "cosine")
VAL_PROTOCOLS = ("ours", "peers")
DEFAULT_EPOCHS = 10
PEERS_EPOCHS = 100
"""UnivFD's epoch cap (its ``niter``; CNNDetection's is 10000): both train until their plateau rule stops them."""
STATE_VERSION = 2
STATE_SUFFIX = ".state.safetensors"
# Settings a resumed run may change; every other one must match the run being resumed. The
# micro-batch changes memory use, not the result (up to float rounding).
RUNTIME_FIELDS = frozenset({"runtime", "log", "resume", "micro_batch"})
_PATH_FIELDS = ("out", "data", "real", "fake", "val", "log", "resume", "cache_dir")


PROBE_SOLVERS = ("adamw", "lbfgs")
MAX_VIEWS = 64
DEFAULT_CACHE_BYTES = 4 << 30
"""4 GiB of cached features: two million ViT-B/32 vectors, or 400,000 of ViT-L/14 (float32)."""


@dataclass(frozen=True)
class ProbeConfig:
    """A linear probe on frozen features (UnivFD's recipe), fitted on features extracted once."""

    feature_cache: str | None = field(
        default=None,
        metadata={"help": "Folder of frozen features shared by runs: a second fit decodes no image (default: none)."},
    )
    views: int = field(
        default=0,
        metadata={"help": "Augmented views per image besides the centre crop (blur/JPEG draws, crop, flip), each cached."},
    )
    solver: str = field(
        default="adamw",
        metadata={"help": "adamw (mini-batches at the run's lr, weight decay, batch and epochs) or lbfgs (logistic regression)."},
    )
    cache_bytes: int = field(
        default=DEFAULT_CACHE_BYTES, metadata={"help": "Cap of the feature cache; least recently used entries go first."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.views, bool) or not isinstance(self.views, int) or not 0 <= self.views <= MAX_VIEWS:
            raise ConfigError(f"`views` must be an integer in 0..{MAX_VIEWS}, got {self.views!r}")
        if self.solver not in PROBE_SOLVERS:
            raise ConfigError(f"probe `solver` must be one of {', '.join(PROBE_SOLVERS)}, got {self.solver!r}")
        if isinstance(self.cache_bytes, bool) or not isinstance(self.cache_bytes, int) or self.cache_bytes < 1:
            raise ConfigError(f"`cache_bytes` must be a positive integer, got {self.cache_bytes!r}")
        if self.feature_cache is not None:
            object.__setattr__(self, "feature_cache", os.path.abspath(self.feature_cache))


@dataclass(frozen=True)
class Recipe:
    """A named set of training settings; each applies where the run leaves its setting unset.

    Attributes:
        name: what ``recipe`` takes.
        batch_size: global batch.
        lr: AdamW learning rate.
        augment: training augmentation.
        val_protocol: how validation scores images and chooses the kept weights (``VAL_PROTOCOLS``).
        summary: where the values come from.
        epochs: the run's length when neither ``steps`` nor ``epochs`` is given: a cap that the
            peers' stopping rule (lr / 10 per plateau, stop below 1e-6) is meant to end first.
    """

    name: str
    batch_size: int
    lr: float
    augment: AugmentConfig
    val_protocol: str
    summary: str
    epochs: int = DEFAULT_EPOCHS


RECIPES: Registry[Recipe] = Registry(
    "`recipe`",
    (
        Recipe(
            "default", 64, 6e-4, AugmentConfig(), "ours",
            "ours: CNNDetection's batch 64, the paper's lr and augmentation, clean validation kept on AP",
        ),
        Recipe(
            "paper", 1024, 6e-4,
            AugmentConfig(blur_prob=0.1, blur_sigma=(0.0, 3.0), jpeg_prob=0.1, jpeg_quality=(30, 100), flip=True),
            "peers",
            "CLIPMoLE §4.1 and its supplementary (batch 1024 on one GPU, AdamW lr 6e-4, blur and JPEG at p=0.1), "
            "validated as CNNDetection and UnivFD do",
            PEERS_EPOCHS,
        ),
    ),
)
RECIPE_FIELDS = ("batch_size", "lr", "augment", "val_protocol")


def state_path_for(out: str | os.PathLike[str]) -> Path:
    """``m.safetensors`` -> ``m.state.safetensors``: the resumable state written beside the detector."""
    out = Path(out)
    stem = out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name
    return out.with_name(stem + STATE_SUFFIX)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; validated on creation. Field help is what ``train -h`` shows.

    ``batch_size``, ``lr``, ``augment`` and ``val_protocol`` left unset (None) take the ``recipe``'s
    values; set, they win over it (``recipe_overrides`` lists them). ``runtime`` (device, decode
    workers), ``micro_batch``, ``log`` and ``resume`` may change when a run is resumed; every other
    setting must match the run being resumed.
    """

    out: str = field(metadata=_help("Where to write the trained detector (.safetensors)."))
    data: str | None = field(
        default=None,
        metadata=_help(
            "Dataset root: DIR/[train|val]/<category>/{0_real,1_fake}, DIR/{0_real,1_fake} or DIR/{train,val}/{ai,nature}."
        ),
    )
    real: str | None = field(default=None, metadata=_help("Folder of real images (with `fake`, instead of `data`)."))
    fake: str | None = field(default=None, metadata=_help("Folder of AI-generated images."))
    val: str | None = field(
        default=None, metadata=_help("Validation dataset root (default: the layout's val split, else a held-out fraction).")
    )
    val_fraction: float | None = field(
        default=None,
        metadata=_help("Hold out this fraction of the training images for validation (default 0.1 without a val split)."),
    )
    train_size: int | None = field(default=None, metadata=_help("Train on a balanced, seeded subset of N images."))
    model: str = field(
        default="vitb32",
        metadata=_help(
            f"Backbone: {', '.join(BACKBONES.names())}, any open_clip model (NAME or NAME:TAG, e.g. PE-Core-B-16, "
            "ViT-L-14-quickgelu:dfn2b), hf-hub:ORG/NAME, timm:NAME, or the path of a model-config JSON."
        ),
    )
    backbone_weights: str | None = field(
        default=None,
        metadata=_help(
            f"Backbone weights file (OpenAI .pt, open_clip or timm state dict, safetensors), or '{RANDOM_WEIGHTS}' for random "
            "weights. Default: the open_clip / Hugging Face cache, then a download."
        ),
    )
    cache_dir: str | None = field(default=None, metadata=_help("Where open_clip and Hugging Face keep downloaded weights."))
    recipe: str = field(
        default="default",
        metadata=_help(
            "Preset of batch size, lr, augmentation and validation protocol: default (ours) or paper (CLIPMoLE's "
            "batch 1024 and lr 6e-4, the peers' validation). Options given with it win over its values."
        ),
    )
    mole: MoLEConfig = field(default_factory=MoLEConfig)
    augment: AugmentConfig | None = None
    probe: ProbeConfig | None = None
    steps: int | None = field(default=None, metadata=_help("Optimizer steps to run."))
    epochs: int | None = field(
        default=None,
        metadata=_help(
            f"Passes over the training set, unless `steps` (default: the `recipe`'s, {DEFAULT_EPOCHS}; paper "
            f"{PEERS_EPOCHS}, a cap that its plateau rule ends first)."
        ),
    )
    batch_size: int | None = field(
        default=None,
        metadata=_help("Global batch size, split over torchrun processes (default: the `recipe`'s, 64; paper 1024)."),
    )
    micro_batch: int | None = field(
        default=None,
        metadata=_help(
            "Images per forward and backward pass on each process; the batch's gradient is accumulated from "
            "micro-batches and equals the whole batch's. Default: the whole batch on the CPU; on CUDA the whole "
            "batch, halved until the first step fits in GPU memory."
        ),
    )
    lr: float | None = field(
        default=None, metadata=_help("AdamW learning rate (default: the `recipe`'s, the paper's 6e-4 in both).")
    )
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay."))
    schedule: str = field(default="constant", metadata=_help(f"Learning-rate schedule: {' or '.join(SCHEDULES)}."))
    eval_every: int = field(default=0, metadata=_help("Validate (and save the state) every N steps; 0: each epoch."))
    val_protocol: str | None = field(
        default=None,
        metadata=_help(
            "Validation: ours (clean centre crops at native resolution; keep the best AP) or peers (CNNDetection "
            "and UnivFD: resize to 256, blur sigma 1.5 and JPEG q65 at the training probabilities; keep on accuracy; "
            "divide lr by 10 on a plateau). Default: the `recipe`'s (ours; paper: peers)."
        ),
    )
    patience: int = field(
        default=5,
        metadata=_help(
            "ours: stop after N validations without a better AP. peers: after N without a 0.001 accuracy gain "
            "(0.002 after a drop), divide lr by 10, and stop once it would fall below 1e-6. 0: never."
        ),
    )
    log_every: int = field(default=10, metadata=_help("Write a step record to `log` every N steps."))
    seed: int = field(default=0, metadata=_help("Seed of initialisation, shuffling, splits and augmentation."))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    log: str | None = field(default=None, metadata=_help("Append step and validation records to this JSONL file."))
    resume: str | None = field(default=None, metadata=_help("Continue the run saved in this .state.safetensors file."))
    max_pixels: int = max_pixels_field()
    max_bytes: int = max_bytes_field()

    def __post_init__(self) -> None:
        recipe = RECIPES.get(self.recipe)
        for name in RECIPE_FIELDS:
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(recipe, name))
        if not self.out:
            raise ConfigError("`out` is required: the file the trained detector is written to")
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.path.abspath(os.fspath(value)))
        if self.model not in BACKBONES and os.path.exists(self.model):
            object.__setattr__(self, "model", os.path.abspath(self.model))
        if self.backbone_weights not in (None, RANDOM_WEIGHTS) and os.path.exists(self.backbone_weights):
            object.__setattr__(self, "backbone_weights", os.path.abspath(self.backbone_weights))
        if self.steps is None and self.epochs is None:
            object.__setattr__(self, "epochs", recipe.epochs)
        self._validate()

    def _validate(self) -> None:
        if (self.real is None) != (self.fake is None):
            raise ConfigError("`real` and `fake` go together")
        if (self.data is None) == (self.real is None):
            raise ConfigError("give either `data` DIR or both `real` DIR and `fake` DIR")
        if self.val is not None and self.val_fraction is not None:
            raise ConfigError("`val` and `val_fraction` are exclusive: validation comes from one of them")
        if self.val_fraction is not None:
            require_finite("val_fraction", self.val_fraction)
            if not 0.0 < self.val_fraction < 1.0:
                raise ConfigError(f"`val_fraction` must be between 0 and 1, got {self.val_fraction}")
        if self.train_size is not None and self.train_size < 2:
            raise ConfigError(f"`train_size` must be at least 2 (one image per class), got {self.train_size}")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("`steps` and `epochs` are exclusive")
        for name in ("steps", "epochs", "batch_size", "micro_batch", "log_every", "max_pixels", "max_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"`{name}` must be >= 1, got {value}")
        for name in ("eval_every", "patience", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "weight_decay"):
            require_finite(name, getattr(self, name))
        if not self.lr > 0:
            raise ConfigError(f"`lr` must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"`weight_decay` must be >= 0, got {self.weight_decay}")
        if self.val_protocol not in VAL_PROTOCOLS:
            raise ConfigError(f"`val_protocol` must be one of {', '.join(VAL_PROTOCOLS)}, got {self.val_protocol!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"`schedule` must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.probe is not None and (self.mole.blocks or self.resume is not None or self.steps is not None):
            raise ConfigError(
                "`probe` fits a linear head on frozen features in `epochs` passes: it takes no `blocks`, `steps` or `resume`"
            )
        if self.resume is not None and os.path.abspath(self.resume) == os.path.abspath(self.out):
            raise ConfigError(f"`resume` takes the training state ({state_path_for(self.out)}), not the `out` detector")

    @property
    def state_path(self) -> Path:
        return state_path_for(self.out)

    def recipe_overrides(self) -> dict[str, tuple[Any, Any]]:
        """Recipe settings this run replaces: ``{name: (recipe's value, value used)}``."""
        recipe = RECIPES.get(self.recipe)
        return {
            name: (_plain(getattr(recipe, name)), _plain(getattr(self, name)))
            for name in RECIPE_FIELDS
            if getattr(recipe, name) != getattr(self, name)
        }

    def resolved_recipe(self) -> dict[str, Any]:
        """What the run trains with, for the ``recipe`` event: the recipe, its settings as used, and
        the ones options replaced."""
        return {
            "recipe": self.recipe,
            "summary": RECIPES.get(self.recipe).summary,
            "settings": {name: _plain(getattr(self, name)) for name in RECIPE_FIELDS},
            "overridden": {name: {"recipe": mine, "used": used} for name, (mine, used) in self.recipe_overrides().items()},
            "micro_batch": self.micro_batch,
            "weight_decay": self.weight_decay,
            "schedule": self.schedule,
            "patience": self.patience,
        }

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["mole"] = self.mole.to_dict()
        data["augment"] = _plain(self.augment)
        data["runtime"] = asdict(self.runtime)
        data["probe"] = None if self.probe is None else asdict(self.probe)
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
        values["runtime"] = RuntimeConfig(**values["runtime"])
        values["probe"] = ProbeConfig(**values["probe"]) if values.get("probe") else None
        return cls(**values)

    def differences(self, other: TrainConfig) -> list[str]:
        """Settings (other than the runtime ones) where ``other`` differs: ``name: other -> self``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{name}: {theirs[name]!r} -> {mine[name]!r}"
            for name in mine
            if name not in RUNTIME_FIELDS and mine[name] != theirs[name]
        ]


def _plain(value: Any) -> Any:
    """A setting as JSON-ready data: an ``AugmentConfig`` becomes a dict with lists for its ranges."""
    if isinstance(value, AugmentConfig):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(value).items()}
    return value
