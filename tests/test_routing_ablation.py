"""The routing ablation script runs end to end on a few synthetic images (its figures are in RESULTS.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import load_benchmark

from aigdetect import load_detector


def test_routing_gap_is_total_variation_averaged_over_blocks():
    ablation = load_benchmark("routing_ablation")
    routing = {
        "block1": {"share_real": [1.0, 0.0], "share_fake": [0.0, 1.0]},
        "block2": {"share_real": [0.5, 0.5], "share_fake": [0.75, 0.25]},
    }
    assert ablation.routing_gap(routing) == pytest.approx((1.0 + 0.25) / 2)
    assert ablation.routing_gap({"block1": {"share_real": [None, None], "share_fake": [0.5, 0.5]}}) is None


@pytest.mark.slow
def test_every_variant_is_trained_and_scored_on_the_same_data(tmp_path: Path, capsys):
    ablation = load_benchmark("routing_ablation")
    out = tmp_path / "ablation.json"
    ablation.main([
        "--seeds", "0", "--steps", "2", "--eval-every", "2", "--batch-size", "4", "--per-class", "4",
        "--val-per-class", "2", "--test-per-class", "3", "--image-size", "32", "--device", "cpu",
        "--work", str(tmp_path / "work"), "--json", str(out),
    ])
    document = json.loads(out.read_text())
    names = ["linear", "proto", "proto-softmax", "proto+cls"]
    assert [r["variant"] for r in document["runs"]] == names
    assert [r["variant"] for r in document["summary"]] == names
    for run in document["runs"]:
        assert run["unscored"] == 0 and 0.0 <= run["test_ap"] <= 1.0 and not math.isnan(run["test_acc_0.5"])
    written = sorted(p.name for p in (tmp_path / "work" / "runs").glob("*.safetensors") if ".state." not in p.name)
    assert written == sorted(f"{name}-seed0.safetensors" for name in names)
    gates = {run["variant"]: load_detector(tmp_path / "work" / "runs" / f"{run['variant']}-seed0.safetensors").mole.gate_weight
             for run in document["runs"]}  # fmt: skip
    assert gates == {"linear": "softmax", "proto": "identity", "proto-softmax": "softmax", "proto+cls": "identity"}
    rows = [line.split(" | ")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows == ["| router", *(f"| {name}" for name in names)]
