"""A checkpoint is hostile input: its metadata never opens files, never sizes an allocation past a
named bound, and never smuggles in a NaN threshold, a mistyped field or integer weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG, write_image
from safetensors.torch import save_file
from typer.testing import CliRunner

from aigdetect import load_detector
from aigdetect.cli import app
from aigdetect.errors import CheckpointError, ConfigError
from aigdetect.models.backbones import resolve_backbone
from aigdetect.models.checkpoint import METADATA_KEY, read_checkpoint

runner = CliRunner()

# Loads run in a process whose address space is capped, so that code which would try to allocate
# what a hostile file asks for fails with MemoryError there instead of exhausting this machine. A
# FIFO named in a checkpoint gets a writer, so code that opens it reads a config instead of hanging.
DRIVER = """
import json, os, resource, sys, threading
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
from aigdetect import load_detector
from aigdetect.models.backbones import resolve_backbone

def feed(fifo, text):
    with open(fifo, "w") as handle:
        handle.write(text)

for kind, target, fifo in json.loads(sys.argv[1]):
    if fifo:
        threading.Thread(target=feed, args=(fifo, open(sys.argv[2]).read()), daemon=True).start()
    try:
        (load_detector if kind == "checkpoint" else resolve_backbone)(target)
        print(json.dumps({"loaded": target}))
    except BaseException as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


def _rewrite(source: Path, target: Path, meta_update: dict | None = None, tensors: dict | None = None, header: str | None = None):
    original, meta = read_checkpoint(source)
    meta.update(meta_update or {})
    save_file(tensors if tensors is not None else original, str(target), metadata={METADATA_KEY: header or json.dumps(meta)})
    return target


def _tiny_config(**vision) -> dict:
    config = json.loads(TINY_CONFIG.read_text())
    config["vision_cfg"].update(vision)
    return config


def _bounded_loads(jobs: list[tuple[str, str, str | None]]) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(jobs), str(TINY_CONFIG)], capture_output=True, text=True, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_sizes_and_paths_in_a_checkpoint_are_refused_before_anything_is_allocated_or_opened(tmp_path, tiny_checkpoint):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    backbone = {"name": None, "config": None}
    cases = {
        "dev-zero": ({"backbone": {"name": "/dev/zero"}}, "unknown model '/dev/zero'; choose one of vitb16, vitb32, vitl14"),
        "fifo": ({"backbone": {"name": str(fifo)}}, f"unknown model '{fifo}'"),
        "image-size": (
            {"backbone": {**backbone, "config": _tiny_config(image_size=100_000)}},
            "checkpoint: vision_cfg image_size must be an integer in 1..1024, got 100000",
        ),
        "width": (
            {"backbone": {**backbone, "config": _tiny_config(width=1_000_000)}},
            "checkpoint: vision_cfg width must be an integer in 1..4096, got 1000000",
        ),
        "patches": (
            {"backbone": {**backbone, "config": _tiny_config(image_size=1024, patch_size=2)}},
            "checkpoint: vision_cfg image_size 1024 / patch_size 2 gives 262144 patches, over 1024",
        ),
        "shared-rank": ({"mole": {"shared_rank": 10**9}}, "`shared_rank` must be between 1 and 1024, got 1000000000"),
        "experts": ({"mole": {"expert_ranks": [4] * 10**5}}, "`expert_ranks` must list 1 to 64 ranks"),
        "parameters": (
            {"backbone": {**backbone, "config": _tiny_config(width=4096, layers=128, mlp_ratio=16.0, head_width=64)}},
            "parameters, over the limit of 3,000,000,000",
        ),
    }
    jobs = []
    for name, (update, _) in cases.items():
        path = _rewrite(tiny_checkpoint, tmp_path / f"{name}.safetensors", update)
        jobs.append(("checkpoint", str(path), str(fifo) if name == "fifo" else None))
    outcomes = _bounded_loads(jobs)
    for (name, (_, expected)), outcome in zip(cases.items(), outcomes):
        assert outcome.get("error") == "CheckpointError", (name, outcome)
        assert expected in outcome["message"] and "\n" not in outcome["message"], (name, outcome)


