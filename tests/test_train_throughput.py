"""The training-throughput benchmark runs the real training step on the CPU (its GPU figures are in RESULTS.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_throughput.py"


def _load():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("one_torch_thread")
def test_recipe_paper_figures_on_the_tiny_model(tmp_path: Path, capsys):
    out = tmp_path / "figures.json"
    results = _load().main([
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
    defaults = _load().main(["--device", "cpu", "--model", str(ROOT / "tests" / "assets" / "tiny.json"),
                             "--backbone-weights", "none", "--recipe", "paper", "--warmup", "0", "--repeats", "1"])  # fmt: skip
    assert defaults["batch"] == 1024 and defaults["micro_batch"] == 1024
