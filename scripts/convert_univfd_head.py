"""Convert UnivFD's released linear probe (fc_weights.pth) into the built-in detector checkpoint.

Run once when the shipped file changes:
    python scripts/convert_univfd_head.py ../shared/weights/univfd_vitl14_fc_weights.pth
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from aigdetect import __version__
from aigdetect.models.backbones import resolve_backbone
from aigdetect.models.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, METADATA_KEY
from aigdetect.models.config import MoLEConfig
from aigdetect.models.zoo import DETECTORS, WEIGHTS_DIR

EXPECTED_SHA256 = "477100745713bcc957beb2b40859536859b6483fd6301b3b9293151b194c7847"


def convert(source: Path, target: Path) -> None:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != EXPECTED_SHA256:
        raise SystemExit(f"{source}: sha256 {digest} is not the released file's {EXPECTED_SHA256}")
    state = torch.load(source, map_location="cpu", weights_only=True)
    entry = DETECTORS.get("univfd-vitl14")
    tensors = {"head.weight": state["weight"].float().contiguous(), "head.bias": state["bias"].float().contiguous()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "aigdetect_version": __version__,
        "name": entry.name,
        "backbone": {"name": entry.backbone, "config": resolve_backbone(entry.backbone).config},
        "backbone_embedded": False,
        "mole": MoLEConfig(blocks=0).to_dict(),
        "threshold": 0.5,
        "provenance": {"source": entry.source, "license": entry.license, "converted_from_sha256": digest},
    }
    save_file(tensors, str(target), metadata={METADATA_KEY: json.dumps(meta)})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR / DETECTORS.get("univfd-vitl14").filename)
    args = parser.parse_args()
    convert(args.source, args.out)
    print(f"wrote {args.out}")
