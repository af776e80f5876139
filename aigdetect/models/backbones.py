"""Vision towers a detector is built on: open_clip's own ViTs and its timm-built towers (SigLIP 2,
Perception Encoder), plain timm ViTs, and where their weights come from.

Only the vision tower is built; the text tower plays no part in detection. ``--model`` names a
short alias (``vitb16``), any open_clip model (``ViT-L-14-quickgelu:dfn2b``, with its pretrained
tag), ``hf-hub:ORG/NAME``, ``timm:NAME``, or a config JSON. Each family knows how to check its
config, build its tower and say what its preprocessing and feature size are.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file as load_safetensors
from torch import nn

from ..data.preprocess import INTERPOLATIONS, PreprocessConfig
from ..errors import ConfigError, WeightsError
from ..formats.torch_archive import is_zip_file, read_torch_archive
from .backbone_config import MAX_CONFIG_BYTES, check_config, check_timm_config, read_config
from .hub import OPEN_CLIP_FILES, TIMM_FILES, WeightsLocation, cached_weights, open_clip_location, resolve_weights
from .state_keys import key_problems
from .zoo import BACKBONES, RANDOM_WEIGHTS

TIMM_PREFIX = "timm:"
HF_HUB_PREFIX = "hf-hub:"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _stats(cfg: Any, size: int) -> PreprocessConfig:
    """A model's own statistics (open_clip's preprocess cfg, timm's pretrained_cfg) at ``size``;
    the CLIP defaults where it names none, and bicubic for an interpolation we do not name."""
    get = cfg.get if isinstance(cfg, dict) else lambda key, default=None: getattr(cfg, key, default)
    defaults = PreprocessConfig(size=size)
    interpolation = get("interpolation", None)
    return PreprocessConfig(
        size=size,
        mean=tuple(get("mean", None) or defaults.mean),
        std=tuple(get("std", None) or defaults.std),
        interpolation=interpolation if interpolation in INTERPOLATIONS else defaults.interpolation,
    )


class Family(ABC):
    """How one kind of backbone config becomes a vision tower."""

    key: ClassVar[str]

    @abstractmethod
    def check(self, config: Any, origin: str) -> dict[str, Any]:
        """The config, every size bounded; raises ``ConfigError``."""

    @abstractmethod
    def build(self, config: dict[str, Any]) -> nn.Module:
        """A randomly initialised tower on the current default device."""

    @abstractmethod
    def image_size(self, config: dict[str, Any]) -> int: ...

    @abstractmethod
    def output_dim(self, config: dict[str, Any], visual: nn.Module) -> int: ...

    @abstractmethod
    def preprocess(self, source: BackboneSource) -> PreprocessConfig: ...

    @abstractmethod
    def visual_state(self, state: dict[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
        """The tower's tensors out of a released state dict."""


