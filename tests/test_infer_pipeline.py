"""Scoring as the GPU runs it, checked on the CPU: the cast copy, the queued next batch, batched JPEG
decoding with its per-file fallback, and the runtime settings that choose them."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import torch
from conftest import make_tiny_detector, write_image
from PIL import Image

from aigdetect import MoLEConfig
from aigdetect.data.crops import crop_grid
from aigdetect.data.device_jpeg import Refused
from aigdetect.data.images import decode_center
from aigdetect.data.transforms import eval_tensor, normalize_pixels, to_chw
from aigdetect.engine import infer
from aigdetect.engine.infer import inference_copy, score_files
from aigdetect.engine.reading import ReadOptions
from aigdetect.engine.runtime import CpuCompute, RuntimeConfig, resolve_precision
from aigdetect.errors import ConfigError

CPU = torch.device("cpu")


def test_runtime_precision_and_gpu_decode_follow_the_device():
    config = RuntimeConfig()
    assert (config.precision, config.gpu_decode, config.compile) == ("auto", False, False)
    assert config.precision_for("cuda") == "fp16"
    assert config.precision_for("cpu") == config.precision_for("mps") == "fp32"
    assert RuntimeConfig(precision="fp32").precision_for("cuda") == "fp32"
    assert RuntimeConfig(precision="fp16").precision_for("cpu") == resolve_precision("fp16", "cpu") == "fp16"
    assert RuntimeConfig(gpu_decode=True).gpu_decode_for("cuda")
    assert not RuntimeConfig(gpu_decode=True).gpu_decode_for("cpu")
    assert not RuntimeConfig().gpu_decode_for("cuda")
    with pytest.raises(ConfigError, match="bf16 is refused for torch: its 8-bit mantissa merges adjacent pixel levels"):
        RuntimeConfig(precision="bf16")
    with pytest.raises(ConfigError, match="unknown `precision` 'fp8'"):
        RuntimeConfig(precision="fp8")


def test_inference_copy_casts_the_backbone_keeps_the_head_fp32_and_leaves_the_caller_alone():
    detector = make_tiny_detector(MoLEConfig(blocks=2)).train()
    pixels = torch.randn(4, 3, 32, 32)
    detector(pixels).lb_loss.backward()  # the bypasses now remember a forward that carries a graph
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    half = inference_copy(detector, CPU, "fp16")
    assert {p.dtype for p in half.visual.parameters()} == {torch.float16}
    assert {p.dtype for p in half.head.parameters()} == {torch.float32}
    assert not half.training and not any(p.requires_grad for p in half.parameters())
    assert detector.training and {p.dtype for p in detector.parameters()} == {torch.float32}
    assert all(torch.equal(before[k], v) for k, v in detector.state_dict().items())
    with torch.inference_mode():
        logits = half(pixels.half()).logits
    assert logits.dtype == torch.float32
    with pytest.raises(ConfigError, match="bf16 is refused"):
        inference_copy(detector, CPU, "bf16")
    same = inference_copy(detector, CPU, "fp32")
    shared = {p.data_ptr() for p in detector.parameters()}
    assert {p.data_ptr() for p in same.parameters()} == shared  # an fp32 copy on the CPU costs no memory


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_fp16_cast_scores_stay_within_tolerance_of_fp32(tmp_path):
    """fp16 is CUDA's default; the same dtype on the CPU must keep scores within 2e-3 of fp32."""
    from sklearn.datasets import load_sample_images

    detector = make_tiny_detector(MoLEConfig(blocks=3))
    paths = []
    for i, photo in enumerate(load_sample_images().images):
        for j, crop in enumerate(crop_grid(photo, 48, 16)):
            paths.append(tmp_path / f"{i}_{j}.png")
            Image.fromarray(crop).save(paths[-1])
    runs = {p: [r.score for b in score_files(detector, paths, device=CPU, precision=p) for r in b] for p in ("fp32", "fp16")}
    difference = np.abs(np.array(runs["fp16"]) - np.array(runs["fp32"]))
    assert 0 < difference.max() <= 2e-3


def _reached(forwards: list[int], count: int) -> bool:
    """Whether ``forwards`` reaches ``count`` passes while the scoring generator is paused: a batch
    that was queued runs in its compute thread meanwhile; one that was not never does."""
    deadline = time.monotonic() + 60
    while len(forwards) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return len(forwards) >= count


