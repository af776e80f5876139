"""Backbone families beyond the OpenAI ViTs: open_clip's timm towers (SigLIP 2, Perception Encoder)
and plain timm ViTs, built small with random weights offline. MoLE sits in their last blocks as a
hand-built bypass would, info counts by hand, a training step runs, checkpoints rebuild them."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import timm
import torch
from conftest import TINY_CONFIG, perturb_lora_b
from safetensors.torch import save_file
from typer.testing import CliRunner

from aigdetect import MoLEConfig, create_detector, load_detector, save_detector, score_images
from aigdetect.cli import app
from aigdetect.errors import CheckpointError, ConfigError, WeightsError
from aigdetect.models.backbones import BackboneSource, build_visual, resolve_backbone
from aigdetect.models.checkpoint import METADATA_KEY, read_checkpoint
from aigdetect.models.factory import parameter_summary
from aigdetect.models.mole import MoLEMLP, find_blocks
from aigdetect.training.accumulate import gradient_step

SMALL = {"depth": 3, "embed_dim": 64, "num_heads": 2}
TIMM_CONFIGS = {
    "timm-siglip": {"model_name": "vit_base_patch16_siglip_224", "kwargs": {**SMALL, "img_size": 32, "patch_size": 8}},
    "timm-pe": {"model_name": "vit_pe_core_base_patch16_224", "kwargs": {**SMALL, "img_size": 32, "patch_size": 8}},
}
NAMED = ("ViT-B-16-SigLIP2", "PE-Core-B-16")


@pytest.fixture()
def small_timm(monkeypatch):
    """open_clip builds SigLIP 2 and PE towers through ``timm.create_model``: shrink every one."""
    monkeypatch.setattr(timm, "create_model", functools.partial(timm.create_model, **SMALL))


def _model(tmp_path, family: str) -> str:
    if family == "open_clip-vit":
        return str(TINY_CONFIG)
    if family in TIMM_CONFIGS:
        path = tmp_path / f"{family}.json"
        path.write_text(json.dumps(TIMM_CONFIGS[family]))
        return str(path)
    return family


def _detector(model: str, blocks: int = 2, seed: int = 0, **mole):
    return perturb_lora_b(create_detector(model, MoLEConfig(blocks=blocks, **mole), backbone_weights="none", seed=seed), seed)


def _pixels(detector, count: int = 2) -> torch.Tensor:
    size = detector.image_size
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(5))


FAMILIES = ["open_clip-vit", *TIMM_CONFIGS, *NAMED]


def _hand_bypass(bypass, x: torch.Tensor) -> torch.Tensor:
    """Shared expert plus the argmax expert weighted by its softmax probability, token by token."""
    out = torch.empty_like(x)
    shared = bypass.shared
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            token = x[b, t]
            probs = torch.softmax(bypass.router.weight @ token, dim=0)
            i = int(torch.argmax(probs))
            expert = bypass.experts[i]
            value = shared.scaling * shared.lora_B @ (shared.lora_A @ token)
            out[b, t] = value + probs[i] * expert.scaling * expert.lora_B @ (expert.lora_A @ token)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_mole_in_the_last_blocks_equals_a_hand_built_bypass(tmp_path, small_timm, family):
    detector = _detector(_model(tmp_path, family)).eval()
    blocks = find_blocks(detector.visual).blocks
    assert [isinstance(b.mlp, MoLEMLP) for b in blocks] == [False] * (len(blocks) - 2) + [True, True]
    seen = {}
    hooks = [b.mlp.register_forward_hook(lambda m, args, out, i=i: seen.update({i: (args[0], out)}))
             for i, b in enumerate(blocks) if isinstance(b.mlp, MoLEMLP)]  # fmt: skip
    with torch.no_grad():
        detector(_pixels(detector))
        for index, (x, out) in seen.items():
            mlp = blocks[index].mlp
            tokens = x if mlp.batch_first else x.transpose(0, 1)
            expected = _hand_bypass(mlp.bypass, tokens)
            expected = expected if mlp.batch_first else expected.transpose(0, 1)
            torch.testing.assert_close(out, mlp.base(x) + expected, rtol=1e-4, atol=1e-5)
    for hook in hooks:
        hook.remove()
    assert sorted(seen) == [len(blocks) - 2, len(blocks) - 1]


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_initialised_bypasses_leave_the_features_unchanged(tmp_path, small_timm, family):
    model = _model(tmp_path, family)
    probe = create_detector(model, MoLEConfig(blocks=0), backbone_weights="none", seed=3)
    adapted = create_detector(model, MoLEConfig(blocks=2), backbone_weights="none", seed=3)
    with torch.no_grad():
        assert torch.equal(probe.visual(_pixels(probe)), adapted.visual(_pixels(probe)))


@pytest.mark.parametrize("family", [*TIMM_CONFIGS, *NAMED])
def test_info_counts_equal_a_hand_count(tmp_path, small_timm, family):
    model = _model(tmp_path, family)
    source = resolve_backbone(model)
    frozen = sum(p.numel() for p in build_visual(source, meta=True).parameters())
    width, features = 64, 1024 if family == "PE-Core-B-16" else 64
    per_block = 2 * width * (8 + 4 + 8 + 16) + 3 * width  # four LoRAs (ranks 8, 4, 8, 16) and the router
    counts = parameter_summary(model, MoLEConfig(blocks=2))
    assert counts["trainable_params"] == features + 1 + 2 * per_block
    assert counts["total_params"] == frozen + features + 1 + 2 * per_block
    result = CliRunner().invoke(app, ["info", "--model", model, "--blocks", "all", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["blocks"] == 3 and data["trainable_params"] == features + 1 + 3 * per_block


def test_info_counts_a_full_size_named_tower_on_the_meta_device():
    """ViT-B-16-SigLIP2 unshrunk (86 M parameters, nothing allocated): 12 blocks of width 768."""
    counts = parameter_summary("ViT-B-16-SigLIP2", MoLEConfig(blocks=2))
    assert counts["trainable_params"] == 769 + 2 * (2 * 768 * 36 + 3 * 768)
    pe = parameter_summary("PE-Core-B-16", MoLEConfig(blocks=0))
    assert pe["trainable_params"] == 1025  # the head on its 1024-wide projection


@pytest.mark.parametrize("family", FAMILIES)
def test_one_training_step_moves_only_adapters_and_head(tmp_path, small_timm, family):
    detector = _detector(_model(tmp_path, family)).train()
    before = {n: p.detach().clone() for n, p in detector.named_parameters()}
    optimizer = torch.optim.AdamW(detector.trainable_parameters(), lr=1e-2)
    pixels = torch.randint(0, 256, (4, 3, detector.image_size, detector.image_size), dtype=torch.uint8)
    outcome = gradient_step(detector, pixels, torch.tensor([0, 1, 0, 1]), device=torch.device("cpu"), micro_batch=2,
                            backward=lambda loss: loss.backward())  # fmt: skip
    optimizer.step()
    assert np.isfinite(outcome.losses["loss"])
    changed = {n for n, p in detector.named_parameters() if not torch.equal(before[n], p)}
    assert "head.weight" in changed and any(".bypass.shared." in n for n in changed)
    assert all(".bypass." in n or n.startswith("head.") for n in changed)


@pytest.mark.parametrize("family", [*TIMM_CONFIGS, "open_clip-vit"])
def test_checkpoint_rebuilds_an_embedded_backbone_with_its_preprocessing(tmp_path, family):
    detector = _detector(_model(tmp_path, family))
    path = tmp_path / "d.safetensors"
    save_detector(detector, path)
    loaded = load_detector(path)
    assert loaded.preprocess == detector.preprocess and loaded.source.family == detector.source.family
    images = [np.random.default_rng(i).integers(0, 256, (40, 44, 3), dtype=np.uint8) for i in range(3)]
    assert np.array_equal(score_images(loaded, images), score_images(detector, images))
    if family in TIMM_CONFIGS:
        assert detector.preprocess.mean == (0.5, 0.5, 0.5) and detector.preprocess.size == 32


@pytest.mark.parametrize("name", NAMED)
def test_named_backbone_checkpoint_reloads_from_its_weights_file_and_checks_its_hash(tmp_path, small_timm, name):
    reference = _detector(name)
    weights = tmp_path / "tower.safetensors"
    save_file({f"visual.{k}": v for k, v in reference.backbone_state_dict().items()}, str(weights))
    detector = create_detector(name, MoLEConfig(blocks=2), backbone_weights=weights, seed=1)
    path = tmp_path / "d.safetensors"
    save_detector(detector, path)
    tensors, meta = read_checkpoint(path)
    assert not any(k.startswith("backbone.") for k in tensors)
    assert meta["backbone"]["name"] == resolve_backbone(name).name and len(meta["backbone"]["weights_sha256"]) == 64
    assert meta["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    loaded = load_detector(path, backbone_weights=weights)
    with torch.no_grad():
        pixels = _pixels(detector)
        assert torch.equal(loaded.eval()(pixels).logits, detector.eval()(pixels).logits)
    other = tmp_path / "other.safetensors"
    save_file({f"visual.{k}": v + 1 for k, v in reference.backbone_state_dict().items()}, str(other))
    with pytest.raises(WeightsError, match="trained on backbone weights"):
        load_detector(path, backbone_weights=other)


def test_names_resolve_to_their_family_tag_and_preprocessing():
    pe = resolve_backbone("PE-Core-B-16")
    assert pe.name == "PE-Core-B-16:meta" and pe.preprocess.interpolation == "bilinear"
    assert pe.preprocess.mean == (0.5, 0.5, 0.5) and pe.image_size == 224
    alias = resolve_backbone("vitl14")
    assert resolve_backbone("ViT-L-14-quickgelu:openai").preprocess == alias.preprocess
    assert alias.config == resolve_backbone("ViT-L-14-quickgelu:dfn2b").config
    several = resolve_backbone("ViT-L-14-quickgelu")
    with pytest.raises(WeightsError, match="names no pretrained tag"):
        several.weights_location()
    timm_source = resolve_backbone("timm:vit_base_patch16_siglip_224.v2_webli")
    assert timm_source.family == "timm" and timm_source.weights_location().repo_id == "timm/vit_base_patch16_siglip_224.v2_webli"
    assert len(find_blocks(build_visual(timm_source, meta=True)).blocks) == 12


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("ViT-B-16:nope", "no pretrained tag 'nope'"),
        ("timm:not_a_model", "not a timm architecture"),
        ("hf-hub:only-one-part", "expected hf-hub:ORG/NAME"),
        ("RN50", "only ViT vision towers"),
        ("no-such-model", "unknown model"),
    ],
)
def test_bad_names_are_refused(model, message):
    with pytest.raises(ConfigError, match=message):
        resolve_backbone(model)


@pytest.mark.parametrize(
    "entry",
    [
        {"name": None, "family": "pickle", "config": {}},
        {"name": None, "family": "timm", "config": {"model_name": "vit_base_patch16_224", "kwargs": {"depth": 10**6}}},
        {"name": None, "family": "timm", "config": {"model_name": "vit_base_patch16_224", "kwargs": {"act_layer": "x"}}},
        {"name": "timm:vit_base_patch16_224", "weights_sha256": "../etc"},
        {"name": "/etc/passwd.json"},
    ],
)
def test_hostile_backbone_entries_are_refused(entry):
    with pytest.raises(ConfigError):
        BackboneSource.from_dict(entry)


def test_cls_expert_needs_a_class_token(tmp_path):
    with pytest.raises(ConfigError, match="no class token"):
        create_detector(_model(tmp_path, "timm-siglip"), MoLEConfig(blocks=1, cls_expert=True), backbone_weights="none")


def test_checkpoint_with_a_bad_family_is_refused(tmp_path):
    path = tmp_path / "d.safetensors"
    save_detector(_detector(_model(tmp_path, "timm-siglip")), path)
    tensors, meta = read_checkpoint(path)
    meta["backbone"]["family"] = "onnx"
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta)})
    with pytest.raises(CheckpointError, match="unknown backbone family"):
        load_detector(path)


def test_models_backbones_lists_what_builds_and_what_is_cached(tmp_path, monkeypatch):
    from huggingface_hub import constants

    snapshot = tmp_path / "models--timm--PE-Core-B-16" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    (tmp_path / "models--timm--PE-Core-B-16" / "refs").mkdir()
    (tmp_path / "models--timm--PE-Core-B-16" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["models", "--backbones", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["PE-Core-B-16:meta"]["weights"] == str(snapshot / "open_clip_model.safetensors")
    assert rows["PE-Core-B-16:meta"]["family"] == "open_clip" and rows["vitb16"]["weights"] is None
    assert rows["ViT-B-16-SigLIP2:webli"]["image_size"] == 224 and "ViT-L-14-quickgelu:dfn2b" in rows
    assert not any(name.startswith("RN50") for name in rows)


def test_scan_rebuilds_a_timm_detector_with_its_preprocessing(tmp_path):
    """The CLI scan of a timm-family checkpoint gives the trained detector's scores (mean 0.5
    preprocessing included: the CLIP statistics would give other scores)."""
    import csv

    from conftest import write_image

    detector = _detector(_model(tmp_path, "timm-siglip"))
    checkpoint = tmp_path / "siglip.safetensors"
    save_detector(detector, checkpoint)
    paths = [write_image(tmp_path / "imgs" / f"{i}.png", size=(40 + i, 36), seed=i) for i in range(3)]
    result = CliRunner().invoke(app, ["scan", str(tmp_path / "imgs"), "--checkpoint", str(checkpoint), "--workers", "0"])
    assert result.exit_code == 0, result.output
    rows = sorted(csv.DictReader(result.stdout.splitlines()), key=lambda r: r["path"])
    np.testing.assert_allclose([float(r["score"]) for r in rows], score_images(detector, sorted(map(str, paths))), rtol=1e-5, atol=1e-6)


def _fake_hub_cache(root, repo: str, files: dict[str, bytes]):
    folder = root / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")
    return snapshot


def test_hf_hub_backbone_builds_offline_from_the_cache_and_its_checkpoint_reloads(tmp_path, monkeypatch):
    """An hf-hub open_clip repository in a Hugging Face cache (``cache_dir``): its config (with its
    own preprocessing) and weights are found without the network, the weights' hash recorded, and
    the checkpoint rebuilds the same model from the recorded config."""
    tiny = json.loads(TINY_CONFIG.read_text())
    tower = build_visual(BackboneSource(config=tiny))
    weights = tmp_path / "w.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in tower.state_dict().items()}, str(weights))
    config = {"model_cfg": tiny, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bilinear"}}
    _fake_hub_cache(tmp_path / "hub", "org/tiny", {"open_clip_config.json": json.dumps(config).encode(),
                                                  "open_clip_model.safetensors": weights.read_bytes()})  # fmt: skip
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    detector = create_detector("hf-hub:org/tiny", MoLEConfig(blocks=1), cache_dir=str(tmp_path / "hub"))
    assert detector.preprocess.mean == (0.5, 0.5, 0.5) and detector.preprocess.interpolation == "bilinear"
    assert detector.source.weights_sha256 == __import__("hashlib").sha256(weights.read_bytes()).hexdigest()
    path = tmp_path / "d.safetensors"
    save_detector(detector, path)
    assert not any(k.startswith("backbone.") for k in read_checkpoint(path)[0])
    loaded = load_detector(path, cache_dir=str(tmp_path / "hub"))
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(pixels).logits, detector.eval()(pixels).logits)
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE"):
        resolve_backbone("hf-hub:org/absent")
