"""Trainable-parameter counts against the CLIPMoLE paper's Table 4."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aigdetect import MoLEConfig
from aigdetect.cli import app
from aigdetect.models.factory import parameter_summary

TABLE_4 = [
    ("vitb32", 1, 0.067),
    ("vitb32", 2, 0.133),
    ("vitb32", 3, 0.200),
    ("vitb32", 4, 0.266),
    ("vitb32", 5, 0.332),
    ("vitb32", 12, 0.792),
    ("vitl14", 2, 0.051),
    ("vitl14", 3, 0.077),
    ("vitl14", 4, 0.103),
    ("vitl14", 6, 0.154),
]


@pytest.mark.parametrize(("model", "blocks", "paper"), TABLE_4)
def test_trainable_percent_within_two_percent_of_table_4(model, blocks, paper):
    counts = parameter_summary(model, MoLEConfig(blocks=blocks))
    assert counts["trainable_percent"] == pytest.approx(paper, rel=0.02)


def test_linear_probe_row_and_hand_count():
    probe = parameter_summary("vitb32", MoLEConfig(blocks=0))
    assert probe["trainable_params"] == 513
    assert round(probe["trainable_percent"], 3) == 0.001
    # Per block: four d x d LoRAs of ranks 8 + 4 + 8 + 16 and a 3 x d router, d = 768.
    one = parameter_summary("vitb32", MoLEConfig(blocks=1))
    assert one["trainable_params"] == 513 + 2 * 768 * (8 + 4 + 8 + 16) + 3 * 768
    assert one["total_params"] == probe["total_params"] + 2 * 768 * 36 + 3 * 768


def test_info_json_prints_one_object():
    result = CliRunner().invoke(app, ["info", "--model", "vitb32", "--blocks", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["trainable_percent"] == pytest.approx(0.200, rel=0.02)
    assert data["trainable_percent"] == pytest.approx(100 * data["trainable_params"] / data["total_params"])


def test_info_reads_a_config_json(tiny_config):
    result = CliRunner().invoke(app, ["info", "--model", str(tiny_config), "--blocks", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trainable_params"] == 17 + 2 * (2 * 32 * 36 + 3 * 32)


def test_blocks_all_is_every_block_as_in_table_4():
    every = CliRunner().invoke(app, ["info", "--model", "vitb32", "--blocks", "all", "--json"])
    assert every.exit_code == 0, every.output
    data = json.loads(every.stdout)
    assert data["blocks"] == 12 and data["trainable_percent"] == pytest.approx(0.792, rel=0.02)
    twelve = json.loads(CliRunner().invoke(app, ["info", "--model", "vitb32", "--blocks", "12", "--json"]).stdout)
    assert twelve == data
    large = json.loads(CliRunner().invoke(app, ["info", "--model", "vitl14", "--blocks", "ALL", "--json"]).stdout)
    assert large["blocks"] == 24


def test_info_and_models_keep_names_and_paths_whole_at_80_columns(tiny_config):
    runner = CliRunner(env={"COLUMNS": "80"})
    info = runner.invoke(app, ["info", "--model", str(tiny_config), "--blocks", "all"])
    assert info.exit_code == 0, info.output
    assert f"model: {tiny_config}\n" in info.stdout and "last 4 blocks adapted" in info.stdout
    listed = runner.invoke(app, ["models"])
    assert listed.exit_code == 0, listed.output
    from aigdetect.models.zoo import DETECTORS

    for entry in DETECTORS.list():
        assert f"{entry.name}: {entry.summary}\n" in listed.stdout
        assert f"  source: {entry.source}\n" in listed.stdout
    table = listed.stdout[: listed.stdout.index(f"{DETECTORS.list()[0].name}: ")]
    assert max(len(line) for line in table.splitlines()) <= 80
    assert DETECTORS.list()[0].name in table and DETECTORS.list()[0].license in table
