"""Batched scoring: order, error records, crops, and the CPU thread budget beside decode workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_detector, write_image
from PIL import Image

from aigdetect import score_images
from aigdetect.data.crops import crop_grid
from aigdetect.data.transforms import eval_tensor
from aigdetect.engine.infer import ScoringSession, resolve_device, score_files
from aigdetect.engine.plan import RuntimePlan
from aigdetect.engine.reading import ReadOptions
from aigdetect.engine.runtime import CpuCompute, RuntimeConfig, cpu_compute, default_workers
from aigdetect.errors import InputError


def test_records_keep_order_errors_and_match_detector_scores(tmp_path):
    detector = make_tiny_detector()
    good = [write_image(tmp_path / f"{i}.png", (40 + i, 36), seed=i) for i in range(5)]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    paths = [good[0], bad, *good[1:]]
    batches = list(score_files(detector, paths, device=torch.device("cpu"), batch_size=2))
    records = [r for batch in batches for r in batch]
    assert [len(b) for b in batches] == [2, 2, 2]
    assert [r.path for r in records] == [str(p) for p in paths]
    assert records[1].error_reason == "unsupported" and records[1].score is None
    expected = score_images(detector, [str(p) for p in good])
    assert np.allclose([r.score for r in records if r.ok], expected, rtol=1e-5, atol=1e-6)
    assert (records[0].width, records[0].height, records[0].format) == (40, 36, "PNG")


def test_crop_scores_are_the_scores_of_the_grid_crops(tmp_path):
    detector = make_tiny_detector()
    path = write_image(tmp_path / "big.png", (90, 70), seed=3)
    record = next(iter(score_files(detector, [path], device=torch.device("cpu"), reading=ReadOptions(32, crops=4))))[0]
    array = np.asarray(Image.open(path).convert("RGB"))
    with torch.no_grad():
        views = torch.stack([eval_tensor(array, detector.preprocess)] + [eval_tensor(c, detector.preprocess) for c in crop_grid(array, 32, 4)])
        expected = torch.sigmoid(detector(views).logits).numpy()
    assert record.score == pytest.approx(float(expected[0]), rel=1e-5)
    assert np.allclose(record.crop_scores, expected[1:], rtol=1e-5)


def test_cpu_threads_leave_room_for_workers_beside_small_models(monkeypatch):
    monkeypatch.setattr("aigdetect.engine.runtime.available_cores", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    small, clip_sized = 65_000, 88_000_000

    def threads_beside_workers(device: str, workers: int, parameters: int):
        return RuntimePlan.resolve(RuntimeConfig(workers=workers), device, parameters).threads_beside_workers()

    cpu = "cpu"
    try:
        with threads_beside_workers(cpu, 1, small):
            assert torch.get_num_threads() == 3
        with threads_beside_workers(cpu, 8, small):
            assert torch.get_num_threads() == 1
        with threads_beside_workers(cpu, 0, small):
            assert torch.get_num_threads() == 4
        with threads_beside_workers(cpu, 2, clip_sized):
            assert torch.get_num_threads() == 4
        assert torch.get_num_threads() == 4
        assert default_workers("cpu") == 2 and default_workers("cuda") == 4
        monkeypatch.setattr("aigdetect.engine.runtime.available_cores", lambda: 32)
        assert default_workers("cpu") == 16 and default_workers("cuda") == 32
        monkeypatch.setattr("aigdetect.engine.runtime.available_cores", lambda: 192)
        assert default_workers("cpu") == 64 and default_workers("cuda") == 64
        assert default_workers("cpu", small) == 64 and default_workers("cpu", clip_sized) == 48
        monkeypatch.setattr("aigdetect.engine.runtime.available_cores", lambda: 2)
        assert default_workers("cpu", small) == 2 and default_workers("cpu", clip_sized) == 1
        assert default_workers("cpu", None) == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    "parameters, workers, cores, split",
    [
        (88_000_000, 1, 2, CpuCompute(streams=2, threads=1)),
        (88_000_000, 2, 8, CpuCompute(streams=2, threads=4)),
        (88_000_000, 1, 1, CpuCompute(streams=1, threads=1)),
        (65_000, 2, 4, CpuCompute(streams=1, threads=2)),
        (65_000, 8, 4, CpuCompute(streams=1, threads=1)),
        (65_000, 0, 4, CpuCompute(streams=1, threads=4)),
    ],
)
def test_cpu_compute_splits_the_cores_by_what_bounds_the_model(parameters, workers, cores, split):
    assert cpu_compute(parameters, workers, cores) == split


def test_device_resolution_falls_back_and_refuses_missing_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(InputError, match="no CUDA device is available"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="unknown `device` 'tpu'"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(InputError, match="no Apple MPS device"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device("mps") == torch.device("mps")


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_half_precision_path_stays_within_tolerance_of_fp32():
    """CUDA runs under fp16 autocast; the same dtype on the CPU must keep scores within 2e-3."""
    from sklearn.datasets import load_sample_images

    cuda_autocast = RuntimePlan.resolve(RuntimeConfig(), "cuda", 1).autocast()
    assert isinstance(cuda_autocast, torch.autocast) and cuda_autocast.fast_dtype == torch.float16
    detector = make_tiny_detector().eval()
    photos = load_sample_images().images
    pixels = torch.stack([eval_tensor(crop, detector.preprocess) for photo in photos for crop in crop_grid(photo, 32, 16)])
    with torch.inference_mode():
        full = torch.sigmoid(detector(pixels).logits)
        with torch.autocast("cpu", dtype=cuda_autocast.fast_dtype):
            half = torch.sigmoid(detector(pixels).logits.float())
    assert float((full - half).abs().max()) <= 2e-3


def test_a_scoring_session_gives_score_files_records_call_after_call(tmp_path):
    detector = make_tiny_detector()
    paths = [str(write_image(tmp_path / f"{i}.png", size=(40 + i, 36), seed=i)) for i in range(5)]
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    paths.insert(2, str(tmp_path / "bad.jpg"))
    reading = ReadOptions(size=detector.image_size, crops=2, sha256=True)
    expected = [r for batch in score_files(detector, paths, device=torch.device("cpu"), reading=reading) for r in batch]
    plan = RuntimePlan.resolve(RuntimeConfig(device="cpu", workers=2, batch_size=2), "cpu", None)
    session = ScoringSession(detector, plan, reading)
    try:
        for chosen in (paths, paths[3:], paths[:1]):
            got = session.score(chosen, reading)
            want = [e for e in expected if e.path in chosen]
            assert [(r.path, r.sha256, r.error_reason) for r in got] == [(e.path, e.sha256, e.error_reason) for e in want]
            for r, e in zip(got, want):
                assert (r.score is None) == (e.score is None)
                if r.score is not None:
                    assert r.score == pytest.approx(e.score, abs=1e-6)
                    np.testing.assert_allclose(r.crop_scores, e.crop_scores, atol=1e-6)
        with pytest.raises(ValueError, match="same way"):
            session.score(paths, ReadOptions(size=detector.image_size))
    finally:
        session.close()