def test_next_batch_is_queued_before_a_batch_is_yielded_and_outputs_are_unchanged(tmp_path):
    detector = make_tiny_detector(MoLEConfig(blocks=2))
    forwards: list[int] = []
    detector.register_forward_hook(lambda module, inputs, output: forwards.append(len(inputs[0])))  # the copy keeps it
    paths = [write_image(tmp_path / f"{i}.png", (40 + i, 36 + i % 3), seed=i) for i in range(7)]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    paths.insert(2, bad)
    batches = score_files(detector, paths, device=CPU, batch_size=3)
    seen = []
    for batch in batches:
        queued = min(len(seen) + 2, 3)  # this batch and the next, queued before this one is handed back
        assert _reached(forwards, queued), f"batch {len(seen) + 1} was handed back before the next was queued"
        seen.append([r.index for r in batch])
    assert seen == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert forwards == [2, 3, 2]
    records = {r.index: r for b in score_files(detector, paths, device=CPU, batch_size=3) for r in b}
    assert records[2].error_reason == "unsupported" and records[2].score is None
    detector.eval()
    with torch.inference_mode():
        for start in range(0, len(paths), 3):
            good = [i for i in range(start, min(start + 3, len(paths))) if paths[i] != bad]
            pixels = torch.stack([to_chw(decode_center(paths[i], 32).array) for i in good])
            expected = torch.sigmoid(detector(normalize_pixels(pixels, detector.preprocess)).logits).numpy()
            assert [records[i].score for i in good] == [float(v) for v in expected]


def test_a_compute_bound_cpu_model_scores_in_single_threaded_streams_with_unchanged_scores(tmp_path, monkeypatch):
    monkeypatch.setattr("aigdetect.engine.runtime.SMALL_MODEL_PARAMETERS", 1)
    monkeypatch.setattr("aigdetect.engine.runtime.available_cores", lambda: 2)
    detector = make_tiny_detector(MoLEConfig(blocks=2))
    seen: list[tuple[str, int]] = []
    detector.register_forward_hook(
        lambda module, inputs, output: seen.append((threading.current_thread().name, torch.get_num_threads()))
    )
    paths = [write_image(tmp_path / f"{i}.png", (40 + i, 36), seed=i) for i in range(9)]
    records = [r for batch in score_files(detector, paths, device=CPU, batch_size=2, workers=1) for r in batch]
    assert [r.index for r in records] == list(range(9))
    assert len(seen) == 5 and {threads for _, threads in seen} == {1}
    assert {name for name, _ in seen} <= {"aigdetect-compute-0", "aigdetect-compute-1"}
    detector.eval()
    with torch.inference_mode():
        pixels = torch.stack([to_chw(decode_center(p, 32).array) for p in paths])
        expected = torch.sigmoid(detector(normalize_pixels(pixels, detector.preprocess)).logits).flatten()
    assert torch.allclose(torch.tensor([r.score for r in records]), expected, rtol=1e-5, atol=1e-7)


def test_an_error_in_a_compute_thread_reaches_the_caller(tmp_path):
    detector = make_tiny_detector()

    def fail(module, inputs, output):
        raise RuntimeError("forward failed")

    detector.register_forward_hook(fail)
    paths = [write_image(tmp_path / f"{i}.png", (40, 36), seed=i) for i in range(3)]
    with pytest.raises(RuntimeError, match="forward failed"):
        list(score_files(detector, paths, device=CPU, batch_size=2))


def test_closing_stops_the_batches_in_flight_at_their_next_block():
    model = make_tiny_detector(MoLEConfig(blocks=2)).eval()
    entered, gate = threading.Event(), threading.Event()
    blocks = next(child for child in model.modules() if isinstance(child, torch.nn.ModuleList))

    def hold(module, inputs):
        entered.set()
        assert gate.wait(60)

    blocks[0].register_forward_pre_hook(hold)  # runs before the compute threads' own check
    compute = infer._ComputeThreads(CpuCompute(streams=2, threads=1), model)
    pixels = torch.zeros(2, 3, model.image_size, model.image_size)
    futures = [compute.submit(torch.inference_mode()(model), pixels) for _ in range(3)]
    assert entered.wait(60)
    closer = threading.Thread(target=compute.close)
    closer.start()
    assert compute._stop.wait(60)
    gate.set()
    closer.join(60)
    assert not closer.is_alive()
    assert all(isinstance(future.exception(), infer.Stopped) for future in futures)
    assert not any(thread.is_alive() for thread in compute._threads)
    assert model(pixels).logits.shape == (2,)  # the hooks are gone: the model runs again


def _jpeg(path, array, mode="RGB", **options):
    Image.fromarray(array).convert(mode).save(path, format="JPEG", quality=90, **options)
    return path


def _mixed_files(tmp_path):
    rng = np.random.default_rng(5)

    def smooth(width, height):
        small = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))

    buffer = io.BytesIO()
    Image.fromarray(smooth(60, 50)).save(buffer, format="JPEG")
    return [
        _jpeg(tmp_path / "a_big.jpg", smooth(300, 200)),
        _jpeg(tmp_path / "b_small.jpg", smooth(20, 14), subsampling=0),
        _jpeg(tmp_path / "c_gray.jpg", smooth(70, 50), mode="L"),
        _jpeg(tmp_path / "d_cmyk.jpg", smooth(64, 64), mode="CMYK"),
        write_image(tmp_path / "e.png", (50, 40), seed=1),
        _jpeg(tmp_path / "f_prog.jpg", smooth(90, 61), progressive=True),
        tmp_path / "g_cut.jpg",
        _jpeg(tmp_path / "h_last.jpg", smooth(33, 40)),
    ], buffer.getvalue()