def test_a_model_config_given_by_the_user_is_bounded_and_opened_safely(tmp_path):
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(_tiny_config(width=1_000_000)))
    fifo = tmp_path / "model.json"
    os.mkfifo(fifo)
    outcomes = _bounded_loads([("model", str(huge), None), ("model", "/dev/zero", None), ("model", str(fifo), str(fifo))])
    assert outcomes[0] == {"error": "ConfigError", "message": f"{huge}: vision_cfg width must be an integer in 1..4096, got 1000000"}
    assert outcomes[1] == {"error": "ConfigError", "message": "cannot read model config /dev/zero: unsupported: not a regular file (device)"}
    assert outcomes[2] == {"error": "ConfigError", "message": f"cannot read model config {fifo}: unsupported: not a regular file (fifo)"}
    result = runner.invoke(app, ["info", "--model", str(huge)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: {huge}: vision_cfg width must be an integer in 1..4096, got 1000000"]


def test_a_backbone_named_by_a_local_path_is_not_read(tmp_path, tiny_checkpoint):
    config = tmp_path / "tiny.json"
    config.write_text(TINY_CONFIG.read_text())
    path = _rewrite(tiny_checkpoint, tmp_path / "named.safetensors", {"backbone": {"name": str(config)}})
    with pytest.raises(CheckpointError, match="unknown model"):
        load_detector(path)


@pytest.mark.parametrize(
    "update, message",
    [
        ({"threshold": float("nan")}, "checkpoint threshold must be a number in [0, 1], got nan"),
        ({"threshold": 5}, "checkpoint threshold must be a number in [0, 1], got 5"),
        ({"threshold": -1}, "checkpoint threshold must be a number in [0, 1], got -1"),
        ({"threshold": "0.5"}, "checkpoint threshold must be a number in [0, 1], got 0.5"),
        ({"threshold": True}, "checkpoint threshold must be a number in [0, 1], got True"),
        ({"name": ["x"]}, "checkpoint metadata 'name' has the wrong type (list)"),
        ({"name": "a\nb"}, "checkpoint name must be printable and at most 200 characters"),
        ({"provenance": "trusted"}, "checkpoint metadata 'provenance' has the wrong type (str)"),
        ({"mole": [3]}, "checkpoint metadata 'mole' has the wrong type (list)"),
        ({"backbone": 7}, "checkpoint metadata 'backbone' has the wrong type (int)"),
        ({"backbone_embedded": "yes"}, "checkpoint metadata 'backbone_embedded' has the wrong type (str)"),
        ({"mole": {"blocks": 2.5}}, "`blocks` must be an integer, got '2.5'"),
        ({"backbone": {"name": None, "config": _tiny_config(act_kwargs={"inplace": True})}}, "unsupported vision_cfg keys for a ViT detector: act_kwargs"),
    ],
)
def test_metadata_of_the_wrong_type_or_range_is_refused(tmp_path, tiny_checkpoint, update, message):
    _, meta = read_checkpoint(tiny_checkpoint)
    if "mole" in update and isinstance(update["mole"], dict):
        update = {"mole": {**meta["mole"], **update["mole"]}}
    path = _rewrite(tiny_checkpoint, tmp_path / "bad.safetensors", update)
    with pytest.raises(CheckpointError) as info:
        load_detector(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_integer_weights_are_refused(tmp_path, tiny_checkpoint):
    tensors, _ = read_checkpoint(tiny_checkpoint)
    tensors["head.weight"] = tensors["head.weight"].to(torch.int32)
    path = _rewrite(tiny_checkpoint, tmp_path / "int.safetensors", tensors=tensors)
    with pytest.raises(CheckpointError, match="tensor head.weight is int32, not floating point"):
        load_detector(path)


def test_deeply_nested_metadata_is_a_checkpoint_error(tmp_path, tiny_checkpoint):
    path = _rewrite(tiny_checkpoint, tmp_path / "deep.safetensors", header="[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="checkpoint metadata is not valid JSON"):
        load_detector(path)


def test_a_device_as_checkpoint_is_refused_by_type(tmp_path):
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint: not a regular file"):
        load_detector("/dev/zero")


def test_scan_with_a_nan_threshold_checkpoint_exits_2_with_one_line(tmp_path, tiny_checkpoint):
    write_image(tmp_path / "a.png")
    path = _rewrite(tiny_checkpoint, tmp_path / "nan.safetensors", {"threshold": float("nan")})
    result = runner.invoke(app, ["scan", str(tmp_path / "a.png"), "--checkpoint", str(path), "--workers", "0"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: {path}: checkpoint threshold must be a number in [0, 1], got nan"]


def test_user_configs_within_the_bounds_still_load(tmp_path):
    bigger = tmp_path / "bigger.json"
    bigger.write_text(json.dumps(_tiny_config(image_size=[48, 32], mlp_ratio=2.5, head_width=8, no_ln_pre=True)))
    assert resolve_backbone(bigger).image_size == 48
    with pytest.raises(ConfigError, match="width 50 / head_width 8 gives 6 attention heads; they must divide the width"):
        resolve_backbone(_write(tmp_path / "heads.json", _tiny_config(width=50, head_width=8)))


def _write(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path
