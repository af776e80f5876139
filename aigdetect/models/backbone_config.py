"""Checks on backbone configs before anything is built: every size bounded, unsupported options
refused. A config may come from a user's JSON, a Hugging Face repository or a hostile checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from open_clip.model import CLIPVisionCfg

from ..errors import ConfigError, InputFileError
from ..fileio import open_input, read_capped

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


def check_config(config: Any, origin: str) -> dict[str, Any]:
    """An open_clip model config for a ViT or timm vision tower, every size bounded (only
    ``embed_dim``, ``quick_gelu`` and ``vision_cfg`` are read; the text tower is never built).

    Raises:
        ConfigError: not such a config, a size outside its bound (named with the bound), or an
            option this detector does not support.
    """
    if not isinstance(config, dict) or not isinstance(config.get("vision_cfg"), dict) or "embed_dim" not in config:
        raise ConfigError(f"{origin}: not an open_clip model config (needs 'embed_dim' and 'vision_cfg')")
    vision = config["vision_cfg"]
    if isinstance(vision.get("layers"), (list, tuple)):
        raise ConfigError(f"{origin}: only ViT vision towers are supported (no ResNet towers)")
    _bounded_int(config["embed_dim"], "embed_dim", 1, MAX_EMBED_DIM, origin)
    if not isinstance(config.get("quick_gelu", False), bool):
        raise ConfigError(f"{origin}: quick_gelu must be true or false")
    if vision.get("timm_model_name") is not None:
        _check_timm_tower(vision, origin)
    else:
        _check_vision(vision, origin)
    return copy.deepcopy(config)


_TIMM_TOWER_KEYS = {"image_size", "timm_model_name", "timm_model_pretrained", "timm_pool", "timm_proj", "timm_proj_bias"}
_TIMM_POOLS = ("map", "avg", "token", "")
_TIMM_PROJS = ("linear", "none", None)


def _known_timm_name(name: Any, origin: str) -> str:
    """A timm architecture timm registers (its sizes are timm's own, bounded by the registry)."""
    import timm

    if not isinstance(name, str) or not timm.is_model(name):
        raise ConfigError(f"{origin}: {str(name)[:80]!r} is not a timm architecture (see timm.list_models())")
    return name


def _check_timm_tower(vision: dict[str, Any], origin: str) -> None:
    """An open_clip vision tower built by timm (SigLIP, Perception Encoder): a registered timm
    architecture, never with timm's own pretrained download, and only the options we know."""
    _known_timm_name(vision["timm_model_name"], origin)
    other = sorted(k for k in vision if k not in _TIMM_TOWER_KEYS)
    if other:
        raise ConfigError(f"{origin}: unsupported vision_cfg keys for a timm tower: {', '.join(map(str, other))[:200]}")
    if vision.get("timm_model_pretrained", False) is not False:
        raise ConfigError(f"{origin}: timm_model_pretrained must be false (weights come from `backbone_weights` or the cache)")
    if vision.get("timm_pool", "avg") not in _TIMM_POOLS or vision.get("timm_proj", "linear") not in _TIMM_PROJS:
        raise ConfigError(f"{origin}: timm_pool must be one of {_TIMM_POOLS} and timm_proj one of {_TIMM_PROJS}")
    if not isinstance(vision.get("timm_proj_bias", False), bool):
        raise ConfigError(f"{origin}: timm_proj_bias must be true or false")
    size = vision.get("image_size", 224)
    _bounded_int(
        size[0] if isinstance(size, (list, tuple)) and size else size, "vision_cfg image_size", 1, MAX_IMAGE_SIZE, origin
    )


_TIMM_KWARGS = {"img_size": MAX_IMAGE_SIZE, "patch_size": MAX_IMAGE_SIZE, "embed_dim": MAX_WIDTH, "depth": MAX_LAYERS,
                "num_heads": MAX_HEADS}  # fmt: skip


def check_timm_config(config: Any, origin: str) -> dict[str, Any]:
    """A plain timm ViT: ``{"model_name": NAME, "kwargs": {...}}``, the kwargs limited to the sizes
    a smaller variant changes (``img_size``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``),
    each bounded.

    Raises:
        ConfigError: not such a config, an unknown architecture, or a kwarg out of bounds.
    """
    if not isinstance(config, dict) or set(config) - {"model_name", "kwargs"} or not isinstance(config.get("kwargs", {}), dict):
        raise ConfigError(f"{origin}: a timm backbone config is {{'model_name': NAME, 'kwargs': {{...}}}}")
    _known_timm_name(config.get("model_name"), origin)
    kwargs = config.get("kwargs", {})
    for key, value in kwargs.items():
        if key not in _TIMM_KWARGS:
            raise ConfigError(f"{origin}: unsupported timm kwarg {str(key)[:40]!r} ({', '.join(_TIMM_KWARGS)} only)")
        _bounded_int(value, f"timm {key}", 1, _TIMM_KWARGS[key], origin)
    if "embed_dim" in kwargs and "num_heads" in kwargs and kwargs["embed_dim"] % kwargs["num_heads"]:
        raise ConfigError(f"{origin}: timm num_heads must divide embed_dim")
    return {"model_name": config["model_name"], "kwargs": dict(kwargs)}


def read_config(path: Path) -> Any:
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
