"""The named presets: CLIP backbones we know how to fetch, and the detectors shipped inside the package.

Both tables are plain data, so listing them (for ``-h`` and ``aigdetect models``) imports no model code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..registry import Registry

WEIGHTS_DIR = Path(__file__).with_name("weights")
DEFAULT_DETECTOR = "univfd-vitl14"
RANDOM_WEIGHTS = "none"
"""``backbone_weights`` value for a seeded random backbone (tests, cost measurements)."""


@dataclass(frozen=True)
class BackboneSpec:
    """A named CLIP backbone: its open_clip config name and the pretrained tag we load."""

    name: str
    config_name: str
    pretrained_model: str
    pretrained_tag: str
    summary: str


BACKBONES: Registry[BackboneSpec] = Registry(
    "backbone",
    (
        BackboneSpec("vitb16", "ViT-B-16-quickgelu", "ViT-B-16", "openai", "CLIP ViT-B/16, OpenAI weights"),
        BackboneSpec("vitb32", "ViT-B-32-quickgelu", "ViT-B-32", "openai", "CLIP ViT-B/32, OpenAI weights"),
        BackboneSpec("vitl14", "ViT-L-14-quickgelu", "ViT-L-14", "openai", "CLIP ViT-L/14, OpenAI weights"),
    ),
)


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


DETECTORS: Registry[BuiltinDetector] = Registry(
    "built-in detector",
    (
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
    ),
)


def builtin_path(name: str) -> Path | None:
    """The shipped checkpoint of a built-in detector, or None when ``name`` is not one."""
    entry = DETECTORS.find(name)
    return WEIGHTS_DIR / entry.filename if entry else None
