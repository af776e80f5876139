"""The scan-throughput benchmark runs whole scan and baseline processes and finds their scores equal."""

from __future__ import annotations

import pytest
from conftest import load_benchmark


@pytest.mark.slow
def test_quick_mode_times_both_processes_and_matches_their_scores(capsys):
    results = load_benchmark("scan_throughput").main(["--quick"])
    [scan], [baseline], difference = results["png256"]
    assert scan > 0 and baseline > 0 and difference <= 1e-6
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"ratio scan/baseline: {scan / baseline:.2f}"
    assert "files      8" in printed[1]
