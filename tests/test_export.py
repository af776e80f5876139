"""ONNX export: the graph reproduces the torch logits at any batch size, and the sidecar alone
reproduces our preprocessing, scores and verdicts."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_detector, write_image
from PIL import Image

from aigdetect import MoLEConfig, score_images
from aigdetect.data.transforms import eval_tensor
from aigdetect.engine.export import export_onnx, sidecar_path_for
from aigdetect.errors import ConfigError
from aigdetect.models.identity import detector_id
from aigdetect.version import __version__

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

CONFIGS = {
    "linear-top1": MoLEConfig(router="linear", top_k=1),
    "proto-top2-cls": MoLEConfig(router="proto", top_k=2, cls_expert=True),
    "linear-probe": MoLEConfig(blocks=0),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each configuration exported once: (detector, ExportResult), keyed by configuration name."""
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, mole in CONFIGS.items():
        detector = make_tiny_detector(mole, seed=3)
        detector.threshold = 0.3
        out[name] = (detector, export_onnx(detector, folder / f"{name}.onnx"))
    return out


def _pixels(batch: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_onnx_graph_matches_torch_at_every_batch_size(exported, name):
    detector, result = exported[name]
    session = _session(result.model_path)
    graph = onnx.load(str(result.model_path)).graph
    assert [i.name for i in graph.input] == ["pixels"] and [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param, "the batch axis must be symbolic"
    for batch in (1, 5, 7):
        pixels = _pixels(batch, batch)
        with torch.no_grad():
            expected = detector(pixels).logits.numpy()
        got = session.run(None, {"pixels": pixels.numpy()})[0]
        assert got.shape == (batch,)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["linear-top1", "proto-top2-cls"])
def test_the_parity_check_exercises_routed_experts(exported, name):
    """The 1e-5 agreement above means something only if the bypasses move the logits far more
    than that and the routers send tokens to different experts."""
    detector, _ = exported[name]
    pixels = _pixels(5, 5)
    silent = copy.deepcopy(detector)
    with torch.no_grad():
        for bypass in silent.bypasses.values():
            for param_name, param in bypass.named_parameters():
                if "lora_B" in param_name:
                    param.zero_()
        out = detector(pixels)
        base = silent(pixels).logits
    assert float((out.logits - base).abs().max()) > 1e-3
    assert all(len(record.assignments.unique()) > 1 for record in out.routing.values())


def _sidecar_preprocess(image: np.ndarray, spec: dict) -> np.ndarray:
    """The sidecar's recipe, written from its text alone: no aigdetect code."""
    crop = spec["crop"]
    size = crop["size"]
    height, width = image.shape[:2]
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    image = np.pad(
        image,
        ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
        constant_values=crop["pad_value"],
    )
    height, width = image.shape[:2]
    top, left = round((height - size) / 2), round((width - size) / 2)  # Python rounds halves to even
    image = image[top : top + size, left : left + size]
    assert spec["channel_order"] == "RGB" and spec["layout"] == "NCHW" and spec["dtype"] == "float32"
    mean = np.array(spec["mean"], dtype=np.float32)
    std = np.array(spec["std"], dtype=np.float32)
    x = image.astype(np.float32) / np.float32(spec["scale"])
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def test_the_sidecar_alone_reproduces_pixels_scores_and_verdicts(exported, tmp_path):
    detector, result = exported["proto-top2-cls"]
    assert result.sidecar_path == sidecar_path_for(result.model_path)
    sidecar = json.loads(result.sidecar_path.read_text())
    # (width, height): margins of 5 and 7 px, where rounding half to even differs from rounding
    # half up (2.5 -> 2) and from flooring (3.5 -> 4); and sides shorter than 32, which are padded
    sizes = [(37, 39), (39, 37), (20, 27), (32, 32), (64, 33), (31, 70)]
    paths = [write_image(tmp_path / f"{i}.png", size, seed=i) for i, size in enumerate(sizes)]
    arrays = [np.array(Image.open(p).convert("RGB")) for p in paths]
    pixels = np.stack([_sidecar_preprocess(a, sidecar["preprocessing"]) for a in arrays])
    ours = torch.stack([eval_tensor(a, detector.preprocess) for a in arrays]).numpy()
    np.testing.assert_array_equal(pixels, ours)

    model = result.sidecar_path.parent / sidecar["model"]["file"]
    assert hashlib.sha256(model.read_bytes()).hexdigest() == sidecar["model"]["sha256"] == result.sha256
    logits = _session(model).run(None, {sidecar["model"]["input"]["name"]: pixels})[0]
    scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    expected = score_images(detector, paths)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    threshold = sidecar["threshold"]
    assert threshold == 0.3
    assert [s > threshold for s in scores] == [s > threshold for s in expected]


def test_sidecar_records_identity_versions_and_default_bands(exported):
    detector, result = exported["linear-top1"]
    sidecar = result.sidecar
    assert json.loads(result.sidecar_path.read_text()) == sidecar
    assert sidecar["detector"] == detector_id(detector) == result.detector_id
    assert sidecar["aigdetect_version"] == __version__
    opsets = {o.domain: o.version for o in onnx.load(str(result.model_path)).opset_import}
    assert sidecar["model"]["opset"] == opsets[""] == result.opset
    assert sidecar["preprocessing"]["crop"]["size"] == 32
    # sigmoid(logit(t) - m) = t e^-m / (t e^-m + 1 - t), the same band written another way
    t, m = 0.3, 2.0
    low = t * math.exp(-m) / (t * math.exp(-m) + 1 - t)
    high = t * math.exp(m) / (t * math.exp(m) + 1 - t)
    assert sidecar["bands"]["low"] == pytest.approx(low, rel=1e-12)
    assert sidecar["bands"]["high"] == pytest.approx(high, rel=1e-12)


def test_thresholds_outside_zero_to_one_are_refused(tmp_path):
    detector = make_tiny_detector(CONFIGS["linear-probe"])
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="threshold"):
            export_onnx(detector, tmp_path / "bad.onnx", threshold=bad)
    assert not (tmp_path / "bad.onnx").exists()


