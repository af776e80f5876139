"""The prepared GPU command, dry-run on the CPU: every stage runs, writes its figures as it goes, and
reports start-up apart from the steady rate (the device figures themselves are in RESULTS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_phases_split_start_up_from_the_steady_rate():
    times = iter([101.0, 102.0, 104.0])
    phases = load_benchmark("gpu_check").Phases(spawned=100.0, clock=lambda: next(times))
    assert phases.figures() == {"startup_s": None, "steady_img_per_s": None, "steady_files": 0}
    for done in (0, 32, 64, 96):  # the scan reports 0 before its first batch
        phases.batch_done(done)
    assert phases.figures() == {"startup_s": 1.0, "steady_img_per_s": 21.3, "steady_files": 64}


@pytest.mark.slow
def test_the_device_chain_dry_runs_on_the_cpu(tmp_path: Path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--dry-run"], env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    stages = (tmp_path / "device_check.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in stages] == ["preflight", "gpu_check", *["train_throughput tests/assets/tiny.json"] * 2]
    assert all(": exit 0 after " in line for line in stages)
    assert "IMPORT FAILED" not in (tmp_path / "preflight.txt").read_text()
    steps = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    png = steps["scan tiny png256"]
    for child in (png["scan"], png["baseline"]):
        assert child["startup_s"] > 0 and child["steady_img_per_s"] > 0
        assert child["steady_files"] == child["files"] - (4 if child is png["scan"] else 8)
    assert png["scan_over_baseline"] == round(png["scan"]["steady_img_per_s"] / png["baseline"]["steady_img_per_s"], 2)
    decode = steps["gpu decode tiny jpeg12mp"]
    assert decode["scan_gpu_decode"]["gpu_decode_fallbacks"] == 0 and decode["max_pixel_diff"] == 0
    assert "start-up" in (tmp_path / "gpu_check.txt").read_text()
    for index in (0, 1):
        figures = json.loads((tmp_path / f"train_tiny_{index}.json").read_text())
        assert (figures["recipe"], figures["batch"]) == ("paper", 8)
