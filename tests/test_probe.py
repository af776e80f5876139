"""``train --probe``: features cached once, the head fitted on them; a refit decodes nothing."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG
from typer.testing import CliRunner

from aigdetect import MoLEConfig, create_detector, load_detector
from aigdetect.cli import app
from aigdetect.data.config import AugmentConfig
from aigdetect.data.images import decode_image
from aigdetect.data.layouts import prepare_training_data
from aigdetect.data.synthetic import write_synthetic_dataset
from aigdetect.errors import ConfigError
from aigdetect.metrics import accuracy, average_precision
from aigdetect.training import probe as probe_module
from aigdetect.training.config import ProbeConfig, TrainConfig
from aigdetect.training.feature_cache import FeatureCache, backbone_fingerprint
from aigdetect.training.probe import extract, fit_head, fit_probe, view_metrics, view_pixels

pytestmark = pytest.mark.usefixtures("one_torch_thread")
AUGMENT = AugmentConfig(blur_prob=0.5, jpeg_prob=0.5)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe") / "data"
    write_synthetic_dataset(root, "wang2020", per_class=6, size=40, seed=4, val_per_class=3)
    return root


@pytest.fixture()
def decodes(monkeypatch):
    """Counts the images the probe decodes."""
    count = {"n": 0}

    def counting(*args, **kwargs):
        count["n"] += 1
        return decode_image(*args, **kwargs)

    monkeypatch.setattr(probe_module, "decode_image", counting)
    return count


def _config(data, tmp_path, **probe) -> TrainConfig:
    return TrainConfig(out=str(tmp_path / "probe.safetensors"), data=str(data), model=str(TINY_CONFIG), backbone_weights="none",
                       mole=MoLEConfig(blocks=0), augment=AUGMENT, epochs=3, batch_size=8, lr=0.05,
                       probe=ProbeConfig(**probe))  # fmt: skip


def _detector():
    return create_detector(TINY_CONFIG, MoLEConfig(blocks=0), backbone_weights="none").eval()


def test_a_second_fit_reads_the_cache_decodes_nothing_and_fits_the_same_head(data, tmp_path, decodes):
    config = _config(data, tmp_path, feature_cache=str(tmp_path / "fc"), views=2)
    config = TrainConfig(**{**config.__dict__, "log": str(tmp_path / "probe.jsonl")})
    first = fit_probe(config, lambda event: None)
    images = first["train_images"] + first["val_images"]
    logged = json.loads((tmp_path / "probe.jsonl").read_text().splitlines()[0])
    assert logged["event"] == "probe" and logged["decoded"] == images and len(logged["views"]) == 3
    assert decodes["n"] == first["decoded"] == images and first["cache_writes"] == 3 * images
    head = load_detector(config.out).head.state_dict()
    second = fit_probe(config, lambda event: None)
    assert decodes["n"] == images and second["decoded"] == 0 and second["cache_hits"] == 3 * images
    assert all(torch.equal(v, load_detector(config.out).head.state_dict()[k]) for k, v in head.items())
    assert second["views"] == first["views"] and len(first["views"]) == 3


def test_a_changed_file_invalidates_only_its_entry(data, tmp_path, decodes):
    copy = tmp_path / "copy"
    os.system(f"cp -r {data} {copy}")
    config = _config(copy, tmp_path, feature_cache=str(tmp_path / "fc"))
    fit_probe(config, lambda event: None)
    before = decodes["n"]
    changed = sorted((copy / "train").rglob("*.png"))[0]
    pixels = np.asarray(decode_image(changed).array).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    from PIL import Image

    Image.fromarray(pixels).save(changed)
    summary = fit_probe(config, lambda event: None)
    assert summary["decoded"] == 1 and decodes["n"] == before + 1


def test_fitting_on_cached_features_equals_fitting_with_the_frozen_forward(data, tmp_path):
    """Cached features (read back from disk) and features from a fresh forward of every view give
    the same head after k AdamW steps, with the same seed and views."""
    detector = _detector()
    split = prepare_training_data(data=str(data), seed=0)
    cache = FeatureCache(tmp_path / "fc", backbone_fingerprint(detector), detector.head.in_features, 1 << 30)
    extract(detector, split.train, 1, AUGMENT, 0, cache, max_pixels=10**8, max_bytes=1 << 30)
    cached = extract(detector, split.train, 1, AUGMENT, 0, cache, max_pixels=10**8, max_bytes=1 << 30)
    assert cached.decoded == 0
    fresh = torch.zeros_like(cached.features)
    with torch.inference_mode():
        for index, sample in enumerate(split.train):
            array = decode_image(sample.path).array
            content = __import__("hashlib").sha256(sample.path.read_bytes()).hexdigest()
            for view in range(2):
                crop = view_pixels(array, view, detector.image_size, AUGMENT, 0, content)
                pixels = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None]
                fresh[index, view] = detector.visual(probe_module.normalize_pixels(pixels, detector.preprocess))[0]
    labels = torch.tensor([float(s.label) for s in split.train]).repeat_interleave(2)
    config = _config(data, tmp_path)
    heads = []
    for features in (cached.features, fresh):
        head = torch.nn.Linear(features.shape[-1], 1)
        torch.manual_seed(0)
        head.reset_parameters()
        steps = fit_head(head, features.reshape(-1, features.shape[-1]), labels, config, "adamw")
        heads.append(head)
    assert steps == 3 * -(-len(labels) // 8)  # 3 epochs of batches of 8
    torch.testing.assert_close(heads[0].weight, heads[1].weight, atol=1e-5, rtol=0)


def test_validation_reports_ap_and_accuracy_per_view(data, tmp_path):
    detector = _detector()
    split = prepare_training_data(data=str(data), seed=0)
    val = extract(detector, split.val, 2, AUGMENT, 0, None, max_pixels=10**8, max_bytes=1 << 30)
    labels = torch.tensor([float(s.label) for s in split.val])
    rows = view_metrics(detector.head, val, labels)
    assert [r["view"] for r in rows] == [0, 1, 2]
    with torch.no_grad():
        scores = torch.sigmoid(detector.head(val.features[:, 2]).squeeze(-1)).numpy()
    assert rows[2]["ap"] == average_precision(labels.numpy(), scores)
    assert rows[2]["acc"] == accuracy(labels.numpy(), scores, 0.5).overall


def test_lbfgs_solver_fits_a_separable_problem():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=generator)
    y = (x[:, 0] > 0).float()
    head = torch.nn.Linear(5, 1)
    config = TrainConfig(out="x.safetensors", data=".", epochs=2, weight_decay=0.001)
    assert fit_head(head, x, y, config, "lbfgs") > 0
    assert ((head(x).squeeze(-1) > 0).float() == y).all()


def test_two_runs_sharing_a_cache_leave_every_entry_whole(data, tmp_path):
    detector = _detector()
    split = prepare_training_data(data=str(data), seed=0)
    root = tmp_path / "fc"

    def run():
        cache = FeatureCache(root, backbone_fingerprint(detector), detector.head.in_features, 1 << 30)
        extract(detector, split.train, 1, AUGMENT, 0, cache, max_pixels=10**8, max_bytes=1 << 30)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not list(root.rglob("*.tmp"))
    cache = FeatureCache(root, backbone_fingerprint(detector), detector.head.in_features, 1 << 30)
    again = extract(detector, split.train, 1, AUGMENT, 0, cache, max_pixels=10**8, max_bytes=1 << 30)
    fresh = extract(detector, split.train, 1, AUGMENT, 0, None, max_pixels=10**8, max_bytes=1 << 30)
    assert again.decoded == 0 and torch.equal(again.features, fresh.features)


def test_eviction_removes_the_least_recently_used_entries(tmp_path):
    cache = FeatureCache(tmp_path, "f" * 64, 4, max_bytes=1)
    for i, name in enumerate("abc"):
        cache.put(name, "center", np.full(4, i, dtype=np.float32))
        path = cache._path(name, "center")
        os.utime(path, ns=(10**18 + i, 10**18 + i))
    entry = cache._path("a", "center").stat().st_size
    cache.max_bytes = 2 * entry
    assert cache.get("a", "center") is not None  # a read makes "a" the most recently used
    assert cache.evict() == 1 and cache.size() == 2 * entry
    assert cache.get("b", "center") is None and cache.get("a", "center") is not None
    (cache._path("c", "center")).write_bytes(b"not an npy file")
    assert cache.get("c", "center") is None


@pytest.mark.parametrize("values", [{"views": -1}, {"views": 65}, {"solver": "sgd"}, {"cache_bytes": 0}])
def test_probe_config_refuses_bad_values(values):
    with pytest.raises(ConfigError):
        ProbeConfig(**values)


def test_cli_probe_trains_a_detector_that_scores(data, tmp_path):
    out = tmp_path / "probe.safetensors"
    args = ["train", "--data", str(data), "--model", str(TINY_CONFIG), "--backbone-weights", "none", "--probe",
            "--feature-cache", str(tmp_path / "fc"), "--views", "1", "--epochs", "2", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "augmented view 1: val AP" in result.stdout
    detector = load_detector(out)
    assert detector.mole.blocks == 0 and not detector.bypasses and detector.provenance["probe"]["solver"] == "adamw"
    refused = CliRunner().invoke(app, [*args, "--blocks", "2"])
    assert refused.exit_code == 2 and "takes no --blocks" in refused.stderr
    refused = CliRunner().invoke(app, [*args[:-4], "--steps", "5", "--out", str(out)])
    assert refused.exit_code == 2 and "--steps" in refused.stderr


def test_the_benchmark_reports_a_second_fit_that_decodes_nothing(capsys):
    from conftest import load_benchmark

    figures = load_benchmark("probe_cache").main(["--n", "12", "--model", str(TINY_CONFIG), "--size", "40", "--epochs", "1"])
    assert figures["first_decoded"] == figures["images"] and figures["second_decoded"] == 0
    assert figures["cache_bytes_per_image"] > 16 * 4  # 16 float32 features and the .npy header
    assert "ratio:" in capsys.readouterr().out


WRITER = """
import sys
import numpy as np
from aigdetect.training.feature_cache import FeatureCache
cache = FeatureCache(sys.argv[1], "e" * 64, 8, max_bytes=int(sys.argv[2]))
for round in range(3):
    for i in range(40):
        cache.put(f"file{i}", "center", np.full(8, i, dtype=np.float32))
        got = cache.get(f"file{(i * 7) % 40}", "center")
        assert got is None or np.array_equal(got, np.full(8, (i * 7) % 40, dtype=np.float32))
        if i % 10 == 9:
            cache.evict()
"""


def test_two_processes_writing_and_evicting_one_cache_leave_only_whole_entries(tmp_path):
    import subprocess
    import sys

    entry = 128 + 8 * 4
    env = {**os.environ, "PYTHONPATH": str(TINY_CONFIG.parents[2])}
    runs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(25 * entry)], env=env) for _ in range(2)]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    cache = FeatureCache(tmp_path, "e" * 64, 8, max_bytes=25 * entry)
    cache.evict()
    entries = list(tmp_path.rglob("*.npy"))
    assert 0 < len(entries) <= 25 and not list(tmp_path.rglob("*.tmp"))
    whole = [i for i in range(40) if cache.get(f"file{i}", "center") is not None]
    assert len(whole) == len(entries)
    assert all(np.array_equal(cache.get(f"file{i}", "center"), np.full(8, i, dtype=np.float32)) for i in whole)
