"""Training: config validation, learning, resume (in-process and after kill -9), logs, checkpoints, CLI."""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from aigdetect import load_detector, score_images
from aigdetect.cli import app
from aigdetect.cli.train import _Renderer
from aigdetect.data.config import AugmentConfig
from aigdetect.data.synthetic import write_synthetic_dataset
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError
from aigdetect.metrics import (
    accuracy,
    average_precision,
    calibrate_threshold,
)
from aigdetect.models.checkpoint import read_checkpoint
from aigdetect.models.config import MoLEConfig
from aigdetect.models.factory import create_detector
from aigdetect.progress import ProgressEvent
from aigdetect.training.config import TrainConfig, state_path_for
from aigdetect.training.train import train

TINY = Path(__file__).parent / "assets" / "tiny.json"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """32 training and 12 validation images (40 px), two categories."""
    root = tmp_path_factory.mktemp("small")
    write_synthetic_dataset(root, "wang2020", per_class=16, size=40, seed=1, val_per_class=6)
    return root


def _config(tmp_path: Path, root: Path | None, **overrides) -> TrainConfig:
    values = dict(
        out=str(tmp_path / "m.safetensors"), data=str(root) if root else None, model=str(TINY), backbone_weights="none", steps=8,
        batch_size=8, lr=3e-3, eval_every=4, patience=0, seed=0, log_every=2,
    )
    runtime = {"device": overrides.pop("device", "cpu"), "workers": overrides.pop("workers", 0)}
    values.update(overrides)
    return TrainConfig(**values, runtime=RuntimeConfig(**runtime))


def _adapters(path: Path) -> dict[str, torch.Tensor]:
    tensors, _ = read_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith(("adapters.", "head."))}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"data": None}, "either `data`"),
        ({"real": "r"}, "`real` and `fake` go together"),
        ({"real": "r", "fake": "f"}, "either `data`"),
        ({"epochs": 2}, "exclusive"),
        ({"val": "v", "val_fraction": 0.2}, "exclusive"),
        ({"val_fraction": 1.0}, "between 0 and 1"),
        ({"train_size": 1}, "at least 2"),
        ({"batch_size": 0}, "`batch_size`"),
        ({"lr": 0.0}, "`lr`"),
        ({"weight_decay": -1.0}, "`weight_decay`"),
        ({"schedule": "step"}, "schedule"),
        ({"patience": -1}, "patience"),
        ({"out": ""}, "`out`"),
        ({"resume": "m.safetensors", "out": "m.safetensors"}, "not the `out` detector"),
    ],
)
def test_config_refuses_bad_settings(tmp_path, overrides, message):
    values = {"data": str(tmp_path), **overrides}
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, None, **values)


def test_config_defaults_round_trip_and_differences(tmp_path):
    config = TrainConfig(out="m.safetensors", data="d")
    assert (config.epochs, config.steps, config.lr, config.batch_size, config.model) == (10, None, 6e-4, 64, "vitb32")
    assert config.out == os.path.abspath("m.safetensors") and config.data == os.path.abspath("d")
    custom = _config(tmp_path, tmp_path, mole=MoLEConfig(blocks=2, router="proto"), augment=AugmentConfig(flip=False))
    again = TrainConfig.from_dict(json.loads(json.dumps(custom.to_dict())))
    assert again == custom
    changed = _config(tmp_path, tmp_path, lr=1e-3, workers=3, device="auto", mole=MoLEConfig(blocks=2, router="proto"))
    assert [d.split(":")[0] for d in changed.differences(custom)] == ["augment", "lr"]


def test_state_file_sits_beside_the_detector():
    assert state_path_for("runs/m.safetensors") == Path("runs/m.state.safetensors")
    assert state_path_for("runs/model") == Path("runs/model.state.safetensors")


