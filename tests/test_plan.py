"""The runtime plan: resolved once from the runtime config and the model's size, against hand-computed
values, and the same plan (the same logged line) for a scan and a benchmark of one model."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_detector, write_image

from aigdetect.engine.plan import RuntimePlan, known_device
from aigdetect.engine.runtime import CpuCompute, RuntimeConfig
from aigdetect.evaluation.bench import run_bench
from aigdetect.evaluation.bench_config import BenchConfig
from aigdetect.evaluation.suites import discover_pair
from aigdetect.scan.config import ScanConfig
from aigdetect.scan.runner import run_scan

SMALL, CLIP = 65_000, 88_000_000


@pytest.mark.parametrize(
    "runtime, device, parameters, cores, expected",
    [
        # CLIP-sized on 16 cores: 16 // 4 = 4 workers; window 32 * 2 + 4 * 2 = 72; 2 streams of 16 // 2 = 8 threads.
        (RuntimeConfig(), "cpu", CLIP, 16, dict(batch_size=32, workers=4, window=72, compute=CpuCompute(2, 8), threads=None, precision="fp32")),
        # small on 16 cores: half the cores decode (8); one stream on the 16 - 8 = 8 cores left, which also cap intra-op threads.
        (RuntimeConfig(), "cpu", SMALL, 16, dict(batch_size=32, workers=8, window=80, compute=CpuCompute(1, 8), threads=8, precision="fp32")),
        # small on 2 cores: at least 2 workers; 2 - 2 leaves none, so 1 thread.
        (RuntimeConfig(), "cpu", SMALL, 2, dict(batch_size=32, workers=2, window=68, compute=CpuCompute(1, 1), threads=1, precision="fp32")),
        # CLIP-sized on 2 cores: 2 // 4 = 0 -> 1 worker; window 64 + 2 = 66; 2 streams of 1 thread.
        (RuntimeConfig(), "cpu", CLIP, 2, dict(batch_size=32, workers=1, window=66, compute=CpuCompute(2, 1), threads=None, precision="fp32")),
        # beside a GPU: one worker per core (16); batch 128; window 256 + 32 = 288; fp16; no CPU streams.
        (RuntimeConfig(gpu_decode=True), "cuda", CLIP, 16, dict(batch_size=128, workers=16, window=288, compute=None, threads=None, precision="fp16", gpu_decode=True)),
        (RuntimeConfig(), "cuda:1", CLIP, 200, dict(batch_size=128, workers=64, window=384, compute=None, threads=None, precision="fp16")),
        # explicit settings win; gpu_decode needs CUDA; a CPU engine computes in one stream of its own.
        (RuntimeConfig(batch_size=8, workers=0, gpu_decode=True), "cpu", SMALL, 4, dict(batch_size=8, workers=0, window=16, compute=CpuCompute(1, 4), threads=None, gpu_decode=False)),
        (RuntimeConfig(backend="onnxruntime", precision="int8", workers=2), "cpu", SMALL, 8, dict(workers=2, window=68, compute=None, threads=6, precision="int8")),
        (RuntimeConfig(compile=True), "cpu", CLIP, 8, dict(workers=2, window=68, compute=None, threads=None, compile=True)),
        (RuntimeConfig(), "mps", CLIP, 8, dict(batch_size=32, workers=8, precision="fp32", compute=None)),
    ],
)  # fmt: skip
def test_plan_resolves_against_hand_computed_values(runtime, device, parameters, cores, expected):
    plan = RuntimePlan.resolve(runtime, device, parameters, cores=cores)
    assert {name: getattr(plan, name) for name in expected} == expected
    assert plan.device == device and plan.engine == f"{runtime.backend}-{plan.precision}"


def test_ranks_share_the_default_workers_but_never_an_explicit_count():
    assert RuntimePlan.resolve(RuntimeConfig(), "cuda", CLIP, ranks=4, cores=16).workers == 4
    assert RuntimePlan.resolve(RuntimeConfig(), "cuda", CLIP, ranks=32, cores=16).workers == 1
    assert RuntimePlan.resolve(RuntimeConfig(workers=3), "cuda", CLIP, ranks=4, cores=16).workers == 3


def test_the_plan_describes_itself_in_one_line():
    plan = RuntimePlan.resolve(RuntimeConfig(), "cpu", CLIP, cores=16)
    assert plan.describe() == (
        "runtime plan: device cpu, engine torch-fp32, batch 32, 4 decode workers, window 72, 2 compute streams x 8 threads"
    )
    small = RuntimePlan.resolve(RuntimeConfig(workers=0), "cpu", SMALL, cores=1)
    assert small.describe() == (
        "runtime plan: device cpu, engine torch-fp32, batch 32, decoding in-process, window 64, 1 compute stream x 1 thread"
    )


def test_known_device_needs_no_torch_only_when_certain(monkeypatch):
    assert known_device("cuda:1") == "cuda:1" and known_device("cpu") == "cpu"
    monkeypatch.setattr("aigdetect.engine.runtime.cuda_ruled_out", lambda: False)
    assert known_device("auto") is None


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_autocast_is_fp16_on_cuda_only_where_the_plan_says_fp16():
    assert isinstance(RuntimePlan.resolve(RuntimeConfig(), "cuda", CLIP).autocast(), torch.autocast)
    assert not isinstance(RuntimePlan.resolve(RuntimeConfig(precision="fp32"), "cuda", CLIP).autocast(), torch.autocast)
    assert not isinstance(RuntimePlan.resolve(RuntimeConfig(), "cpu", CLIP).autocast(), torch.autocast)


def test_scan_and_bench_of_one_model_log_the_same_plan(tmp_path: Path, caplog):
    for label in ("real", "fake"):
        for i in range(3):
            write_image(tmp_path / label / f"{i}.png", seed=10 * (label == "fake") + i)
    detector = make_tiny_detector()
    runtime = RuntimeConfig(device="cpu", workers=1, batch_size=4)
    with caplog.at_level(logging.INFO, logger="aigdetect.plan"):
        run_scan(detector, ScanConfig(paths=(str(tmp_path),), output_format="jsonl", runtime=runtime), stream=io.StringIO())
        scanned = [r.getMessage() for r in caplog.records]
        caplog.clear()
        run_bench(detector, discover_pair(tmp_path / "real", tmp_path / "fake", "pair"), origin="tiny", device=torch.device("cpu"),
                  config=BenchConfig(runtime=runtime))  # fmt: skip
        benched = [r.getMessage() for r in caplog.records]
    assert len(scanned) == 1 and scanned == benched
    assert scanned[0].startswith("runtime plan: device cpu, engine torch-fp32, batch 4, 1 decode worker, window 10, ")


def test_verbose_prints_the_scan_plan_once_on_stderr(tmp_path: Path, tiny_checkpoint: Path):
    from typer.testing import CliRunner

    from aigdetect.cli import app

    write_image(tmp_path / "imgs" / "a.png")
    args = ["scan", str(tmp_path / "imgs"), "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--workers", "0",
            "--format", "jsonl"]  # fmt: skip
    quiet = CliRunner().invoke(app, args)
    try:
        loud = CliRunner().invoke(app, ["--verbose", *args])
    finally:
        logging.getLogger("aigdetect").handlers = []
        logging.getLogger("aigdetect").propagate = True
        logging.getLogger("aigdetect").setLevel(logging.NOTSET)
    assert loud.exit_code == 0 and quiet.exit_code == 0, loud.output
    plans = [line for line in loud.stderr.splitlines() if line.startswith("runtime plan: ")]
    assert len(plans) == 1
    assert plans[0].startswith("runtime plan: device cpu, engine torch-fp32, batch 32, decoding in-process, window 64, 1 compute stream x ")
    assert "runtime plan" not in quiet.stderr and loud.stdout == quiet.stdout
