"""What backbones this installation can build offline, and whose pretrained weights are already cached.

``aigdetect models --backbones`` renders it; nothing here touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AigdetectError
from .backbones import BackboneSource, resolve_backbone
from .hub import cached_weights
from .zoo import BACKBONES


@dataclass(frozen=True)
class BackboneEntry:
    """One buildable backbone.

    Attributes:
        name: what ``--model`` takes.
        family: ``open_clip`` or ``timm``.
        image_size: its input size.
        weights: the cached weights file, or None when it would have to be downloaded (or passed).
    """

    name: str
    family: str
    image_size: int
    weights: str | None


def _entry(source: BackboneSource, cache_dir: str | None) -> BackboneEntry:
    try:
        found, _ = cached_weights(source.weights_location(), cache_dir)
    except AigdetectError:
        found = None
    return BackboneEntry(source.label(), source.family, source.image_size, found)


def list_backbones(cache_dir: str | None = None) -> list[BackboneEntry]:
    """The short aliases, then every open_clip ViT config with each of its pretrained tags (configs
    MoLE cannot adapt, such as ResNets, are left out). ``timm:NAME`` takes any timm ViT besides."""
    import open_clip
    from open_clip.pretrained import list_pretrained_tags_by_model

    entries = [_entry(resolve_backbone(name), cache_dir) for name in BACKBONES.names()]
    for model in open_clip.list_models():
        names = [f"{model}:{tag}" for tag in list_pretrained_tags_by_model(model)] or [model]
        for name in names:
            try:
                source = resolve_backbone(name, paths=False)
            except AigdetectError:
                break
            entries.append(_entry(source, cache_dir))
    return entries
