"""CLIP ViT image encoders: the registry, model configs, and where their weights come from.

Only the vision tower is built; the text tower plays no part in detection. Weights are resolved in a
fixed order: an explicit file, then the open_clip / Hugging Face caches, then a download. A failure
at every step becomes one ``WeightsError`` that says where we looked and how to pass a file.
"""

from __future__ import annotations

import copy
import json
import os
import socket
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from open_clip import get_model_config
from open_clip.model import _build_vision_tower
from open_clip.pretrained import download_pretrained, get_pretrained_cfg
from safetensors.torch import load_file as load_safetensors
from torch import nn

from ..errors import ConfigError, WeightsError
from .state_keys import key_problems
from .torch_archive import is_zip_file, read_torch_archive
from .zoo import BACKBONES, RANDOM_WEIGHTS, BackboneSpec


@dataclass(frozen=True)
class BackboneSource:
    """What a detector's backbone is: a registry name, or an open_clip model config of its own.

    A backbone with no registry name cannot be downloaded again, so checkpoints embed its weights.
    """

    config: dict[str, Any]
    name: str | None = None

    @property
    def downloadable(self) -> bool:
        return self.name is not None

    @property
    def quick_gelu(self) -> bool:
        return bool(self.config.get("quick_gelu", False))

    @property
    def image_size(self) -> int:
        size = self.config["vision_cfg"].get("image_size", 224)
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    def label(self) -> str:
        return self.name or "custom"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneSource:
        if data.get("name"):
            return resolve_backbone(data["name"])
        if "config" not in data:
            raise ConfigError("backbone entry has neither a name nor a config")
        return cls(config=_check_config(data["config"], "checkpoint"), name=None)


def _check_config(config: Any, origin: str) -> dict[str, Any]:
    if not isinstance(config, dict) or not isinstance(config.get("vision_cfg"), dict) or "embed_dim" not in config:
        raise ConfigError(f"{origin}: not an open_clip model config (needs 'embed_dim' and 'vision_cfg')")
    vision = config["vision_cfg"]
    if isinstance(vision.get("layers"), (list, tuple)) or vision.get("timm_model_name"):
        raise ConfigError(f"{origin}: only ViT vision towers are supported (no ResNet or timm towers)")
    return copy.deepcopy(config)


def resolve_backbone(model: str | os.PathLike[str]) -> BackboneSource:
    """Turn ``--model`` (a registry name or the path of an open_clip config JSON) into a source."""
    text = str(model)
    spec = BACKBONES.find(text)
    if spec is not None:
        return BackboneSource(config=copy.deepcopy(get_model_config(spec.config_name)), name=spec.name)
    path = Path(text)
    if text.endswith(".json") or path.exists():
        try:
            config = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"model config not found: {path}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read model config {path}: {exc}") from None
        return BackboneSource(config=_check_config(config, str(path)), name=None)
    raise ConfigError(f"unknown model {text!r}; choose one of {', '.join(BACKBONES.names())} or pass a config JSON path")


def backbone_depth(model: str | os.PathLike[str]) -> int:
    """How many transformer blocks the backbone's vision tower has (what ``blocks`` 'all' adapts).

    Raises:
        ConfigError: ``model`` names no backbone, or its config gives no block count.
    """
    layers = resolve_backbone(model).config.get("vision_cfg", {}).get("layers")
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        raise ConfigError(f"model {model} has no transformer depth in its vision_cfg.layers ({layers!r})")
    return layers


def build_visual(source: BackboneSource, *, meta: bool = False) -> nn.Module:
    """Build the randomly initialised vision tower; ``meta`` allocates nothing (for counting)."""
    config = source.config
    with torch.device("meta") if meta else nullcontext():
        return _build_vision_tower(config["embed_dim"], config["vision_cfg"], quick_gelu=source.quick_gelu)


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


def visual_state_dict(state: dict[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
    """Pick the vision tower's tensors out of a full CLIP state dict (OpenAI or open_clip keys)."""
    if any(k.startswith("visual.") for k in state):
        return {k[len("visual."):]: v.float() for k, v in state.items() if k.startswith("visual.")}
    if "conv1.weight" in state:
        return {k: v.float() for k, v in state.items()}
    raise WeightsError(f"{origin} is not a CLIP state dict: no 'visual.*' or 'conv1.weight' keys")


def load_visual_weights(visual: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load a vision state dict strictly, naming missing, unexpected and mis-shaped keys.

    The tensors are assigned rather than copied, so ``visual`` may live on the meta device and a
    large backbone is never initialised randomly only to be overwritten.
    """
    problems = key_problems(visual.state_dict(), state)
    if problems:
        raise WeightsError(f"{origin} does not fit this backbone: " + "; ".join(problems))
    visual.load_state_dict(state, strict=True, assign=True)


def _cached_pretrained(spec: BackboneSpec, cache_dir: str | None) -> tuple[str | None, list[str]]:
    """Look for already-downloaded weights without touching the network."""
    cfg = get_pretrained_cfg(spec.pretrained_model, spec.pretrained_tag)
    looked: list[str] = []
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub.rstrip("/") + ("/" if hub.endswith("/") else ""))
        looked.append(f"the Hugging Face cache ({repo_id})")
        for name in ("open_clip_model.safetensors", filename or "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(found, str):
                return found, looked
    url = cfg.get("url", "")
    if url:
        candidate = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        looked.append(str(candidate))
        if candidate.is_file():
            return str(candidate), looked
    return None, looked


def _offline_reason(cfg: dict[str, Any]) -> str | None:
    """Why a download cannot work right now, found in seconds rather than after minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    host = "huggingface.co" if cfg.get("hf_hub") else urlparse(cfg.get("url", "")).hostname
    if not host:
        return "no download location is known"
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as exc:
        return f"{host} is unreachable ({exc.strerror or exc})"
    return None


def resolve_weights(spec: BackboneSpec, cache_dir: str | None = None) -> str:
    """Find the OpenAI weights of a registry backbone: the caches first, then a download."""
    found, looked = _cached_pretrained(spec, cache_dir)
    if found:
        return found
    cfg = get_pretrained_cfg(spec.pretrained_model, spec.pretrained_tag)
    where = f"no weights for {spec.name} ({spec.pretrained_model}, {spec.pretrained_tag}): looked in {' and '.join(looked)}"
    hint = "pass a local file with `backbone_weights` PATH"
    offline = _offline_reason(cfg)
    if offline:
        raise WeightsError(f"{where}; cannot download: {offline}; {hint}")
    try:
        path = download_pretrained(cfg, cache_dir=cache_dir)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{where}; the download failed ({reason}); {hint}") from None
    if not path:
        raise WeightsError(f"{where}; open_clip knows no download for it; {hint}")
    return path


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
            registry's OpenAI weights (cache, then download).
        cache_dir: where open_clip and Hugging Face keep downloads.
        seed: seed of the random init, so that random backbones are reproducible.

    Raises:
        WeightsError: no weights could be found, read, or fitted to the model.
    """
    random_init = weights is not None and str(weights) == RANDOM_WEIGHTS
    if weights is None:
        if not source.downloadable:
            raise WeightsError(
                "a model given as a config JSON has no downloadable weights; pass `backbone_weights` FILE "
                "(or 'none' for random weights)"
            )
        weights = resolve_weights(BACKBONES.get(source.name), cache_dir)
    if random_init:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_visual(source)
    state = visual_state_dict(read_state_dict(weights), str(weights))
    visual = build_visual(source, meta=True)
    load_visual_weights(visual, state, str(weights))
    return visual
