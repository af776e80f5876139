"""CLIP ViT image encoders: the registry, model configs, and where their weights come from.

Only the vision tower is built; the text tower plays no part in detection. Weights are resolved in a
fixed order: an explicit file, then the open_clip / Hugging Face caches, then a download. A failure
at every step becomes one ``WeightsError`` that says where we looked and how to pass a file.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from open_clip import get_model_config
from open_clip.model import CLIPVisionCfg, _build_vision_tower
from open_clip.pretrained import get_pretrained_cfg
from safetensors.torch import load_file as load_safetensors
from torch import nn

from ..data.preprocess import PreprocessConfig
from ..errors import ConfigError, InputFileError, WeightsError
from ..fileio import open_input, read_capped
from ..formats.torch_archive import is_zip_file, read_torch_archive
from .state_keys import key_problems
from .zoo import BACKBONES, RANDOM_WEIGHTS, BackboneSpec

MAX_CONFIG_BYTES = 1 << 20
"""A model config JSON is a few hundred bytes; anything over this is refused unread."""

MAX_IMAGE_SIZE = 1024
MAX_PATCHES = 1024
"""Patches per image (a 32 x 32 grid): every released CLIP has at most 729 (ViT-H/14 at 378 pixels)."""
MAX_WIDTH = 4096
MAX_LAYERS = 128
MAX_HEADS = 64
MAX_MLP_RATIO = 16.0
MAX_EMBED_DIM = 8192
# The released CLIP ViTs stay far below every bound: ViT-bigG/14 has width 1664, 48 layers, 16 heads.

_POOL_TYPES = ("tok", "avg")
_POS_EMBED_TYPES = ("learnable", "sin_cos_2d")


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

    @property
    def preprocess(self) -> PreprocessConfig:
        """The OpenAI CLIP statistics at the tower's input size."""
        return PreprocessConfig(size=self.image_size)

    def label(self) -> str:
        return self.name or "custom"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config}

    @classmethod
    def from_dict(cls, data: Any) -> BackboneSource:
        """The backbone a checkpoint names: a registry name (never a path: a checkpoint must not make
        us open files), or an embedded config, checked like a user's.

        Raises:
            ConfigError: neither, an unknown name, or a config outside the bounds.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"backbone entry must be an object, got {type(data).__name__}")
        name = data.get("name")
        if name is not None:
            if not isinstance(name, str) or BACKBONES.find(name) is None:
                raise ConfigError(
                    f"backbone {str(name)[:80]!r} is not a built-in backbone ({', '.join(BACKBONES.names())}); "
                    "a checkpoint names one of those or embeds its config"
                )
            return resolve_backbone(name)
        if "config" not in data:
            raise ConfigError("backbone entry has neither a name nor a config")
        return cls(config=_check_config(data["config"], "checkpoint"), name=None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded_int(value: Any, key: str, low: int, high: int, origin: str) -> int:
    if not _is_int(value) or not low <= value <= high:
        raise ConfigError(f"{origin}: {key} must be an integer in {low}..{high}, got {str(value)[:40]}")
    return value


def _check_heads(vision: dict[str, Any], width: int, origin: str) -> None:
    head_width = _bounded_int(vision.get("head_width", 64), "vision_cfg head_width", 1, width, origin)
    heads = width // head_width
    if heads > MAX_HEADS or width % heads:
        raise ConfigError(
            f"{origin}: vision_cfg width {width} / head_width {head_width} gives {heads} attention heads; "
            f"they must divide the width, at most {MAX_HEADS}"
        )


def _check_vision(vision: dict[str, Any], origin: str) -> None:
    """Bound every size of a ViT vision tower before anything is built, and refuse the options it
    does not support (an option left at open_clip's default is inert and accepted)."""
    size = vision.get("image_size", 224)
    sizes = size if isinstance(size, (list, tuple)) and len(size) == 2 else [size]
    sizes = [_bounded_int(v, "vision_cfg image_size", 1, MAX_IMAGE_SIZE, origin) for v in sizes]
    patch = _bounded_int(vision.get("patch_size", 16), "vision_cfg patch_size", 1, min(sizes), origin)
    patches = (sizes[0] // patch) * (sizes[-1] // patch)
    if patches > MAX_PATCHES:
        raise ConfigError(
            f"{origin}: vision_cfg image_size {size} / patch_size {patch} gives {patches} patches, over {MAX_PATCHES}"
        )
    width = _bounded_int(vision.get("width", 768), "vision_cfg width", 1, MAX_WIDTH, origin)
    _bounded_int(vision.get("layers", 12), "vision_cfg layers", 1, MAX_LAYERS, origin)
    _check_heads(vision, width, origin)
    ratio = vision.get("mlp_ratio", 4.0)
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio <= MAX_MLP_RATIO or int(width * ratio) < 1:
        raise ConfigError(f"{origin}: vision_cfg mlp_ratio must be a number in (0, {MAX_MLP_RATIO:g}], got {str(ratio)[:40]}")
    for key, allowed in (("pool_type", _POOL_TYPES), ("pos_embed_type", _POS_EMBED_TYPES)):
        if vision.get(key, allowed[0]) not in allowed:
            raise ConfigError(f"{origin}: vision_cfg {key} must be one of {', '.join(allowed)}")
    for key in ("no_ln_pre", "final_ln_after_pool"):
        if not isinstance(vision.get(key, False), bool):
            raise ConfigError(f"{origin}: vision_cfg {key} must be true or false")
    dropout = vision.get("patch_dropout", 0.0)
    scale = vision.get("ls_init_value")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1 or (scale is not None and not _finite(scale)):
        raise ConfigError(f"{origin}: vision_cfg patch_dropout must be in [0, 1) and ls_init_value a finite number")
    checked = {"image_size", "patch_size", "width", "layers", "head_width", "mlp_ratio", "pool_type", "pos_embed_type",
               "no_ln_pre", "final_ln_after_pool", "patch_dropout", "ls_init_value"}  # fmt: skip
    defaults = {f.name: f.default for f in dataclasses.fields(CLIPVisionCfg)}
    other = sorted(k for k in vision if k not in checked and (k not in defaults or vision[k] != defaults[k]))
    if other:
        raise ConfigError(f"{origin}: unsupported vision_cfg keys for a ViT detector: {', '.join(map(str, other))[:200]}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_config(config: Any, origin: str) -> dict[str, Any]:
    """An open_clip model config for a ViT vision tower, every size bounded (only ``embed_dim``,
    ``quick_gelu`` and ``vision_cfg`` are read; the text tower is never built).

    Raises:
        ConfigError: not such a config, a size outside its bound (named with the bound), or an
            option this detector does not support.
    """
    if not isinstance(config, dict) or not isinstance(config.get("vision_cfg"), dict) or "embed_dim" not in config:
        raise ConfigError(f"{origin}: not an open_clip model config (needs 'embed_dim' and 'vision_cfg')")
    vision = config["vision_cfg"]
    if isinstance(vision.get("layers"), (list, tuple)) or vision.get("timm_model_name"):
        raise ConfigError(f"{origin}: only ViT vision towers are supported (no ResNet or timm towers)")
    _bounded_int(config["embed_dim"], "embed_dim", 1, MAX_EMBED_DIM, origin)
    if not isinstance(config.get("quick_gelu", False), bool):
        raise ConfigError(f"{origin}: quick_gelu must be true or false")
    _check_vision(vision, origin)
    return copy.deepcopy(config)


def _read_config(path: Path) -> Any:
    """A user's config JSON, opened like any input: a regular file (never a FIFO or a device), capped."""
    try:
        handle, _ = open_input(path, follow_symlinks=True)
        with handle:
            text = read_capped(handle, MAX_CONFIG_BYTES, str(path))
        return json.loads(text)
    except InputFileError as exc:
        if exc.reason == "missing":
            raise ConfigError(f"model config not found: {path}") from None
        raise ConfigError(f"cannot read model config {path}: {exc.reason}: {exc.detail}") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"cannot read model config {path}: {str(exc)[:200]}") from None


def resolve_backbone(model: str | os.PathLike[str]) -> BackboneSource:
    """Turn ``--model`` (a registry name or the path of an open_clip config JSON) into a source.

    Raises:
        ConfigError: an unknown name, an unreadable file, or a config outside the bounds.
    """
    text = str(model)
    spec = BACKBONES.find(text)
    if spec is not None:
        return BackboneSource(config=copy.deepcopy(get_model_config(spec.config_name)), name=spec.name)
    path = Path(text)
    if text.endswith(".json") or path.exists():
        return BackboneSource(config=_check_config(_read_config(path), str(path)), name=None)
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


HUB_CONNECT_TIMEOUT_S = 5
"""Seconds the Hugging Face hub (or the mirror in ``HF_ENDPOINT``) has to answer a metadata request
before a download is given up; ``HF_HUB_ETAG_TIMEOUT`` overrides it."""


def _hub_files(cfg: dict[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """The hub repository of a pretrained config and the weight files to try, safetensors first."""
    hub = cfg.get("hf_hub", "")
    if not hub:
        return None
    repo_id, filename = os.path.split(hub.rstrip("/") + ("/" if hub.endswith("/") else ""))
    return repo_id, ("open_clip_model.safetensors", filename or "open_clip_pytorch_model.bin")


def _cached_pretrained(spec: BackboneSpec, cache_dir: str | None) -> tuple[str | None, list[str]]:
    """Look for already-downloaded weights without touching the network."""
    cfg = get_pretrained_cfg(spec.pretrained_model, spec.pretrained_tag)
    looked: list[str] = []
    hub = _hub_files(cfg)
    if hub is not None:
        from huggingface_hub import try_to_load_from_cache

        repo_id, names = hub
        looked.append(f"the Hugging Face cache ({repo_id})")
        for name in names:
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


def _offline() -> bool:
    """huggingface_hub reads HF_HUB_OFFLINE when it is imported; a caller may set it later."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _download_reason(exc: BaseException) -> str:
    """Why a hub download failed, in one line."""
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set"
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    if isinstance(exc, WeightsError):
        return detail
    return f"{constants.ENDPOINT}: {detail}"


def _hub_timeout() -> float:
    from huggingface_hub import constants

    return constants.HF_HUB_ETAG_TIMEOUT if "HF_HUB_ETAG_TIMEOUT" in os.environ else HUB_CONNECT_TIMEOUT_S


def _hub_has(repo_id: str, name: str) -> bool:
    """Whether the hub has the file, from one metadata request without retries; a failure other
    than "not found" (no network, a refused connection, a server error) is raised at once."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, name), timeout=_hub_timeout())
    except EntryNotFoundError:
        return False
    return True


def _download(repo_id: str, names: tuple[str, ...], cache_dir: str | None) -> str:
    """Download the first of ``names`` that the hub has.

    huggingface_hub does the work, so ``HF_ENDPOINT`` (mirrors), ``HF_HUB_OFFLINE``, proxies and its
    timeout settings apply. ``_hub_has`` asks first because ``hf_hub_download`` alone retries a
    failed request six times with back-off: a minute or more on a machine without network.

    Raises:
        WeightsError: the hub has none of them.
    """
    from huggingface_hub import constants, hf_hub_download

    name = next((n for n in names if _hub_has(repo_id, n)), None)
    if name is None:
        raise WeightsError(f"{constants.ENDPOINT} has none of {', '.join(names)} in {repo_id}")
    return hf_hub_download(repo_id, name, cache_dir=cache_dir, etag_timeout=_hub_timeout())


def resolve_weights(spec: BackboneSpec, cache_dir: str | None = None) -> str:
    """Find the OpenAI weights of a registry backbone: the caches first, then a download.

    Raises:
        WeightsError: nothing cached and the download failed, with one line saying why (offline,
            the hub or mirror unreachable, the file missing) and how to pass a file instead.
    """
    found, looked = _cached_pretrained(spec, cache_dir)
    if found:
        return found
    cfg = get_pretrained_cfg(spec.pretrained_model, spec.pretrained_tag)
    where = f"no weights for {spec.name} ({spec.pretrained_model}, {spec.pretrained_tag}): looked in {' and '.join(looked)}"
    hint = "pass a local file with `backbone_weights` PATH"
    hub = _hub_files(cfg)
    if hub is None:
        raise WeightsError(f"{where}; open_clip knows no hub download for it; {hint}")
    if _offline():
        raise WeightsError(f"{where}; cannot download: HF_HUB_OFFLINE is set; {hint}")
    try:
        return _download(*hub, cache_dir)
    except Exception as exc:
        raise WeightsError(f"{where}; cannot download: {_download_reason(exc)}; {hint}") from None


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
