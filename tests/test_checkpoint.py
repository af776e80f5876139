"""Checkpoints round-trip exactly; damaged or mismatched files are refused with a clear message."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch
from conftest import make_tiny_detector
from safetensors.torch import load_file, save_file

from aigdetect import MoLEConfig, load_detector, save_detector, score_images
from aigdetect.errors import CheckpointError
from aigdetect.models.checkpoint import METADATA_KEY, read_checkpoint


def _images(count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (40 + 3 * i, 36, 3), dtype=np.uint8) for i in range(count)]


@pytest.mark.parametrize(
    "mole",
    [MoLEConfig(), MoLEConfig(blocks=0), MoLEConfig(blocks=2, router="proto", top_k=2, cls_expert=True)],
    ids=["linear", "probe", "proto"],
)
def test_round_trip_gives_identical_scores(tmp_path, mole):
    detector = make_tiny_detector(mole)
    detector.threshold = 0.37
    path = tmp_path / "model.safetensors"
    save_detector(detector, path)
    loaded = load_detector(path)
    assert np.array_equal(score_images(loaded, _images()), score_images(detector, _images()))
    assert loaded.threshold == 0.37
    assert loaded.mole == mole


def test_file_holds_adapters_and_the_custom_backbone(tiny_checkpoint):
    tensors, meta = read_checkpoint(tiny_checkpoint)
    assert meta["backbone"]["name"] is None and meta["backbone_embedded"] is True
    assert meta["mole"]["expert_ranks"] == [4, 8, 16]
    assert {"head.weight", "head.bias", "adapters.3.shared.lora_A", "adapters.1.router.weight"} <= set(tensors)
    assert "backbone.transformer.resblocks.3.mlp.c_fc.weight" in tensors
    assert not any(".bypass." in k or ".mlp.base." in k for k in tensors)


def test_truncated_file_is_refused(tiny_checkpoint):
    data = tiny_checkpoint.read_bytes()
    tiny_checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        load_detector(tiny_checkpoint)


def test_garbage_and_missing_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load_detector(garbage)
    with pytest.raises(CheckpointError, match="checkpoint .*: no such file"):
        load_detector(tmp_path / "absent.safetensors")


def test_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not an aigdetect checkpoint"):
        load_detector(path)


def _rewrite(path, tensors=None, meta_update=None):
    original, meta = read_checkpoint(path)
    meta.update(meta_update or {})
    save_file(tensors if tensors is not None else original, str(path), metadata={METADATA_KEY: json.dumps(meta)})


def test_missing_and_unexpected_keys_are_named(tiny_checkpoint):
    tensors = load_file(str(tiny_checkpoint))
    del tensors["adapters.2.experts.1.lora_B"]
    tensors["adapters.2.extra"] = torch.zeros(1)
    _rewrite(tiny_checkpoint, tensors)
    with pytest.raises(CheckpointError) as info:
        load_detector(tiny_checkpoint)
    message = str(info.value)
    assert "missing: adapters.2.experts.1.lora_B" in message and "unexpected: adapters.2.extra" in message


def test_config_that_does_not_match_the_tensors_is_refused(tiny_checkpoint):
    _rewrite(tiny_checkpoint, meta_update={"mole": MoLEConfig(expert_ranks=(4, 8, 32)).to_dict()})
    with pytest.raises(CheckpointError, match="shape mismatch: adapters.1.experts.2.lora_A"):
        load_detector(tiny_checkpoint)


def test_newer_format_version_is_refused(tiny_checkpoint):
    _rewrite(tiny_checkpoint, meta_update={"format_version": 99})
    with pytest.raises(CheckpointError, match="upgrade aigdetect"):
        load_detector(tiny_checkpoint)


def test_saved_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "shared.safetensors"
        save_detector(make_tiny_detector(), path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["shared.safetensors"]


def test_stored_backbone_is_kept_when_weights_none_is_passed(tmp_path):
    detector = make_tiny_detector(seed=5)
    path = tmp_path / "seed5.safetensors"
    save_detector(detector, path)
    loaded = load_detector(path, backbone_weights="none")
    assert np.array_equal(score_images(loaded, _images()), score_images(detector, _images()))


def _rewrite_metadata(path, change) -> None:
    tensors, meta = read_checkpoint(path)
    change(meta)
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta)})


def test_checkpoint_records_the_preprocessing_and_scores_with_it(tmp_path):
    """A detector with other statistics keeps them through a checkpoint: its scores differ from the
    same weights under the CLIP defaults and equal the saved detector's."""
    from aigdetect.data.preprocess import PreprocessConfig
    from aigdetect.models.detector import Detector

    tiny = make_tiny_detector(MoLEConfig(blocks=0))
    siglip = PreprocessConfig(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear")
    detector = Detector(tiny.visual, tiny.source, tiny.mole, preprocess=siglip)
    detector.head.load_state_dict(tiny.head.state_dict())
    path = tmp_path / "siglip.safetensors"
    save_detector(detector, path)
    assert read_checkpoint(path)[1]["preprocess"] == {
        "size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize_mode": "none", "interpolation": "bilinear"
    }  # fmt: skip
    loaded = load_detector(path)
    assert loaded.preprocess == siglip
    assert np.array_equal(score_images(loaded, _images()), score_images(detector, _images()))
    assert not np.array_equal(score_images(loaded, _images()), score_images(tiny, _images()))


def test_checkpoint_without_preprocessing_loads_with_the_clip_defaults(tiny_checkpoint):
    from aigdetect.data.preprocess import OPENAI_MEAN, OPENAI_STD

    reference = score_images(load_detector(tiny_checkpoint), _images())
    _rewrite_metadata(tiny_checkpoint, lambda meta: meta.pop("preprocess"))
    legacy = load_detector(tiny_checkpoint)
    assert (legacy.preprocess.size, legacy.preprocess.mean, legacy.preprocess.std) == (32, OPENAI_MEAN, OPENAI_STD)
    assert np.array_equal(score_images(legacy, _images()), reference)


@pytest.mark.parametrize(
    ("preprocess", "message"),
    [({"size": 48}, "not the custom backbone's input size 32"), ({"std": [0, 1, 1]}, "std"), ([], "wrong type")],
)
def test_checkpoint_with_bad_preprocessing_is_refused(tiny_checkpoint, preprocess, message):
    _rewrite_metadata(tiny_checkpoint, lambda meta: meta.update(preprocess=preprocess))
    with pytest.raises(CheckpointError, match=message):
        load_detector(tiny_checkpoint)