def test_frozen_blocks_build_no_autograd_graph():
    detector = create_detector(TINY, MoLEConfig(blocks=2), backbone_weights="none").train()
    tracked = {}
    for index, block in enumerate(detector.visual.transformer.resblocks):
        block.register_forward_hook(lambda module, args, output, i=index: tracked.__setitem__(i, output.requires_grad))
    output = detector(torch.randn(2, 3, 32, 32))
    detector.loss(output, torch.tensor([0.0, 1.0]))["loss"].backward()
    assert tracked == {0: False, 1: False, 2: True, 3: True}
    assert all(p.grad is None for p in detector.visual.parameters() if not p.requires_grad)


def test_training_writes_a_calibrated_loadable_detector_and_a_state(tmp_path, small_data):
    log = tmp_path / "log.jsonl"
    events = []
    result = train(_config(tmp_path, small_data, log=str(log)), events.append, command="aigdetect train ...")
    assert result.steps == result.total_steps == 8 and result.best_step in (4, 8)

    detector = load_detector(result.out)
    assert detector.threshold == pytest.approx(result.threshold)
    val_files = sorted((small_data / "val").rglob("*.png"))
    labels = np.array([1 if p.parent.name == "1_fake" else 0 for p in val_files])
    scores = score_images(detector, val_files)
    assert average_precision(labels, scores) == pytest.approx(result.val_ap, abs=1e-6)
    assert calibrate_threshold(labels, scores) == pytest.approx(result.threshold, abs=1e-6)
    assert accuracy(labels, scores, result.threshold) == pytest.approx(result.acc_threshold)
    assert accuracy(labels, scores, 0.5) == pytest.approx(result.acc_half)
    assert result.acc_threshold.balanced >= result.acc_half.balanced

    provenance = detector.provenance
    assert provenance["layout"] == "wang2020" and provenance["data"] == str(small_data)
    assert provenance["counts"]["train"]["photo"] == {"real": 8, "fake": 8}
    assert (provenance["steps"], provenance["seed"], provenance["command"]) == (8, 0, "aigdetect train ...")

    # Only the adapters and the head trained; the frozen backbone is bit-identical to its init.
    fresh = create_detector(TINY, MoLEConfig(), backbone_weights="none", seed=0)
    for key, value in fresh.backbone_state_dict().items():
        assert torch.equal(detector.backbone_state_dict()[key], value)
    assert any(not torch.equal(detector.adapter_state_dict()[k], v) for k, v in fresh.adapter_state_dict().items())

    with safe_open(str(result.state), framework="pt") as handle:
        keys = set(handle.keys())
        state = json.loads(handle.metadata()["aigdetect"])["train_state"]
        rng = handle.get_tensor("train_state.rng.torch")
    assert rng.dtype == torch.uint8
    assert any(k.startswith("train_state.optim.") and k.endswith(".exp_avg_sq") for k in keys)
    assert (state["step"], state["finished"], state["config"]["lr"]) == (8, True, 3e-3)
    assert not any(k.startswith("train_state.") for k in read_checkpoint(result.out)[0])

    kinds = [e.stage for e in events]
    assert kinds[:5] == ["data", "run", "recipe", "start", "micro_batch"] and kinds[-1] == "done"
    assert [(e.done, e.total) for e in events if e.stage == "progress"] == [(step, 8) for step in range(1, 9)]
    assert all(e.detail["event"] == e.stage for e in events)
    assert any("wang2020" in line for line in events[0].detail["description"])

    records = [json.loads(line) for line in log.read_text().splitlines()]
    steps = [r for r in records if r["event"] == "step"]
    assert [r["step"] for r in steps] == [2, 4, 6, 8]
    for record in steps:
        assert {"bce", "lb", "rcl", "lr", "images_per_s", "loss"} <= record.keys() and record["lr"] == 3e-3
        assert set(record["routing"]) == {"block1", "block2", "block3"}
        assert sum(record["routing"]["block3"]["utilisation"]) == pytest.approx(1.0)
        assert {"entropy", "share_real", "share_fake"} <= record["routing"]["block3"].keys()
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [4, 8] and all(0 <= r["val_ap"] <= 1 for r in evals)
    assert records[-1]["event"] == "done" and records[-1]["threshold"] == pytest.approx(result.threshold)


