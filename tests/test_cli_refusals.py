"""Values that would hang, explode or mislead are refused at the command line with one line and exit 2,
and a detector with a random stand-in backbone never passes for the real one."""

from __future__ import annotations

import json

import pytest
from conftest import make_tiny_detector, write_image
from typer.testing import CliRunner

from aigdetect import MoLEConfig, create_detector, save_detector
from aigdetect.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--seed", "-1"], "error: --seed must be >= 0, got -1"),
        (["train", "--shared-alpha", "nan"], "error: --shared-alpha must be a finite number, got nan"),
        (["train", "--lb-weight", "inf"], "error: --lb-weight must be a finite number, got inf"),
        (["train", "--rcl-temperature", "nan"], "error: --rcl-temperature must be a finite number, got nan"),
        (["train", "--expert-alphas", "nan,1,1"], "error: --expert-alphas must be a finite number, got nan"),
        (["train", "--blur-sigma", "nan,1"], "error: --blur-sigma must be a finite number, got nan"),
        (["robustness", "folder", "--blur", "1e9"], "error: --blur sigmas must be within (0, 50], got [1000000000.0]"),
        (["scan", "--crops", "1000000"], "error: --crops must be between 0 and 64, got 1000000"),
    ],
)
def test_values_that_would_hang_or_explode_exit_2_with_one_line(tmp_path, args, message):
    for folder in ("real", "fake"):
        write_image(tmp_path / folder / "a.png")
    where = {
        "train": ["--data", str(tmp_path), "--out", str(tmp_path / "m.safetensors")],
        "robustness": ["--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake")],
        "scan": [str(tmp_path / "real")],
    }[args[0]]
    result = runner.invoke(app, [*args, *where])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [message]


def test_a_training_state_given_as_detector_names_the_detector_file(tmp_path):
    write_image(tmp_path / "a.png")
    state = tmp_path / "run" / "m.state.safetensors"
    detector_file = str(tmp_path / "run" / "m.safetensors")
    save_detector(make_tiny_detector(), state, extra_metadata={"train_state": {"config": {"out": detector_file}}})
    result = runner.invoke(app, ["scan", str(tmp_path / "a.png"), "--checkpoint", str(state), "--workers", "0"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {state} is a training state (to continue training with --resume), not a detector; the detector is {detector_file}"
    ]


def test_random_backbone_weights_are_refused_for_a_pretrained_detector_unless_marked(tmp_path):
    write_image(tmp_path / "a.png", size=(64, 64))
    detector = create_detector("vitb32", MoLEConfig(blocks=0), backbone_weights="none")
    checkpoint = tmp_path / "probe.safetensors"
    save_detector(detector, checkpoint)
    args = ["scan", str(tmp_path / "a.png"), "--checkpoint", str(checkpoint), "--backbone-weights", "none", "--workers", "0"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"error: {checkpoint} was trained on pretrained vitb32 features: random backbone weights")
    assert "--allow-random-backbone" in line
    marked = runner.invoke(app, [*args, "--allow-random-backbone", "--format", "jsonl"])
    assert marked.exit_code == 0, marked.output
    (row,) = [json.loads(line) for line in marked.stdout.splitlines()]
    assert row["status"] == "ok" and row["detector"].startswith(f"{detector.name}+random-backbone@")
