"""Built-in detectors shipped inside the package, as checkpoints in our own format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

WEIGHTS_DIR = Path(__file__).with_name("weights")
DEFAULT_DETECTOR = "univfd-vitl14"


@dataclass(frozen=True)
class BuiltinDetector:
    """A shipped detector: the file under ``weights/`` and where its numbers come from."""

    name: str
    filename: str
    backbone: str
    adapted_blocks: int
    summary: str
    source: str
    license: str


_REGISTRY: dict[str, BuiltinDetector] = {
    d.name: d
    for d in (
        BuiltinDetector(
            name="univfd-vitl14",
            filename="univfd_vitl14_head.safetensors",
            backbone="vitl14",
            adapted_blocks=0,
            summary="UnivFD linear probe (768 -> 1) on frozen CLIP ViT-L/14 features; MoLE with no adapted blocks",
            source="Ojha, Li, Lee: Towards Universal Fake Image Detectors that Generalize Across Generative "
            "Models, CVPR 2023 (UniversalFakeDetect, pretrained_weights/fc_weights.pth)",
            license="MIT (see UNIVFD_LICENSE)",
        ),
    )
}


def list_detectors() -> list[BuiltinDetector]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_builtin(name: str) -> BuiltinDetector:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown built-in detector {name!r}; built-ins are: {known}") from None


def builtin_path(name: str) -> Path | None:
    """The shipped checkpoint of a built-in detector, or None when ``name`` is not one."""
    entry = _REGISTRY.get(name)
    return WEIGHTS_DIR / entry.filename if entry else None