@pytest.mark.parametrize("workers", [0, 2])
def test_gpu_decode_path_gives_the_cpu_pipeline_records_and_falls_back_per_file(tmp_path, monkeypatch, workers):
    """On the CPU, decode_jpeg is libjpeg-turbo like Pillow: records must equal the plain scan's."""
    paths, whole = _mixed_files(tmp_path)
    (tmp_path / "g_cut.jpg").write_bytes(whole[: len(whole) // 2])
    detector = make_tiny_detector()
    plain = [r for b in score_files(detector, paths, device=CPU, batch_size=3, workers=workers) for r in b]
    on_device: list[int] = []
    real = infer.decode_centers
    refuse = (tmp_path / "h_last.jpg").read_bytes()

    def spy(files, size, device):
        crops = real(files, size, device)
        on_device.extend(len(f.data) for f in files)
        return [Refused("refused by the test") if f.data == refuse else c for f, c in zip(files, crops)]

    monkeypatch.setattr(infer, "decode_centers", spy)
    batched = [r for b in score_files(detector, paths, device=CPU, batch_size=3, workers=workers, gpu_decode=True) for r in b]
    assert {r.path: r.device_decode_refused for r in batched if r.device_decode_refused} == {
        str(tmp_path / "h_last.jpg"): "refused by the test"}
    for record in batched:
        record.device_decode_refused = None
    assert [vars(r) for r in batched] == [vars(r) for r in plain]
    assert sorted(on_device) == sorted(p.stat().st_size for p in paths if p.stem in ("a_big", "b_small", "c_gray", "f_prog", "h_last"))
    assert plain[6].error_reason == "truncated" and plain[3].ok and plain[4].ok


def test_gpu_decode_is_left_to_the_workers_when_crops_or_perturbations_need_the_whole_image(tmp_path, monkeypatch):
    paths, _ = _mixed_files(tmp_path)
    paths = [p for p in paths if p.exists()]
    monkeypatch.setattr(infer, "decode_centers", lambda *a: pytest.fail("no device decode with crops"))
    detector = make_tiny_detector()
    records = [r for b in score_files(detector, paths, device=CPU, reading=ReadOptions(32, crops=2), gpu_decode=True) for r in b]
    array = np.asarray(Image.open(paths[0]).convert("RGB"))
    with torch.inference_mode():
        views = torch.stack([eval_tensor(array, detector.preprocess)] + [eval_tensor(c, detector.preprocess) for c in crop_grid(array, 32, 2)])
        expected = torch.sigmoid(detector(views).logits).numpy()
    assert np.allclose([records[0].score, *records[0].crop_scores], expected, rtol=1e-5)


@pytest.mark.slow
def test_compiled_model_scores_like_the_eager_one_across_short_batches(tmp_path):
    detector = make_tiny_detector(MoLEConfig(blocks=2))
    paths = [write_image(tmp_path / f"{i}.png", (36, 40), seed=i) for i in range(5)]
    (tmp_path / "bad.png").write_bytes(b"junk")
    paths.insert(1, tmp_path / "bad.png")
    eager = [r.score for b in score_files(detector, paths, device=CPU, batch_size=4) for r in b]
    compiled = [r.score for b in score_files(detector, paths, device=CPU, batch_size=4, compile=True) for r in b]
    assert eager[1] is None and compiled[1] is None
    assert np.allclose([s for s in compiled if s is not None], [s for s in eager if s is not None], atol=1e-6)


def test_scan_summary_counts_the_files_the_device_decoder_gave_back(tmp_path, monkeypatch):
    from aigdetect.cli.scan import _summary_text
    from aigdetect.scan import ScanConfig, run_scan

    folder = tmp_path / "photos"
    for index in range(3):
        write_image(folder / f"{index}.jpg", size=(40, 36), seed=index)
    refused = (folder / "1.jpg").read_bytes()
    real = infer.decode_centers

    def spy(files, size, device):
        return [Refused("Corrupt JPEG data") if f.data == refused else c for f, c in zip(files, real(files, size, device))]

    monkeypatch.setattr(infer, "decode_centers", spy)
    monkeypatch.setattr(RuntimeConfig, "gpu_decode_for", lambda self, device_type: True)
    config = ScanConfig(paths=(str(folder),), out=str(tmp_path / "rows.csv"), runtime=RuntimeConfig(device="cpu", workers=0))
    result = run_scan(make_tiny_detector(), config)
    summary = result.as_dict()
    assert (summary["gpu_decode_fallbacks"], summary["gpu_decode_fallback_reasons"]) == (1, {"Corrupt JPEG data": 1})
    assert (summary["files"], summary["errors"]) == (3, 0)
    assert "1 JPEG decoded on the CPU after the GPU decoder refused them (most often: Corrupt JPEG data)" in _summary_text(result)
