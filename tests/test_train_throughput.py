"""The training-throughput benchmark runs the real training step on the CPU (its GPU figures are in RESULTS.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.usefixtures("one_torch_thread")
def test_recipe_paper_figures_on_the_tiny_model(tmp_path: Path, capsys):
    out = tmp_path / "figures.json"
    results = load_benchmark("train_throughput").main([
        "--device", "cpu", "--model", str(ROOT / "tests" / "assets" / "tiny.json"), "--backbone-weights", "none",
        "--recipe", "paper", "--batch-size", "12", "--micro-batch", "5", "--warmup", "0", "--repeats", "1",
        "--json", str(out),
    ])  # fmt: skip
    assert json.loads(out.read_text()) == results
    assert (results["recipe"], results["batch"], results["micro_batch"], results["micro_batch_automatic"]) == ("paper", 12, 5, False)
    assert results["train_images_per_s"] == pytest.approx(12 / results["train_step_s"])
    assert results["train_over_inference"] == pytest.approx(results["inference_images_per_s"] / results["train_images_per_s"])
    assert results["train_peak_mib"] > 0 and results["autocast"] == "none"
    assert "train_over_inference:" in capsys.readouterr().out
    defaults = load_benchmark("train_throughput").main(["--device", "cpu", "--model", str(ROOT / "tests" / "assets" / "tiny.json"),
                             "--backbone-weights", "none", "--recipe", "paper", "--warmup", "0", "--repeats", "1"])  # fmt: skip
    assert defaults["batch"] == 1024 and defaults["micro_batch"] == 1024
