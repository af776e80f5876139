"""Backbone weights: every accepted format loads to the same model, and bad weights fail clearly."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from aigdetect.errors import ConfigError, WeightsError
from aigdetect.models.backbones import (
    load_backbone,
    resolve_backbone,
)


@pytest.fixture()
def reference(tiny_config):
    return load_backbone(resolve_backbone(tiny_config), "none", seed=11)


def _same(a, b) -> bool:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_random_weights_are_seeded(tiny_config, reference):
    source = resolve_backbone(tiny_config)
    assert _same(reference, load_backbone(source, "none", seed=11))
    assert not _same(reference, load_backbone(source, "none", seed=12))


def test_openai_style_full_state_dict(tmp_path, tiny_config, reference):
    state = {f"visual.{k}": v.half() for k, v in reference.state_dict().items()}
    state["token_embedding.weight"] = torch.zeros(4, 2)
    path = tmp_path / "clip.pt"
    torch.save(state, path)
    loaded = load_backbone(resolve_backbone(tiny_config), path)
    torch.testing.assert_close(loaded.conv1.weight, reference.conv1.weight.half().float())


def test_visual_only_safetensors_and_wrapped_state_dict(tmp_path, tiny_config, reference):
    path = tmp_path / "visual.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    assert _same(reference, load_backbone(resolve_backbone(tiny_config), path))
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.visual.{k}": v for k, v in reference.state_dict().items()}}, wrapped)
    assert _same(reference, load_backbone(resolve_backbone(tiny_config), wrapped))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
def test_torchscript_archive(tmp_path, tiny_config, reference):
    path = tmp_path / "traced.pt"
    torch.jit.trace(reference, torch.randn(1, 3, 32, 32)).save(str(path))
    assert _same(reference, load_backbone(resolve_backbone(tiny_config), path))


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickled_objects_are_never_executed(tmp_path, tiny_config, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": Payload()}, path)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_backbone(resolve_backbone(tiny_config), path)
    assert "unpickled!" not in capsys.readouterr().out


def test_mismatched_weights_name_the_keys(tmp_path, tiny_config, reference):
    state = reference.state_dict()
    state.pop("proj")
    state["conv1.weight"] = torch.zeros(1, 3, 8, 8)
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(WeightsError, match=r"missing: proj; shape mismatch: conv1.weight \(1, 3, 8, 8\) vs \(32, 3, 8, 8\)"):
        load_backbone(resolve_backbone(tiny_config), path)


def test_non_clip_file_and_missing_file(tmp_path, tiny_config):
    path = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError, match="not a CLIP state dict"):
        load_backbone(resolve_backbone(tiny_config), path)
    with pytest.raises(WeightsError, match="weights file not found"):
        load_backbone(resolve_backbone(tiny_config), tmp_path / "absent.pt")


def test_config_model_needs_explicit_weights(tiny_config):
    with pytest.raises(WeightsError, match="`backbone_weights` FILE"):
        load_backbone(resolve_backbone(tiny_config))


def test_unknown_model_and_bad_config(tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'vit-huge'"):
        resolve_backbone("vit-huge")
    bad = tmp_path / "bad.json"
    bad.write_text('{"embed_dim": 8}')
    with pytest.raises(ConfigError, match="not an open_clip model config"):
        resolve_backbone(bad)
