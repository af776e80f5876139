"""Every option's default and help come from the config dataclasses, so ``-h`` never disagrees with the code."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
import typer

from aigdetect.cli import app
from aigdetect.cli.options import default_list, render
from aigdetect.data.config import AugmentConfig, DiscoveryConfig
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.evaluation.bench_config import BenchConfig, SweepConfig
from aigdetect.evidence.config import EvidenceConfig
from aigdetect.models.choice import DetectorChoice
from aigdetect.models.config import MoLEConfig
from aigdetect.scan.config import ScanConfig
from aigdetect.serve.config import ServeConfig
from aigdetect.settings import field_default, field_help
from aigdetect.training.config import TrainConfig

CONFIGS = {
    "scan": (ScanConfig, RuntimeConfig, DetectorChoice, EvidenceConfig, DiscoveryConfig),
    "train": (TrainConfig, RuntimeConfig, MoLEConfig, AugmentConfig),
    "info": (TrainConfig, MoLEConfig),
    "bench": (BenchConfig, RuntimeConfig, DetectorChoice),
    "robustness": (BenchConfig, SweepConfig, RuntimeConfig, DetectorChoice),
    "routes": (RuntimeConfig, DetectorChoice),
    "inspect": (ScanConfig, EvidenceConfig, RuntimeConfig, DetectorChoice),
    "serve": (ServeConfig, ScanConfig, EvidenceConfig, RuntimeConfig, DetectorChoice),
}


def _expected(config: type, name: str) -> object:
    value = field_default(config, name)
    if isinstance(value, dict):  # a mapping is typed as JSON on the command line
        return json.dumps(value)
    return default_list(config, name) if isinstance(value, tuple) else value


def _bound_options(command: str) -> list[tuple[object, type]]:
    click_command = typer.main.get_command(app).commands[command]
    bound = []
    for param in click_command.params:
        for config in CONFIGS[command]:
            if not param.required and param.name in {f.name for f in fields(config)} and field_help(config, param.name):
                bound.append((param, config))
                break
    return bound


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_option_defaults_and_help_are_the_dataclasses(command):
    bound = _bound_options(command)
    assert len(bound) >= 3
    for param, config in bound:
        if getattr(param, "multiple", False):
            assert tuple(param.default) == field_default(config, param.name), (command, param.name)
        else:
            assert param.default == _expected(config, param.name), (command, param.name)
        assert param.help == render(field_help(config, param.name)), (command, param.name)


def test_the_documented_device_defaults_are_the_ones_used():
    help_text = render(field_help(RuntimeConfig, "batch_size"))
    assert "128 on CUDA, 32 otherwise" in help_text
    assert RuntimeConfig().batch_size_for("cuda") == 128 and RuntimeConfig().batch_size_for("cpu") == 32


def test_shared_alpha_defaults_to_the_rank_in_the_library_and_the_cli():
    assert MoLEConfig(shared_rank=4).shared_alpha == 4.0
    assert "default: its rank" in field_help(MoLEConfig, "shared_alpha")


def test_settings_named_in_messages_are_shown_as_flags():
    assert render("`batch_size` must be >= 1; `output_format` csv") == "--batch-size must be >= 1; --format csv"
    assert render("run 'aigdetect train' first") == "run 'aigdetect train' first"


def test_bench_and_robustness_share_every_option_but_the_sweep():
    from typer.main import get_command

    from aigdetect.cli import app

    commands = get_command(app).commands

    def described(name: str) -> dict:
        return {p.name: (p.opts, p.default, getattr(p, "help", None)) for p in commands[name].params}

    robustness = described("robustness")
    assert [robustness.pop(name)[0] for name in ("blur", "jpeg")] == [["--blur"], ["--jpeg"]]
    assert robustness == described("bench")


def test_train_takes_the_recipes_augmentation_unless_an_augmentation_option_is_typed():
    from typer.main import get_command

    from aigdetect.cli import app
    from aigdetect.cli.train import _augment

    command = get_command(app).commands["train"]
    defaults = {"blur_prob": 0.1, "blur_sigma": "0,3", "jpeg_prob": 0.1, "jpeg_quality": "30,100", "flip": True}
    untouched = command.make_context("train", ["--data", "d", "--out", "m.safetensors"])
    assert _augment(untouched, "paper", defaults) is None
    typed = command.make_context("train", ["--data", "d", "--out", "m.safetensors", "--blur-prob", "0.5"])
    augment = _augment(typed, "paper", {**defaults, "blur_prob": 0.5})
    assert augment is not None and augment.blur_prob == 0.5