def test_explicit_bands_are_recorded_and_checked(tmp_path):
    detector = make_tiny_detector(CONFIGS["linear-probe"])
    with pytest.raises(ConfigError, match="bands"):
        export_onnx(detector, tmp_path / "bad.onnx", bands=(0.6, 0.9))
    assert not (tmp_path / "bad.onnx").exists()
    result = export_onnx(detector, tmp_path / "m.onnx", sidecar=False, threshold=0.4, bands=(0.2, 0.7))
    assert result.sidecar_path is None and not sidecar_path_for(tmp_path / "m.onnx").exists()
    assert (result.sidecar["threshold"], result.sidecar["bands"]["low"], result.sidecar["bands"]["high"]) == (0.4, 0.2, 0.7)


def test_a_failed_export_leaves_the_previous_file_and_no_temporary(tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous export")
    half = make_tiny_detector(CONFIGS["linear-probe"]).half()
    with pytest.raises(ConfigError, match="float32"):
        export_onnx(half, out)
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_too_low_an_opset_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(make_tiny_detector(CONFIGS["linear-probe"]), tmp_path / "m.onnx", opset=13)


@pytest.mark.parametrize("module", ["onnx", "onnxscript"])
def test_missing_exporter_packages_are_a_one_line_hint(monkeypatch, tmp_path, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as info:
        export_onnx(make_tiny_detector(CONFIGS["linear-probe"]), tmp_path / "m.onnx")
    message = str(info.value)
    assert "\n" not in message and module in message and "pip install 'aigdetect[onnx]'" in message


def test_the_export_command_writes_a_graph_that_scores_like_scan(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime
    from typer.testing import CliRunner

    from aigdetect import save_detector
    from aigdetect.cli import app

    detector = make_tiny_detector(CONFIGS["linear-top1"])
    checkpoint = tmp_path / "d.safetensors"
    save_detector(detector, checkpoint)
    out = tmp_path / "d.onnx"
    result = CliRunner().invoke(app, ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--bands", "0.2,0.8"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads(sidecar_path_for(out).read_text())
    assert (sidecar["bands"]["low"], sidecar["bands"]["high"]) == (0.2, 0.8)
    pixels = torch.stack([eval_tensor(np.full((40, 36, 3), v, dtype=np.uint8), detector.preprocess) for v in (10, 200)])
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"pixels": pixels.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, detector.eval()(pixels).logits.numpy(), atol=1e-5)
    wrong = CliRunner().invoke(app, ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--format", "tflite"])
    assert wrong.exit_code == 2 and wrong.stderr.startswith("error: --format must be one of onnx")