def test_resume_replays_the_uninterrupted_run_exactly(tmp_path, small_data):
    straight = train(_config(tmp_path / "a", small_data, steps=12))

    def crash_at_step_7(event):
        if event.stage == "progress" and event.done == 7:
            raise KeyboardInterrupt

    config = _config(tmp_path / "b", small_data, steps=12, log=str(tmp_path / "b.jsonl"))
    with pytest.raises(KeyboardInterrupt):
        train(config, crash_at_step_7)
    _, meta = read_checkpoint(config.state_path)
    assert meta["train_state"]["step"] == 4 and not meta["train_state"]["finished"]

    events = []
    resumed = train(
        _config(tmp_path / "b", small_data, steps=12, resume=str(config.state_path), log=str(tmp_path / "b.jsonl")),
        events.append,
    )
    assert next(e for e in events if e.stage == "start").detail["start_step"] == 4
    assert resumed.steps == straight.steps == 12
    for key, value in _adapters(state_path_for(straight.out)).items():
        assert torch.equal(_adapters(config.state_path)[key], value), key
    assert resumed.threshold == straight.threshold and resumed.val_ap == straight.val_ap
    records = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "eval"] == [4, 8, 12]


def test_decoding_workers_do_not_change_the_result(tmp_path, small_data):
    inline = train(_config(tmp_path / "inline", small_data, steps=4, eval_every=4))
    workers = train(_config(tmp_path / "workers", small_data, steps=4, eval_every=4, workers=2))
    for key, value in _adapters(state_path_for(inline.out)).items():
        assert torch.equal(_adapters(state_path_for(workers.out))[key], value), key


def test_a_full_shared_memory_is_noted_once_per_run_and_logged(tmp_path, small_data, monkeypatch):
    """Every epoch and validation builds a loader; the note on /dev/shm comes once, then stays in the log."""
    from aigdetect.data import loading

    monkeypatch.setattr(loading.os, "statvfs", lambda path: os.statvfs_result((4096, 4096, 1, 1, 1, 1, 1, 1, 0, 255)))
    events: list[ProgressEvent] = []
    log = tmp_path / "log.jsonl"
    train(_config(tmp_path, small_data, steps=8, eval_every=4, workers=2, log=str(log)), events.append)
    notes = [e.detail for e in events if e.stage == "note"]
    assert len(notes) == 1 and notes[0]["message"].startswith("/dev/shm has 0 MiB free")
    assert "loading images in the training process" in notes[0]["message"]
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["message"] for r in logged if r["event"] == "note"] == [notes[0]["message"]]


