"""The CPU engines inside scans and benches: rows name the engine, fp32 engines score as torch does,
a resume never mixes engines, and a bench with reduced precision measures its metrics' shift."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image
from sklearn.metrics import average_precision_score
from typer.testing import CliRunner

from aigdetect.cli import app
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError

runner = CliRunner()
onnxruntime = pytest.importorskip("onnxruntime")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"backend": "torch", "precision": "int8"}, "`backend` onnxruntime"),
        ({"backend": "torch", "precision": "bf16"}, "merges adjacent pixel levels"),
        ({"backend": "onnxruntime", "precision": "bf16"}, "`backend` openvino"),
        ({"backend": "openvino", "precision": "int8"}, "NNCF"),
        ({"backend": "onnxruntime", "precision": "fp16"}, "fp16 is for `backend` torch"),
        ({"backend": "onnxruntime", "device": "cuda"}, "runs on the CPU"),
        ({"backend": "openvino", "compile": True}, "`compile` is for `backend` torch"),
        ({"backend": "tensorrt"}, "unknown `backend`"),
    ],
)
def test_runtime_refuses_what_a_backend_cannot_run(settings, words):
    with pytest.raises(ConfigError, match=words):
        RuntimeConfig(**settings)


def test_engine_label_resolves_auto_without_torch_where_no_cuda_can_exist(monkeypatch):
    from aigdetect.engine import runtime

    assert RuntimeConfig(backend="onnxruntime", precision="int8").engine_label() == "onnxruntime-int8"
    assert RuntimeConfig(backend="openvino").engine_label() == "openvino-fp32"
    assert RuntimeConfig(device="cuda:1").engine_label() == "torch-fp16"
    assert RuntimeConfig(device="mps").engine_label() == "torch-fp32"
    assert RuntimeConfig(precision="fp16").engine_label() == "torch-fp16"
    monkeypatch.setattr(runtime, "cuda_ruled_out", lambda: True)
    assert RuntimeConfig().engine_label() == "torch-fp32"
    monkeypatch.setattr(runtime, "cuda_ruled_out", lambda: False)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert RuntimeConfig().engine_label() == "torch-fp16"


def test_an_onnxruntime_scan_scores_as_torch_names_its_engine_and_never_resumes_into_another(tmp_path, tiny_checkpoint):
    folder = tmp_path / "imgs"
    for i in range(5):
        write_image(folder / f"{i}.png", size=(40 + i, 36), seed=i)
    (folder / "bad.png").write_bytes(b"junk")
    common = [str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--device", "cpu"]
    torch_out, onnx_out = tmp_path / "torch.csv", tmp_path / "onnx.csv"
    assert runner.invoke(app, ["scan", *common, "--out", str(torch_out)]).exit_code == 0
    result = runner.invoke(app, ["scan", *common, "--out", str(onnx_out), "--backend", "onnxruntime"])
    assert result.exit_code == 0, result.output
    reference, engine = _rows(torch_out), _rows(onnx_out)
    assert [r["engine"] for r in reference] == ["torch-fp32"] * 6
    assert [r["engine"] for r in engine] == ["onnxruntime-fp32"] * 6
    assert [r["path"] for r in engine] == [r["path"] for r in reference]
    assert engine[-1]["status"] == "error" and engine[-1]["error_reason"] == reference[-1]["error_reason"]
    scores = [(float(a["score"]), float(b["score"])) for a, b in zip(reference, engine) if a["score"]]
    assert len(scores) == 5 and max(abs(a - b) for a, b in scores) <= 1e-5
    summary = json.loads((tmp_path / "onnx.csv.summary.json").read_text())
    assert summary["settings"]["engine"] == "onnxruntime-fp32"

    again = runner.invoke(app, ["scan", *common, "--out", str(onnx_out), "--resume", "--backend", "onnxruntime",
                                "--precision", "int8"])  # fmt: skip
    assert again.exit_code == 2
    assert "engine: 'onnxruntime-fp32' -> 'onnxruntime-int8'" in again.stderr and len(again.stderr.splitlines()) == 1
    assert _rows(onnx_out) == engine


def test_a_bench_with_int8_measures_the_shift_of_every_metric_against_torch_fp32(tmp_path, tiny_checkpoint):
    for name, seed in (("real", 1), ("fake", 2)):
        for i in range(6):
            write_image(tmp_path / name / f"{i}.png", size=(40, 36 + i), seed=seed * 10 + i)
    out = tmp_path / "run"
    args = ["bench", "folder", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--checkpoint",
            str(tiny_checkpoint), "--workers", "0", "--device", "cpu", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, [*args, "--backend", "onnxruntime", "--precision", "int8"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["engine"] == "onnxruntime-int8"
    here, there = data["clean"]["subsets"][0]["metrics"], data["reference"]["subsets"][0]["metrics"]
    delta = data["engine_delta"]["subsets"][data["clean"]["subsets"][0]["key"]]
    for key in ("ap", "acc_calibrated", "acc_oracle"):
        assert delta[key] == pytest.approx(here[key] - there[key])
    predictions = list(csv.DictReader(open(out / "predictions.csv", newline="", encoding="utf-8")))
    labels = np.array([int(p["label"]) for p in predictions])
    assert here["ap"] == pytest.approx(average_precision_score(labels, [float(p["score"]) for p in predictions]))
    assert "Engine check: onnxruntime-int8 against torch-fp32" in result.stdout

    plain = runner.invoke(app, [*args[:-1], str(tmp_path / "plain"), "--backend", "onnxruntime"])
    assert plain.exit_code == 0, plain.output
    assert json.loads((tmp_path / "plain" / "results.json").read_text())["reference"] is None
