"""The built-in UnivFD detector is the released probe, converted without loss."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from aigdetect import load_detector
from aigdetect.errors import ConfigError
from aigdetect.models.checkpoint import read_checkpoint
from aigdetect.models.zoo import DEFAULT_DETECTOR, DETECTORS, builtin_path

RELEASED = Path(__file__).resolve().parents[2] / "shared" / "weights" / "univfd_vitl14_fc_weights.pth"


def test_registry_lists_the_default_and_refuses_unknown_names():
    assert DETECTORS.names() == [DEFAULT_DETECTOR]
    assert builtin_path("vitl14") is None
    with pytest.raises(ConfigError, match="unknown built-in detector .univfd.; choose one of univfd-vitl14"):
        DETECTORS.get("univfd")


def test_shipped_file_describes_a_linear_probe_on_vitl14():
    tensors, meta = read_checkpoint(builtin_path(DEFAULT_DETECTOR))
    assert set(tensors) == {"head.weight", "head.bias"}
    assert tensors["head.weight"].shape == (1, 768) and tensors["head.bias"].shape == (1,)
    assert meta["backbone"]["name"] == "vitl14" and meta["mole"]["blocks"] == 0
    assert meta["threshold"] == 0.5 and "Ojha" in meta["provenance"]["source"]
    assert (builtin_path(DEFAULT_DETECTOR).parent / "UNIVFD_LICENSE").read_text().startswith("MIT License")


@pytest.mark.skipif(not RELEASED.exists(), reason="the released UnivFD file is not beside this checkout")
def test_shipped_head_equals_the_released_weights():
    digest = hashlib.sha256(RELEASED.read_bytes()).hexdigest()
    tensors, meta = read_checkpoint(builtin_path(DEFAULT_DETECTOR))
    assert meta["provenance"]["converted_from_sha256"] == digest
    released = torch.load(RELEASED, map_location="cpu", weights_only=True)
    assert torch.equal(tensors["head.weight"], released["weight"].float())
    assert torch.equal(tensors["head.bias"], released["bias"].float())


@pytest.mark.slow
def test_builtin_loads_onto_a_vitl14_backbone():
    with pytest.raises(ConfigError, match="trained on pretrained vitl14 features"):
        load_detector(DEFAULT_DETECTOR, backbone_weights="none")
    detector = load_detector(DEFAULT_DETECTOR, backbone_weights="none", allow_random_backbone=True)
    assert detector.name == f"{DEFAULT_DETECTOR}+random-backbone"
    assert detector.image_size == 224 and detector.visual.output_dim == 768
    assert len(detector.visual.transformer.resblocks) == 24 and not detector.bypasses
    assert detector.parameter_counts()["trainable_params"] == 769