def test_corrupt_files_are_skipped_and_counted(tmp_path):
    data = tmp_path / "data"
    write_synthetic_dataset(data, "wang2020", per_class=8, size=40, seed=2, val_per_class=4)
    good = next((data / "train" / "photo" / "1_fake").glob("*.png")).read_bytes()
    (data / "train" / "photo" / "1_fake" / "cut.png").write_bytes(good[: len(good) // 2])
    (data / "train" / "texture" / "0_real" / "text.png").write_text("not an image")
    (data / "val" / "photo" / "0_real" / "zero.png").write_bytes(b"")
    (data / "val" / "photo" / "1_fake" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    events = []
    result = train(_config(tmp_path, data, steps=6, eval_every=3, batch_size=4, log=str(tmp_path / "log.jsonl")), events.append)
    # Files whose header no decoder accepts are left out when listing, and reported with the layout;
    # files that look like images but fail to decode are skipped while training, and counted.
    (described,) = [e.detail["description"] for e in events if e.stage == "data"]
    assert any(line.startswith("left out 2 files that no image decoder accepts") for line in described)
    assert result.steps == 6 and sum(result.skipped.values()) == 2
    assert set(result.skipped) <= {"truncated", "corrupt", "unsupported"}
    assert {Path(p).name for p in result.skipped_examples} == {"cut.png", "bad.png"}
    evals = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["skipped_files"] for r in evals if r["event"] == "eval"][-1] == 2
    assert sum(read_checkpoint(result.out)[1]["provenance"]["skipped_files"].values()) == 2


def test_early_stopping_keeps_the_best_weights(tmp_path, small_data):
    result = train(_config(tmp_path, small_data, steps=12, eval_every=1, patience=2, lr=1e-12))
    assert result.stopped_early and result.steps == 3 and result.best_step == 1


def test_cosine_schedule_decays_to_zero(tmp_path, small_data):
    log = tmp_path / "log.jsonl"
    train(_config(tmp_path, small_data, steps=4, log_every=1, schedule="cosine", log=str(log)))
    lrs = [json.loads(line)["lr"] for line in log.read_text().splitlines() if '"step"' in line and '"event": "step"' in line]
    assert lrs == pytest.approx([3e-3 * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(1, 5)])


runner = CliRunner()


def _cli(tmp_path: Path, data: Path, *extra: str):
    return runner.invoke(
        app,
        [
            "train", "--data", str(data), "--model", str(TINY), "--backbone-weights", "none",
            "--out", str(tmp_path / "m.safetensors"), "--steps", "4", "--batch-size", "8", "--workers", "0",
            "--device", "cpu", *extra,
        ],
    )


def test_cli_prints_layout_and_summary(tmp_path, small_data):
    result = _cli(tmp_path, small_data, "--no-flip", "--blur-prob", "0", "--jpeg-quality", "50,90")
    assert result.exit_code == 0, result.output
    assert "layout: wang2020" in result.output and "photo: 8 real, 8 fake" in result.output
    assert "validation AP" in result.output and "calibrated threshold" in result.output
    _, meta = read_checkpoint(tmp_path / "m.safetensors")
    augment = meta["provenance"]["train_config"]["augment"]
    assert (augment["flip"], augment["blur_prob"], augment["jpeg_quality"]) == (False, 0.0, [50, 90])
    command = shlex.split(meta["provenance"]["command"])  # recorded as scan records it: the options given, retypeable
    assert command[:2] == ["aigdetect", "train"] and "--no-flip" in command
    assert command[command.index("--steps") + 1] == "4" and command[command.index("--jpeg-quality") + 1] == "50,90"


class FakeClock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def train_events(tmp_path_factory, small_data) -> list[ProgressEvent]:
    """The events of a real 8-step run (global batch 8), to replay on a fake clock."""
    events: list[ProgressEvent] = []
    train(_config(tmp_path_factory.mktemp("events"), small_data), events.append)
    assert [e.done for e in events if e.stage == "progress"] == list(range(1, 9))
    return events


def _replay(events: list[ProgressEvent], seconds_per_step: float) -> None:
    clock = FakeClock()
    renderer = _Renderer(clock)
    for event in events:
        if event.stage == "progress":
            clock.now += seconds_per_step
        renderer(event)


def _plain_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("step ") and " of " in line]


def test_without_a_terminal_train_prints_a_plain_line_after_each_30_s(train_events, capsys):
    _replay(train_events, 12.0)
    err = capsys.readouterr().err
    # 12 s a step: due at step 3 (36 s) and step 6 (72 s, 36 s later), not at step 8 (24 s later).
    # 3 steps in 36 s of batches of 8 = 0.67 images/s; 5 steps left at 12 s = 60 s; then 2 left = 24 s.
    assert _plain_lines(err) == [
        "step 3 of 8, 0.7 images/s, about 1 min left",
        "step 6 of 8, 0.7 images/s, under a minute left",
    ]
    assert "step 4: val AP" in err and "step 8: val AP" in err


def test_a_resumed_run_counts_its_rate_from_where_it_resumed(train_events, capsys):
    start = next(i for i, e in enumerate(train_events) if e.stage == "start")
    resumed = [replace(e, done=4, detail={**e.detail, "start_step": 4}) if e.stage == "start" else e for e in train_events]
    resumed = [e for i, e in enumerate(resumed) if i <= start or e.stage != "progress" or e.done > 4]
    _replay(resumed, 20.0)
    # steps 5-8 at 20 s each: due at step 6 (40 s: 2 steps, 0.4 images/s, 2 left = 40 s), then step 8 (80 s).
    assert _plain_lines(capsys.readouterr().err) == [
        "step 6 of 8, 0.4 images/s, about 1 min left",
        "step 8 of 8, 0.4 images/s, under a minute left",
    ]


def test_on_a_terminal_train_shows_the_bar_and_no_plain_line(train_events, capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    _replay(train_events, 100.0)
    assert _plain_lines(capsys.readouterr().err) == []


def test_the_cli_prints_plain_lines_from_the_real_run(tmp_path, small_data, monkeypatch):
    monkeypatch.setattr("aigdetect.cli.progress.PROGRESS_INTERVAL_S", 0.0)
    result = _cli(tmp_path, small_data)
    assert result.exit_code == 0, result.output
    lines = _plain_lines(result.stderr)
    assert [line.split(",")[0] for line in lines] == [f"step {k} of 4" for k in range(1, 5)]
    assert all(line.endswith(" left") and " images/s, " in line for line in lines)


def test_log_starts_every_run_with_a_run_record(tmp_path, small_data):
    log = tmp_path / "log.jsonl"
    for name in ("a", "b"):
        train(_config(tmp_path / name, small_data, steps=2, eval_every=2, log=str(log)), command=f"aigdetect train {name}")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    starts = [i for i, r in enumerate(records) if r["event"] == "run"]
    assert starts[0] == 0 and len(starts) == 2
    from aigdetect import __version__

    ids = []
    for index, name in zip(starts, ("a", "b")):
        record = records[index]
        assert record["command"] == f"aigdetect train {name}" and record["version"] == __version__
        assert record["date"].endswith("+00:00") and len(record["run_id"]) == 12
        assert [r["event"] for r in records[index + 1 : index + 3]] == ["recipe", "start"]
        ids.append(record["run_id"])
    assert ids[0] != ids[1]
    # Every record carries its run's id, so appended runs can be told apart.
    assert [r["run_id"] for r in records] == [ids[0]] * starts[1] + [ids[1]] * (len(records) - starts[1])


def test_summary_keeps_paths_whole_at_80_columns(tmp_path, small_data):
    out = tmp_path / ("a-directory-name-long-enough-that-the-path-exceeds-eighty-columns" * 2) / "detector.safetensors"
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, [
        "train", "--data", str(small_data), "--model", str(TINY), "--backbone-weights", "none", "--out", str(out),
        "--steps", "2", "--batch-size", "8", "--workers", "0", "--device", "cpu",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(str(out)) > 160
    assert f"detector: {out}\n" in result.stdout
    assert f"training state: {state_path_for(out)}\n" in result.stdout
    table = result.stdout[: result.stdout.index("detector: ")]
    assert max(len(line) for line in table.splitlines()) <= 80 and "validation AP" in table


def test_cli_blocks_all_adapts_every_block(tmp_path, small_data):
    result = _cli(tmp_path, small_data, "--blocks", "all", "--steps", "1")
    assert result.exit_code == 0, result.output
    assert read_checkpoint(tmp_path / "m.safetensors")[1]["mole"]["blocks"] == 4
    bad = _cli(tmp_path / "x", small_data, "--blocks", "most")
    assert bad.exit_code == 2 and "--blocks takes a number of blocks or 'all'" in bad.output


def test_cli_refusals(tmp_path, small_data):
    missing = _cli(tmp_path, small_data, "--resume", str(tmp_path / "nope.state.safetensors"))
    assert missing.exit_code == 2 and "no such training state" in missing.output

    def stop(event):
        if event.stage == "progress" and event.done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path, small_data, steps=4, eval_every=2), stop)
    fresh = _cli(tmp_path, small_data)
    assert fresh.exit_code == 2 and "unfinished run" in fresh.output
    state = str(tmp_path / "m.state.safetensors")
    changed = _cli(tmp_path, small_data, "--resume", state, "--lr", "0.1", "--eval-every", "2", "--patience", "0")
    assert changed.exit_code == 2 and "lr: 0.003 -> 0.1" in changed.output
    bad_pair = _cli(tmp_path / "x", small_data, "--blur-sigma", "1")
    assert bad_pair.exit_code == 2 and "LOW,HIGH" in bad_pair.output
    no_layout = _cli(tmp_path / "y", tmp_path / "y")
    assert no_layout.exit_code == 2 and "does not exist" in no_layout.output


def _state_step(path: Path) -> tuple[int, bool] | None:
    try:
        with safe_open(str(path), framework="pt") as handle:
            state = json.loads(handle.metadata()["aigdetect"])["train_state"]
    except Exception:
        return None
    return state["step"], state["finished"]


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_completes(tmp_path, small_data):
    out = tmp_path / "m.safetensors"
    command = [
        sys.executable, "-m", "aigdetect", "train", "--data", str(small_data), "--model", str(TINY),
        "--backbone-weights", "none", "--out", str(out), "--steps", "60", "--batch-size", "8", "--lr", "3e-3",
        "--eval-every", "2", "--patience", "0", "--workers", "0", "--device", "cpu", "--seed", "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    state = state_path_for(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = _state_step(state)
        if seen is not None and seen[0] >= 6:
            break
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    process.stderr.close()
    step, finished = _state_step(state)
    assert 6 <= step < 60 and not finished

    resumed = subprocess.run(command + ["--resume", str(state)], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _state_step(state) == (60, True)
    assert f"resuming at step {step}" in resumed.stderr
    detector = load_detector(out)
    assert detector.provenance["steps"] == 60

    straight = train(_config(tmp_path / "straight", small_data, steps=60, eval_every=2))
    for key, value in _adapters(state_path_for(straight.out)).items():
        torch.testing.assert_close(_adapters(state)[key], value, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_tiny_mole_learns_the_synthetic_artifact(tmp_path):
    data = tmp_path / "data"
    write_synthetic_dataset(data, "wang2020", per_class=64, size=64, seed=0, val_per_class=32)
    held_out = write_synthetic_dataset(tmp_path / "held", "plain", per_class=24, size=64, seed=77)
    config = _config(tmp_path, data, steps=200, batch_size=32, eval_every=25, patience=4, lr=3e-3, log_every=25)
    untrained = create_detector(TINY, config.mole, backbone_weights="none", seed=config.seed)
    result = train(config)
    assert result.val_ap >= 0.9
    trained = load_detector(result.out)
    labels = held_out.labels()
    trained_ap = average_precision(labels, score_images(trained, held_out.paths()))
    untrained_ap = average_precision(labels, score_images(untrained, held_out.paths()))
    assert trained_ap >= 0.9 and trained_ap > untrained_ap + 0.2
    assert accuracy(labels, score_images(trained, held_out.paths()), trained.threshold).balanced >= 0.8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_training_scores_match_fp32(tmp_path, small_data):
    result = train(_config(tmp_path, small_data, device="cuda"))
    detector = load_detector(result.out, device="cuda")
    files = sorted((small_data / "val").rglob("*.png"))
    fp32 = score_images(detector, files)
    from aigdetect.engine.infer import score_files

    fp16 = np.array([r.score for batch in score_files(detector, files, device=torch.device("cuda")) for r in batch])
    np.testing.assert_allclose(fp16, fp32, atol=5e-3)
