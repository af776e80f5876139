"""``aigdetect scan`` end to end: outputs, exit codes, kill -9 and --resume, shards, torchrun, offline weights."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_detector, write_image
from safetensors.torch import save_file
from test_scan_runner import build_tree, relative_rows
from typer.testing import CliRunner

from aigdetect import save_detector, score_images
from aigdetect.cli import app
from aigdetect.models.choice import DetectorChoice
from aigdetect.models.fingerprint import fingerprint
from aigdetect.scan import raw_path

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _scan(*args: str, env: dict | None = None):
    return runner.invoke(app, ["scan", *args], env=env)


@pytest.fixture()
def tree(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "tree"
    root.mkdir()
    return root, build_tree(root)


def test_scan_writes_a_csv_row_per_file_and_a_summary(tree, tmp_path, tiny_checkpoint):
    root, expected = tree
    out = tmp_path / "verdicts.csv"
    result = _scan(str(root), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--workers", "0")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    rows = relative_rows(_csv_rows(out), root)
    assert {p: (r["status"], r["error_reason"] or None) for p, r in rows.items()} == expected
    errors = sum(1 for status, _ in expected.values() if status == "error")
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"{len(expected)} files: ") and f", {errors} errors (" in summary
    assert f"rows in {out}" in summary
    verdicts = Counter(r["verdict"] for r in rows.values() if r["status"] == "ok")
    assert summary.startswith(f"{len(expected)} files: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_without_out_rows_go_to_stdout_and_the_summary_to_stderr(tmp_path, tiny_checkpoint, fmt):
    for i in range(3):
        write_image(tmp_path / "imgs" / f"{i}.png", seed=i)
    result = _scan(str(tmp_path / "imgs"), "--checkpoint", str(tiny_checkpoint), "--format", fmt, "--workers", "0")
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        rows = list(csv.DictReader(result.stdout.splitlines()))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in result.stdout.splitlines()]
    else:
        document = json.loads(result.stdout)
        assert document["summary"]["files"] == 3
        rows = document["rows"]
    assert [Path(r["path"]).name for r in rows] == ["0.png", "1.png", "2.png"]
    reference = score_images(make_tiny_detector(), [r["path"] for r in rows])
    np.testing.assert_allclose([float(r["score"]) for r in rows], reference, rtol=1e-5, atol=1e-6)
    assert result.stderr.strip().startswith("3 files: ")


def test_threshold_overrides_the_calibrated_one(tmp_path):
    detector = make_tiny_detector()
    detector.threshold = 0.99
    checkpoint = tmp_path / "calibrated.safetensors"
    save_detector(detector, checkpoint)
    write_image(tmp_path / "imgs" / "a.png")
    result = _scan(str(tmp_path / "imgs"), "--checkpoint", str(checkpoint), "--workers", "0")
    (row,) = list(csv.DictReader(result.stdout.splitlines()))
    assert (float(row["threshold"]), row["model_verdict"], row["verdict"]) == (0.99, "real", "likely-real")
    result = _scan(str(tmp_path / "imgs"), "--checkpoint", str(checkpoint), "--workers", "0", "--threshold", "0")
    (row,) = list(csv.DictReader(result.stdout.splitlines()))
    assert (float(row["threshold"]), row["model_verdict"], row["verdict"]) == (0.0, "fake", "likely-ai")


def test_strict_exits_1_only_when_a_file_failed(tmp_path, tiny_checkpoint):
    write_image(tmp_path / "imgs" / "a.png")
    clean = _scan(str(tmp_path / "imgs"), "--checkpoint", str(tiny_checkpoint), "--strict", "--workers", "0")
    assert clean.exit_code == 0
    (tmp_path / "imgs" / "b.png").write_bytes(b"")
    lenient = _scan(str(tmp_path / "imgs"), "--checkpoint", str(tiny_checkpoint), "--workers", "0")
    assert lenient.exit_code == 0
    strict = _scan(str(tmp_path / "imgs"), "--checkpoint", str(tiny_checkpoint), "--strict", "--workers", "0")
    assert strict.exit_code == 1
    assert strict.stderr.strip().splitlines()[-1] == "strict: 1 of 2 files failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MISSING"], "error: PATH not found: MISSING"),
        ([], "error: give at least one PATH (a file or a folder) to scan, or --files-from a list"),
        (["HERE", "--shard", "3/2"], "error: --shard K/N needs N >= 1 and 0 <= K < N (K counts from 0), got 3/2"),
        (["HERE", "--shard", "two"], "error: --shard takes K/N (e.g. 0/4), got 'two'"),
        (["HERE", "--threshold", "2"], "error: --threshold is a probability and must be within [0, 1], got 2.0"),
        (["HERE", "--format", "xml"], "error: --format must be one of csv, json, jsonl, parquet, got 'xml'"),
        (["HERE", "--resume"], "error: --resume continues an output file; pass --out FILE"),
        (["HERE", "--merge", "x.csv"], "error: --merge joins finished parts and takes no PATH"),
        (["HERE", "--out", "r.txt"], "error: cannot tell the format of r.txt from its suffix; pass --format csv|json|jsonl|parquet"),
    ],
)
def test_usage_errors_exit_2_with_one_line_before_any_model_loads(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "HERE").mkdir()
    result = _scan(*args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [message]


def test_non_utf8_file_names_survive_in_every_format(tmp_path, tiny_checkpoint):
    folder = tmp_path / "imgs"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/\xff\xfeweird\\name.png"
    write_image(Path(os.fsdecode(raw)), seed=3, fmt="png")
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"r.{fmt}"
        assert _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "-o", str(out), "--workers", "0").exit_code == 0
        text = out.read_text(encoding="utf-8")
        path = _csv_rows(out)[0]["path"] if fmt == "csv" else json.loads(text)["path"]
        assert path.endswith("/\\xff\\xfeweird\\\\name.png")
        assert raw_path(path) == raw
        assert os.path.getsize(raw_path(path)) == os.path.getsize(raw)


def _kill_after_batches(count: int) -> str:
    """A driver for a real ``aigdetect`` process that SIGKILLs itself once ``count`` batches are written."""
    return (
        "import os, signal, sys\n"
        "import aigdetect.engine.infer as infer\n"
        "original = infer.score_decoded\n"
        "def dying(*args, **kwargs):\n"
        "    for number, batch in enumerate(original(*args, **kwargs)):\n"
        f"        if number == {count}:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "        yield batch\n"
        "infer.score_decoded = dying\n"
        "from aigdetect.cli import main\n"
        "sys.argv[0] = 'aigdetect'\n"
        "main()\n"
    )


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_scan(tree, tmp_path, tiny_checkpoint):
    root, expected = tree
    common = [str(root), "--checkpoint", str(tiny_checkpoint), "--batch-size", "2", "--workers", "1"]
    whole = tmp_path / "whole.csv"
    assert _scan(*common, "--out", str(whole)).exit_code == 0
    out = tmp_path / "killed.csv"
    killed = subprocess.run(
        [sys.executable, "-c", _kill_after_batches(3), "scan", *common, "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    survived = _csv_rows(out)
    assert 6 <= len(survived) < len(expected)
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(f"{survived[-1]['path']}x,ok,0.12")
    resumed = _scan(*common, "--out", str(out), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"{len(survived)} kept from the earlier run" in resumed.stderr
    assert out.read_bytes() == whole.read_bytes()
    again = _scan(*common, "--out", str(out), "--resume")
    assert "0 scanned" in again.stderr and out.read_bytes() == whole.read_bytes()


def test_shards_union_to_the_whole_and_merge_rebuilds_it(tree, tmp_path, tiny_checkpoint):
    root, expected = tree
    common = [str(root), "--checkpoint", str(tiny_checkpoint), "--batch-size", "1", "--workers", "0"]
    whole = tmp_path / "whole.jsonl"
    assert _scan(*common, "--out", str(whole)).exit_code == 0
    out = tmp_path / "sharded.jsonl"
    for k in range(3):
        result = _scan(*common, "--shard", f"{k}/3", "--out", str(out))
        assert result.exit_code == 0, result.output
    parts = [[json.loads(line)["path"] for line in Path(f"{out}.part{k}").read_text(encoding="utf-8").splitlines()] for k in range(3)]
    assert all(parts)
    assert sorted(p for part in parts for p in part) == sorted(json.loads(line)["path"] for line in Path(whole).read_text(encoding="utf-8").splitlines())
    assert sum(len(part) for part in parts) == len(expected)
    merged = _scan("--merge", str(out))
    assert merged.exit_code == 0, merged.output
    assert merged.stderr.startswith(f"merged 3 parts into {out}: {len(expected)} files: ")
    assert out.read_bytes() == whole.read_bytes()
    assert _scan("--merge", str(out), "--strict", "--overwrite").exit_code == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_ranks_write_parts_and_rank_0_merges(tmp_path, tiny_checkpoint):
    for i in range(7):
        write_image(tmp_path / "imgs" / f"{i}.png", seed=i)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    whole = tmp_path / "whole.csv"
    common = [str(tmp_path / "imgs"), "--checkpoint", str(tiny_checkpoint), "--batch-size", "1", "--workers", "0"]
    assert _scan(*common, "--out", str(whole)).exit_code == 0
    out = tmp_path / "dist.csv"
    torchrun = Path(sys.executable).with_name("torchrun")
    completed = subprocess.run(
        [str(torchrun), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
         "-m", "aigdetect", "scan", *common, "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert os.path.exists(f"{out}.part0") and os.path.exists(f"{out}.part1")
    assert "merged the parts into" in completed.stderr
    assert out.read_bytes() == whole.read_bytes()


def test_default_detector_fails_offline_with_the_one_line_weights_message(tmp_path):
    write_image(tmp_path / "imgs" / "a.png")
    env = {"HF_HUB_OFFLINE": "1"}
    result = _scan(str(tmp_path / "imgs"), "--cache-dir", str(tmp_path / "empty-cache"), env=env)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no weights for vitl14 (ViT-L-14, openai): looked in")
    assert line.endswith("cannot download: HF_HUB_OFFLINE is set; pass a local file with --backbone-weights PATH")


def test_backbone_weights_file_replaces_the_backbone(tmp_path, tiny_checkpoint):
    write_image(tmp_path / "imgs" / "a.png", seed=1)
    write_image(tmp_path / "imgs" / "b.png", seed=2)
    donor = make_tiny_detector(seed=5)
    weights = tmp_path / "backbone.safetensors"
    save_file(donor.backbone_state_dict(), str(weights))
    reference = make_tiny_detector()
    own = reference.visual.state_dict()
    renamed = {k if k in own else k.replace(".mlp.", ".mlp.base."): v for k, v in donor.backbone_state_dict().items()}
    result = reference.visual.load_state_dict(renamed, strict=False)
    assert not result.unexpected_keys and all(".bypass." in k for k in result.missing_keys)
    paths = [str(tmp_path / "imgs" / n) for n in ("a.png", "b.png")]
    args = [str(tmp_path / "imgs"), "--checkpoint", str(tiny_checkpoint), "--format", "jsonl", "--workers", "0"]
    result = _scan(*args, "--backbone-weights", str(weights))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    np.testing.assert_allclose([r["score"] for r in rows], score_images(reference, paths), rtol=1e-5, atol=1e-6)
    embedded = [json.loads(line) for line in _scan(*args).stdout.splitlines()]
    assert not np.allclose([r["score"] for r in embedded], [r["score"] for r in rows])
    assert rows[0]["detector"] != embedded[0]["detector"]
    assert rows[0]["detector"] == fingerprint(DetectorChoice(str(tiny_checkpoint), backbone_weights=str(weights))).identity


def test_scan_help_has_an_example():
    result = runner.invoke(app, ["scan", "-h"])
    assert result.exit_code == 0 and "Example: aigdetect scan" in result.output
