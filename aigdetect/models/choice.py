"""Which detector a command uses: a built-in one, the built-in head of a backbone, or a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from .zoo import BACKBONES, DEFAULT_DETECTOR, DETECTORS, RANDOM_WEIGHTS


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
            "help": f"Built-in detector ({', '.join(DETECTORS.names())}) or a backbone ({', '.join(BACKBONES.names())}) "
            f"whose built-in detector to use (default: {DEFAULT_DETECTOR}). With `checkpoint`, only checked against it."
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
