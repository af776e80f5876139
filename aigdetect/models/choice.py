"""Which detector a command uses: a built-in one, the built-in head of a backbone, or a checkpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import ConfigError
from .zoo import BACKBONES, DEFAULT_DETECTOR, DETECTORS, RANDOM_WEIGHTS, builtin_path


@dataclass(frozen=True)
class DetectorChoice:
    """The detector options every scoring command shares; ``factory.load_chosen`` loads it."""

    checkpoint: str | None = field(
        default=None,
        metadata={"help": f"Detector checkpoint (.safetensors) from 'aigdetect train'. Default: the built-in {DEFAULT_DETECTOR}."},
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": f"Built-in detector ({', '.join(DETECTORS.names())}), or the backbone of one "
            f"({', '.join(sorted({d.backbone for d in DETECTORS.list()}))}) (default: {DEFAULT_DETECTOR}). Other backbones "
            "have no built-in detector: train one, then pass its `checkpoint`. With `checkpoint`, only checked against it."
        },
    )
    backbone_weights: str | None = field(
        default=None,
        metadata={
            "help": f"Backbone weights file (OpenAI .pt, open_clip state dict, safetensors), or '{RANDOM_WEIGHTS}' for "
            "random weights. Default: the open_clip / Hugging Face cache, then a download."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where open_clip and Hugging Face keep downloaded weights."})
    allow_random_backbone: bool = field(
        default=False,
        metadata={
            "help": f"Let `backbone_weights` '{RANDOM_WEIGHTS}' replace the pretrained backbone of a trained detector "
            "(cost measurements only: its scores mean nothing); its detector id is marked +random-backbone."
        },
    )


def resolve_choice(choice: DetectorChoice) -> str | os.PathLike[str]:
    """The checkpoint file the options name: ``checkpoint``, a built-in detector, or a backbone's built-in.

    Raises:
        ConfigError: ``model`` names no built-in detector or backbone with a built-in detector.
    """
    if choice.checkpoint is not None:
        return choice.checkpoint
    name = choice.model or DEFAULT_DETECTOR
    if DETECTORS.find(name) is None:
        matches = [d.name for d in DETECTORS.list() if d.backbone == name]
        if not matches:
            builtins = ", ".join(f"{d.name} on {d.backbone}" for d in DETECTORS.list())
            if BACKBONES.find(name) is None:
                raise ConfigError(f"no built-in detector or backbone named {name!r} (built-ins: {builtins})")
            raise ConfigError(
                f"the backbone {name!r} has no built-in detector (built-ins: {builtins}); train one with "
                f"'aigdetect train --model {name}' and pass its `checkpoint`"
            )
        name = matches[0]
    path = builtin_path(name)
    assert path is not None
    return path
