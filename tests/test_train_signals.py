"""``aigdetect train`` stopped by SIGTERM (a scheduler's pre-emption, ``kill``, ``docker stop``) exits 143
with one line and leaves a state from which ``--resume`` finishes the run exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aigdetect.data.synthetic import write_synthetic_dataset
from aigdetect.models.checkpoint import read_checkpoint
from aigdetect.training.config import state_path_for

TINY = Path(__file__).parent / "assets" / "tiny.json"

# The real CLI in a real process, except that the process sends itself SIGTERM right after its
# first state file is written: the signal arrives at a known point of the run, mid-way.
TERMINATE_AFTER_FIRST_STATE = """
import os, signal, sys
import aigdetect.training.train as engine
from aigdetect.cli import main

write_state = engine.write_state

def write_then_terminate(*args, **kwargs):
    write_state(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)

engine.write_state = write_then_terminate
sys.argv = ["aigdetect", *sys.argv[1:]]
main()
"""


def _train(out: Path, data: Path, *extra: str, driver: str | None = None) -> subprocess.CompletedProcess:
    args = [
        "train", "--data", str(data), "--model", str(TINY), "--backbone-weights", "none", "--out", str(out),
        "--steps", "12", "--batch-size", "8", "--lr", "3e-3", "--eval-every", "4", "--patience", "0",
        "--workers", "0", "--device", "cpu", "--seed", "0", *extra,
    ]  # fmt: skip
    command = [sys.executable, "-c", driver, *args] if driver else [sys.executable, "-m", "aigdetect", *args]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _state(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    tensors, meta = read_checkpoint(path)
    return meta["train_state"], {k: v for k, v in tensors.items() if k.startswith(("adapters.", "head."))}


@pytest.mark.slow
def test_sigterm_exits_143_with_one_line_and_the_run_resumes_exactly(tmp_path):
    data = tmp_path / "data"
    write_synthetic_dataset(data, "wang2020", per_class=8, size=40, seed=1, val_per_class=4)
    out = tmp_path / "stopped" / "m.safetensors"
    stopped = _train(out, data, driver=TERMINATE_AFTER_FIRST_STATE)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert stopped.stderr.splitlines()[-1] == "terminated" and "Traceback" not in stopped.stderr
    state = state_path_for(out)
    progress, _ = _state(state)
    assert 0 < progress["step"] < 12 and not progress["finished"]  # the first state: the end of epoch 1
    assert not out.exists()

    resumed = _train(out, data, "--resume", str(state))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming at step {progress['step']}" in resumed.stderr

    straight = tmp_path / "straight" / "m.safetensors"
    assert _train(straight, data).returncode == 0
    finished, adapters = _state(state)
    reference_progress, reference = _state(state_path_for(straight))
    assert (finished["step"], finished["finished"]) == (reference_progress["step"], True) == (12, True)
    for key, value in reference.items():
        torch.testing.assert_close(adapters[key], value, rtol=0, atol=1e-6)
