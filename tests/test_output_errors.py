"""An output that cannot be written (a missing or read-only folder, a full disk, the file-size limit)
is one line naming the file and the cause, exit 2, and the rows written before it stay usable."""

from __future__ import annotations

import builtins
import csv
import errno
import io
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_image
from typer.testing import CliRunner

import aigdetect.outputs as outputs
import aigdetect.results.write as writers
from aigdetect.cli import app

REPO = Path(__file__).resolve().parents[1]
IMAGES = 12
runner = CliRunner()


def _folder(root: Path) -> Path:
    for i in range(IMAGES):
        write_image(root / f"img_{i:02d}.png", size=(40, 36), seed=i)
    return root


def _scan(*args: str):
    return runner.invoke(app, ["scan", *args])


def _rows(path: Path, output_format: str) -> list[dict]:
    """The complete rows of an output or journal; a half-written last line is left out, as resume does."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]
    if output_format == "csv":
        return list(csv.DictReader(io.StringIO("\n".join(lines) + "\n")))
    if output_format == "json" and not path.name.endswith(writers.JOURNAL_SUFFIX):
        return json.loads(text)["rows"]
    return [json.loads(line) for line in lines]


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def test_an_output_folder_that_does_not_exist_is_named_and_not_created(tmp_path, tiny_checkpoint):
    folder = _folder(tmp_path / "imgs")
    out = tmp_path / "missing" / "v.csv"
    result = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--out", str(out))
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == f"error: {out}: {os.strerror(errno.ENOENT)}"
    assert not out.parent.exists()


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.parametrize("output_format", ["csv", "jsonl", "json"])
def test_the_file_size_limit_is_named_and_the_rows_before_it_are_resumed(tmp_path, tiny_checkpoint, monkeypatch, output_format):
    _folder(tmp_path / "imgs")
    limit = 1500
    out = tmp_path / f"v.{output_format}"
    growing = Path(writers.growing_file(str(out), output_format))
    # --quiet: a plain progress line, printed when a loaded machine makes the scan slow, is not the error line.
    common = ["imgs", "--checkpoint", tiny_checkpoint.name, "--workers", "0", "--batch-size", "1", "--quiet", "--out", out.name]
    limited = subprocess.run(
        [sys.executable, "-m", "aigdetect", "scan", *common], cwd=tmp_path, env=_subprocess_env(),
        preexec_fn=_limit_file_size(limit), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert limited.returncode == 2
    assert _one_error_line(limited.stderr) == f"error: {growing.name}: {os.strerror(errno.EFBIG)}"
    assert growing.stat().st_size == limit
    kept = _rows(growing, output_format)
    assert 1 <= len(kept) < IMAGES
    assert [row["path"] for row in kept] == [f"imgs/img_{i:02d}.png" for i in range(len(kept))]
    monkeypatch.chdir(tmp_path)
    resumed = _scan(*common, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    rows = _rows(out, output_format)
    assert [row["path"] for row in rows] == [f"imgs/img_{i:02d}.png" for i in range(IMAGES)]
    assert rows[: len(kept)] == kept


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a device that is always full")
@pytest.mark.parametrize("output_format", ["csv", "json"])
def test_a_full_disk_behind_standard_output_is_one_line(tmp_path, tiny_checkpoint, output_format):
    folder = _folder(tmp_path / "imgs")
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "aigdetect", "scan", str(folder), "--checkpoint", str(tiny_checkpoint),
             "--workers", "0", "--quiet", "--format", output_format], stdout=full, stderr=subprocess.PIPE, text=True,
            cwd=tmp_path, env=_subprocess_env(), timeout=300,
        )  # fmt: skip
    assert result.returncode == 2
    assert _one_error_line(result.stderr) == f"error: standard output: {os.strerror(errno.ENOSPC)}"


class _FullDisk:
    """A file on a disk with ``room`` bytes left: a write that does not fit fails as write(2) does,
    with ENOSPC and no file name."""

    def __init__(self, handle: io.TextIOWrapper, room: int) -> None:
        self.handle = handle
        self.room = room

    def write(self, text: str) -> int:
        size = len(text.encode("utf-8"))
        if size > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= size
        return self.handle.write(text)

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


@pytest.mark.parametrize("output_format", ["csv", "jsonl", "json"])
def test_a_full_disk_names_the_output_and_keeps_the_rows_written(tmp_path, tiny_checkpoint, monkeypatch, output_format):
    folder = _folder(tmp_path / "imgs")
    out = tmp_path / f"v.{output_format}"
    growing = Path(writers.growing_file(str(out), output_format))

    def on_a_full_disk(path, mode="r", *args, **kwargs):
        handle = builtins.open(path, mode, *args, **kwargs)
        return _FullDisk(handle, room=1000) if "a" in mode else handle

    common = [str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--batch-size", "1", "--quiet", "--out", str(out)]
    with monkeypatch.context() as patch:
        for module in (writers, outputs):  # rows are appended through outputs.append_output, JSON journals in writers
            patch.setattr(module, "open", on_a_full_disk, raising=False)
        full = _scan(*common)
    assert full.exit_code == 2
    assert _one_error_line(full.stderr) == f"error: {growing}: {os.strerror(errno.ENOSPC)}"
    kept = _rows(growing, output_format)
    assert 1 <= len(kept) < IMAGES
    resumed = _scan(*common, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    rows = _rows(out, output_format)
    assert [row["path"] for row in rows] == [str(folder / f"img_{i:02d}.png") for i in range(IMAGES)]
    assert rows[: len(kept)] == kept


@pytest.mark.parametrize("cause", [errno.EROFS, errno.EACCES], ids=["EROFS", "EACCES"])
@pytest.mark.parametrize("refused", ["folder", "output"])
def test_an_unwritable_output_is_named_with_the_cause(tmp_path, tiny_checkpoint, monkeypatch, cause, refused):
    """Root ignores mode bits, so the folder refuses through ``os.open``, where files are created:
    the whole folder (a read-only mount: the lock beside the output is the first refusal), or only
    the output's temporary file (the lock is made, the output is not)."""
    folder = _folder(tmp_path / "imgs")
    target = tmp_path / "out"
    target.mkdir()
    out = target / "v.csv"
    real_open = os.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def refusing(path, flags, *args, **kwargs):
        where = Path(os.fsdecode(path))
        if where.parent == target and flags & writing and (refused == "folder" or where.name.startswith(".")):
            raise OSError(cause, os.strerror(cause), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", refusing)
        result = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--quiet", "--out", str(out))
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == f"error: {out}: {os.strerror(cause)}"
    assert sorted(p.name for p in target.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "nothere.csv", "-o", "x.html"], "error: nothere.csv: missing: no such file"),
        (["scan", "imgs", "--checkpoint", "nothere.safetensors", "-o", "x.csv"], "error: checkpoint nothere.safetensors: no such file"),
    ],
    ids=["report", "scan-checkpoint"],
)
def test_a_missing_input_is_no_such_file(tmp_path, monkeypatch, args, message):
    """A results file or checkpoint that was never there did not vanish during a scan: say so plainly."""
    write_image(tmp_path / "imgs" / "a.png")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == message
    assert not (tmp_path / args[-1]).exists()
