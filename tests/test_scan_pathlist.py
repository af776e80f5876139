"""``--files-from``: lists read with caps, special files that never hang, closed standard streams, one row per file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aigdetect.errors import InputError
from aigdetect.scan import pathlist
from aigdetect.scan.pathlist import MAX_LINE_BYTES, normal_path, read_path_list

REPO = Path(__file__).resolve().parents[1]


def _read(path: Path, null: bool = False) -> tuple[str, ...]:
    return read_path_list(str(path), null_separated=null, stdin=None)


def test_one_file_written_two_ways_is_one_path_and_a_carriage_return_alone_is_no_path(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"./imgs/a.png\r\nimgs/a.png\n\r\n\nimgs//./a.png\n/abs/./x/\n../up.png\nb.png\r\n")
    assert _read(listing) == ("imgs/a.png", "/abs/x", "../up.png", "b.png")
    listing.write_bytes(b"./imgs/a.png\0imgs/a.png\0\0name\nwith newline\0")
    assert _read(listing, null=True) == ("imgs/a.png", "name\nwith newline")
    assert [normal_path(p) for p in (b".", b"./", b"//x//y/", b"a/../b")] == [b".", b".", b"/x/y", b"a/../b"]


def test_a_line_or_a_list_over_its_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a.png\n" + b"x" * (MAX_LINE_BYTES + 1) + b"\n")
    with pytest.raises(InputError, match=f"path 2 is longer than {MAX_LINE_BYTES} bytes"):
        _read(listing)
    listing.write_bytes(b"y" * (3 << 20))  # one endless line, refused before it is all held
    with pytest.raises(InputError, match="path 1 is longer"):
        _read(listing)
    listing.write_bytes(b"a.png\nb.png\n" * 10)
    monkeypatch.setattr(pathlist, "MAX_LIST_BYTES", 100)
    with pytest.raises(InputError, match="larger than 100 bytes"):
        _read(listing)
    listing.write_bytes(b"a\0b.png\n")
    monkeypatch.undo()
    with pytest.raises(InputError, match="line 1 holds a NUL byte"):
        _read(listing)


def test_devices_and_folders_are_refused_and_a_fifo_without_writer_reads_as_empty(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="/dev/zero is a device or socket"):
        read_path_list("/dev/zero", null_separated=True, stdin=None)
    with pytest.raises(InputError, match="is a folder"):
        _read(tmp_path)
    with pytest.raises(InputError, match="No such file"):
        _read(tmp_path / "nothere.txt")
    fifo = tmp_path / "list.fifo"
    os.mkfifo(fifo)
    probe = f"from aigdetect.scan.pathlist import read_path_list; print(read_path_list({str(fifo)!r}, null_separated=False, stdin=None))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "()", done.stderr


def _cli(shell: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``aigdetect`` under a shell, so that a standard stream can be closed (``<&-``, ``>&-``)."""
    command = shell.replace("aigdetect", f"{sys.executable} -m aigdetect")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize(
    ("shell", "message"),
    [
        ("aigdetect scan --files-from - <&-", "error: --files-from -: standard input is closed"),
        ("aigdetect scan imgs -o - >&-", "error: standard output is closed; write the rows to a file with --out FILE"),
        ("aigdetect scan --files-from /dev/zero", "error: --files-from /dev/zero is a device or socket, not a list file"),
    ],
)
def test_closed_standard_streams_and_devices_are_one_line_usage_errors(tmp_path: Path, shell: str, message: str) -> None:
    (tmp_path / "imgs").mkdir()
    done = _cli(shell, tmp_path)
    assert (done.returncode, done.stderr.strip()) == (2, message)