class OpenClipFamily(Family):
    """open_clip's ``VisionTransformer`` and its ``TimmModel`` towers, from an open_clip model config."""

    key = "open_clip"

    def check(self, config: Any, origin: str) -> dict[str, Any]:
        return check_config(config, origin)

    def build(self, config: dict[str, Any]) -> nn.Module:
        from open_clip.model import _build_vision_tower

        return _build_vision_tower(config["embed_dim"], config["vision_cfg"], quick_gelu=bool(config.get("quick_gelu", False)))

    def image_size(self, config: dict[str, Any]) -> int:
        size = config["vision_cfg"].get("image_size", 224)
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    def output_dim(self, config: dict[str, Any], visual: nn.Module) -> int:
        """A ViT's ``output_dim``; a timm tower's projection, else its trunk's classifier (which
        open_clip sizes to ``embed_dim``), else the trunk's features (``timm_proj`` none)."""
        if hasattr(visual, "output_dim"):
            return int(visual.output_dim)
        proj = getattr(getattr(visual, "head", None), "proj", None)
        if isinstance(proj, nn.Linear):
            return proj.out_features
        return int(visual.trunk.num_classes or visual.trunk.num_features)

    def preprocess(self, source: BackboneSource) -> PreprocessConfig:
        size = self.image_size(source.config)
        model, tag = source.pretrained
        if tag is not None:
            from open_clip.pretrained import get_pretrained_cfg

            return _stats(get_pretrained_cfg(model, tag), size)
        return _stats(source.config.get("preprocess_cfg") or {}, size)

    def visual_state(self, state: dict[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
        if any(k.startswith("visual.") for k in state):
            return {k[len("visual.") :]: v.float() for k, v in state.items() if k.startswith("visual.")}
        if "conv1.weight" in state or any(k.startswith("trunk.") for k in state):
            return {k: v.float() for k, v in state.items()}
        raise WeightsError(f"{origin} is not a CLIP state dict: no 'visual.*', 'conv1.weight' or 'trunk.*' keys")


class TimmFamily(Family):
    """A plain timm ViT (``timm:NAME``) without its classifier: pooled features of ``num_features``."""

    key = "timm"

    def check(self, config: Any, origin: str) -> dict[str, Any]:
        return check_timm_config(config, origin)

    def build(self, config: dict[str, Any]) -> nn.Module:
        import timm

        return timm.create_model(config["model_name"], pretrained=False, num_classes=0, **config["kwargs"])

    def image_size(self, config: dict[str, Any]) -> int:
        from timm.models import get_pretrained_cfg

        size = config["kwargs"].get("img_size")
        return int(size) if size is not None else int(get_pretrained_cfg(config["model_name"]).input_size[-1])

    def output_dim(self, config: dict[str, Any], visual: nn.Module) -> int:
        return int(visual.num_features)

    def preprocess(self, source: BackboneSource) -> PreprocessConfig:
        from timm.models import get_pretrained_cfg

        return _stats(get_pretrained_cfg(source.config["model_name"]), self.image_size(source.config))

    def visual_state(self, state: dict[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
        """timm's own keys; its classifier (``head.*``) is not part of the feature extractor."""
        return {k: v.float() for k, v in state.items() if not k.startswith("head.")}


FAMILIES: dict[str, Family] = {family.key: family for family in (OpenClipFamily(), TimmFamily())}


@dataclass(frozen=True)
class BackboneSource:
    """What a detector's backbone is: a name ``resolve_backbone`` accepts, or a config of its own.

    A backbone with no name cannot be fetched again, so checkpoints embed its weights.

    Attributes:
        config: the family's config (an open_clip model config, or timm's name and kwargs).
        name: the canonical ``--model`` string, or None for a config of the user's.
        family: the key of its ``Family``.
        weights_sha256: SHA-256 of the weights file the detector was built with, when one was read.
    """

    config: dict[str, Any]
    name: str | None = None
    family: str = OpenClipFamily.key
    weights_sha256: str | None = None

    @property
    def downloadable(self) -> bool:
        return self.name is not None

    @property
    def kind(self) -> Family:
        return FAMILIES[self.family]

    @property
    def image_size(self) -> int:
        return self.kind.image_size(self.config)

    @property
    def preprocess(self) -> PreprocessConfig:
        """The preprocessing the model defines (its statistics at its input size)."""
        return self.kind.preprocess(self)

    @property
    def pretrained(self) -> tuple[str | None, str | None]:
        """open_clip's (model, pretrained tag) of a named open_clip backbone, else (None, None)."""
        if self.name is None or self.family != OpenClipFamily.key or self.name.startswith(HF_HUB_PREFIX):
            return None, None
        spec = BACKBONES.find(self.name)
        if spec is not None:
            return spec.pretrained_model, spec.pretrained_tag
        model, _, tag = self.name.partition(":")
        return model, tag or None

    def label(self) -> str:
        return self.name or "custom"

    def weights_location(self) -> WeightsLocation:
        """Where the pretrained weights of a named backbone are looked for.

        Raises:
            WeightsError: the backbone has no pretrained weights to look for.
        """
        hint = "pass `backbone_weights` FILE (or 'none' for random weights)"
        if self.name is None:
            raise WeightsError(f"a backbone given as a config JSON has no downloadable weights; {hint}")
        if self.name.startswith(HF_HUB_PREFIX):
            return WeightsLocation(self.name, self.name[len(HF_HUB_PREFIX) :], OPEN_CLIP_FILES)
        if self.family == TimmFamily.key:
            from timm.models import get_pretrained_cfg

            hub = getattr(get_pretrained_cfg(self.config["model_name"]), "hf_hub_id", None)
            if not hub:
                raise WeightsError(f"timm names no hub weights for {self.name}; {hint}")
            return WeightsLocation(self.name, hub, TIMM_FILES)
        model, tag = self.pretrained
        spec = BACKBONES.find(self.name)
        if tag is None:
            raise WeightsError(f"{self.name} names no pretrained tag; add one as {self.name}:TAG, or {hint}")
        label = f"{spec.name} ({model}, {tag})" if spec else self.name
        return open_clip_location(label, model, tag)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "config": self.config}
        if self.family != OpenClipFamily.key:
            data["family"] = self.family
        if self.weights_sha256 is not None:
            data["weights_sha256"] = self.weights_sha256
        return data

    @classmethod
    def from_dict(cls, data: Any) -> BackboneSource:
        """The backbone a checkpoint names: a name (never a path: a checkpoint must not make us open
        files), rebuilt from the registries; or an embedded config, checked like a user's.

        Raises:
            ConfigError: neither, an unknown name or family, or a config outside the bounds.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"backbone entry must be an object, got {type(data).__name__}")
        digest = data.get("weights_sha256")
        if digest is not None and (not isinstance(digest, str) or not _SHA256.fullmatch(digest)):
            raise ConfigError("backbone weights_sha256 must be 64 lowercase hex digits")
        name = data.get("name")
        if name is not None:
            if not isinstance(name, str) or len(name) > 200:
                raise ConfigError("backbone name must be a string of at most 200 characters")
            if name.startswith(HF_HUB_PREFIX):
                source = cls(check_config(data.get("config"), name), name)
            else:
                source = resolve_backbone(name, paths=False)
            return replace(source, weights_sha256=digest)
        if "config" not in data:
            raise ConfigError("backbone entry has neither a name nor a config")
        family = data.get("family", OpenClipFamily.key)
        if family not in FAMILIES:
            raise ConfigError(f"unknown backbone family {str(family)[:40]!r} ({', '.join(FAMILIES)})")
        return cls(config=FAMILIES[family].check(data["config"], "checkpoint"), family=family, weights_sha256=digest)


def _open_clip_named(name: str) -> BackboneSource | None:
    """``NAME`` or ``NAME:TAG`` of an open_clip model config; a tag must be one open_clip lists."""
    import open_clip
    from open_clip.pretrained import list_pretrained_tags_by_model

    model, _, tag = name.partition(":")
    if model not in open_clip.list_models():
        return None
    tags = list_pretrained_tags_by_model(model)
    if tag and tag not in tags:
        raise ConfigError(f"open_clip has no pretrained tag {tag!r} for {model} ({', '.join(tags) or 'none'})")
    if not tag and len(tags) == 1:
        name = f"{model}:{tags[0]}"
    config = check_config(open_clip.get_model_config(model), model)
    return BackboneSource(config=config, name=name)


def _hub_config(name: str, cache_dir: str | None) -> BackboneSource:
    """An ``hf-hub:ORG/NAME`` open_clip repository's config, from the cache or a download."""
    repo_id = name[len(HF_HUB_PREFIX) :]
    if repo_id.count("/") != 1 or not all(part and part not in (".", "..") for part in repo_id.split("/")):
        raise ConfigError(f"{name}: expected hf-hub:ORG/NAME")
    location = WeightsLocation(name, repo_id, ("open_clip_config.json",))
    found, _ = cached_weights(location, cache_dir)
    path = found or resolve_weights(location, cache_dir)
    if os.path.getsize(path) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: open_clip_config.json is over {MAX_CONFIG_BYTES} bytes")
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: open_clip_config.json is not an object")
    config = check_config(data.get("model_cfg"), name)
    if isinstance(data.get("preprocess_cfg"), dict):
        config["preprocess_cfg"] = {
            k: data["preprocess_cfg"][k] for k in ("mean", "std", "interpolation") if k in data["preprocess_cfg"]
        }
    return BackboneSource(config=config, name=name)


def _timm_named(name: str) -> BackboneSource:
    config = check_timm_config({"model_name": name[len(TIMM_PREFIX) :], "kwargs": {}}, name)
    return BackboneSource(config=config, name=name, family=TimmFamily.key)


def _custom(path: Path) -> BackboneSource:
    """A config JSON of the user's: ``{"model_name": ...}`` is timm's, anything else open_clip's."""
    data = read_config(path)
    family = TimmFamily.key if isinstance(data, dict) and "model_name" in data else OpenClipFamily.key
    return BackboneSource(config=FAMILIES[family].check(data, str(path)), family=family)


def resolve_backbone(model: str | os.PathLike[str], *, paths: bool = True, cache_dir: str | None = None) -> BackboneSource:
    """Turn ``--model`` into a source: a short alias, an open_clip model (``NAME`` or ``NAME:TAG``),
    ``hf-hub:ORG/NAME``, ``timm:NAME``, or (with ``paths``) a config JSON's path. An ``hf-hub``
    config is read from ``cache_dir`` (else the default cache), or downloaded.

    Raises:
        ConfigError: an unknown name or tag, an unreadable file, or a config outside the bounds.
        WeightsError: an ``hf-hub`` config that is neither cached nor downloadable.
    """
    text = str(model)
    spec = BACKBONES.find(text)
    if spec is not None:
        from open_clip import get_model_config

        return BackboneSource(config=check_config(get_model_config(spec.config_name), spec.name), name=spec.name)
    if text.startswith(TIMM_PREFIX):
        return _timm_named(text)
    if text.startswith(HF_HUB_PREFIX):
        return _hub_config(text, cache_dir)
    named = _open_clip_named(text)
    if named is not None:
        return named
    path = Path(text)
    if paths and (text.endswith(".json") or path.exists()):
        return _custom(path)
    raise ConfigError(
        f"unknown model {text[:120]!r}; choose one of {', '.join(BACKBONES.names())}, an open_clip model "
        "(open_clip.list_models(), NAME or NAME:TAG), hf-hub:ORG/NAME, timm:NAME, or a config JSON path"
    )


def build_visual(source: BackboneSource, *, meta: bool = False) -> nn.Module:
    """Build the randomly initialised vision tower; ``meta`` allocates nothing (for counting)."""
    with torch.device("meta") if meta else nullcontext():
        return source.kind.build(source.config)


def backbone_depth(model: str | os.PathLike[str]) -> int:
    """How many transformer blocks the backbone's vision tower has (what ``blocks`` 'all' adapts),
    counted on the meta device.

    Raises:
        ConfigError: ``model`` names no backbone, or MoLE finds no blocks in its tower.
    """
    from .mole import find_blocks

    return len(find_blocks(build_visual(resolve_backbone(model), meta=True)).blocks)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read tensors from safetensors, a PyTorch zip archive, or a legacy (pre-zip) torch file.

    Nothing here runs code from the file. Zip archives, ``torch.save`` files and OpenAI's TorchScript
    ``.pt`` releases alike, are read by :mod:`.torch_archive`, which rebuilds only tensors and plain
    data; the rare legacy torch files go through ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_safetensors(str(path))
        if is_zip_file(path):
            data = read_torch_archive(path)
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"cannot read weights file {path}: {str(exc).splitlines()[0]}") from None
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in data.items()}


def load_visual_weights(visual: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load a vision state dict strictly, naming missing, unexpected and mis-shaped keys.

    The tensors are assigned rather than copied, so ``visual`` may live on the meta device and a
    large backbone is never initialised randomly only to be overwritten.
    """
    problems = key_problems(visual.state_dict(), state)
    if problems:
        raise WeightsError(f"{origin} does not fit this backbone: " + "; ".join(problems))
    visual.load_state_dict(state, strict=True, assign=True)


def backbone_weights_file(
    source: BackboneSource, weights: str | os.PathLike[str] | None, cache_dir: str | None = None
) -> str | None:
    """The weights file a backbone loads: ``weights`` itself, None for ``"none"`` (random), or the
    named backbone's pretrained file (the caches, then a download).

    Raises:
        WeightsError: nothing named and nothing found.
    """
    if weights is not None:
        return None if str(weights) == RANDOM_WEIGHTS else os.fspath(weights)
    return resolve_weights(source.weights_location(), cache_dir)


def load_backbone(
    source: BackboneSource,
    weights: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | None = None,
    seed: int = 0,
) -> nn.Module:
    """Build the vision tower of ``source`` and fill it with weights.

    Args:
        source: the backbone to build.
        weights: a weights file, ``"none"`` for a seeded random init, or None to resolve the
            named backbone's pretrained weights (cache, then download).
        cache_dir: where open_clip and Hugging Face keep downloads.
        seed: seed of the random init, so that random backbones are reproducible.

    Raises:
        WeightsError: no weights could be found, read, or fitted to the model.
    """
    path = backbone_weights_file(source, weights, cache_dir)
    if path is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_visual(source)
    state = source.kind.visual_state(read_state_dict(path), path)
    visual = build_visual(source, meta=True)
    load_visual_weights(visual, state, path)
    if any(buffer.is_meta for buffer in visual.buffers()):
        # Buffers computed at construction and never saved (PE's rotary tables) exist only in a real build.
        visual = build_visual(source)
        load_visual_weights(visual, state, path)
    return visual
