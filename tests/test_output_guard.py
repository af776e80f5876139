"""Every output option against every path it must not destroy, and the paths it may write.

One matrix: each output option (scan's --out, --summary-json, --html and --merge; report -o;
export --out and its sidecar; train --out and --log; bench --out; routes --out) is pointed at an
input image, the detector, another output of the same run, an unrelated file (no --overwrite), an
earlier output of the same kind (--overwrite: allowed), a FIFO without a reader, /dev/null and a
symbolic link. A refusal is exit 2 with one line, and the target keeps its inode and bytes; a
FIFO never blocks the command and stays a FIFO; a character device (a private node like /dev/null,
where the tests may make one) is written in place, never replaced.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TINY_CONFIG, make_tiny_detector, write_image
from typer.testing import CliRunner

from aigdetect import save_detector
from aigdetect.cli import app
from aigdetect.outputs import CHECKPOINT, EXPORT_SIDECAR, HTML_REPORT, ONNX_GRAPH, SCAN_SUMMARY, TRAIN_LOG
from aigdetect.scan.sidecar import SCAN_RESULTS

runner = CliRunner()
CPU = ["--workers", "0", "--device", "cpu"]
SCAN = ["scan", "imgs", "--checkpoint", "ck.safetensors", "--workers", "0", "--device", "cpu"]
TRAIN = ["train", "--real", "imgs", "--fake", "fake", "--model", str(TINY_CONFIG), "--backbone-weights", "none",
         "--steps", "2", "--batch-size", "4", "--val-fraction", "0.25", *CPU]  # fmt: skip
BENCH = ["bench", "folder", "--real", "imgs", "--fake", "fake", "--checkpoint", "ck.safetensors", "--out", "bench", *CPU]
ROUTES = ["routes", "imgs", "--checkpoint", "ck.safetensors", "--out", "maps", "--device", "cpu"]
KEEP = b"notes the user keeps\n"


def _invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with inputs and one earlier output of every kind, copied into each case."""
    root = tmp_path_factory.mktemp("made")
    for i in range(4):
        write_image(root / "imgs" / f"{'ab'[i % 2]}{i}.png", size=(40, 36), seed=i)
        write_image(root / "fake" / f"f{i}.png", size=(40, 36), seed=10 + i)
    shutil.copy(root / "imgs" / "a0.png", root / "imgs" / "a.png")
    save_detector(make_tiny_detector(), root / "ck.safetensors")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for args in (
            [*SCAN, "-o", "r.csv", "--summary-json", "s.json", "--html", "rep.html"],
            [*SCAN, "--shard", "0/2", "-o", "p.csv"],
            [*SCAN, "--shard", "1/2", "-o", "p.csv"],
            ["export", "--checkpoint", "ck.safetensors", "--out", "m.onnx"],
            [*TRAIN, "--out", "t.safetensors", "--log", "log.jsonl"],
            BENCH,
            ROUTES,
        ):
            result = _invoke(*args)
            assert result.exit_code == 0, (args, result.output)
    finally:
        os.chdir(cwd)
    return root


@dataclass(frozen=True)
class Option:
    """How to run one output option with ``target`` as its output."""

    argv: Callable[[str], list[str]]
    earlier: str  # an earlier output of this kind in ``made``
    recognise: Callable[[str], bool]
    prepare: Callable[[Path, str], None] = lambda work, target: None


def _merge_parts(work: Path, target: str) -> None:
    for k in range(2):
        for suffix in ("", ".summary.json"):
            shutil.copy(work / f"p.csv.part{k}{suffix}", work / f"{target}.part{k}{suffix}")


def _bench_json(path: str) -> bool:
    return Path(path).read_bytes().startswith(b"{") and b'"scores"' in Path(path).read_bytes()


OPTIONS = {
    "scan-out": Option(lambda t: [*SCAN, "--format", "csv", "-o", t], "r.csv", SCAN_RESULTS.recognise),
    "summary-json": Option(lambda t: [*SCAN, "-o", "new.csv", "--summary-json", t], "s.json", SCAN_SUMMARY.recognise),
    "html": Option(lambda t: [*SCAN, "-o", "new.csv", "--html", t], "rep.html", HTML_REPORT.recognise),
    "merge": Option(lambda t: ["scan", "--merge", t, "--format", "csv"], "r.csv", SCAN_RESULTS.recognise, _merge_parts),
    "report": Option(lambda t: ["report", "r.csv", "--root", ".", "-o", t], "rep.html", HTML_REPORT.recognise),
    "export": Option(lambda t: ["export", "--checkpoint", "ck.safetensors", "--out", t], "m.onnx", ONNX_GRAPH.recognise),
    "export-sidecar": Option(
        lambda t: ["export", "--checkpoint", "ck.safetensors", "--out", t[: -len(".json")]], "m.onnx.json",
        EXPORT_SIDECAR.recognise,
    ),  # fmt: skip
    "train-out": Option(lambda t: [*TRAIN, "--out", t], "t.safetensors", CHECKPOINT.recognise),
    "train-log": Option(lambda t: [*TRAIN, "--out", "new.safetensors", "--log", t], "log.jsonl", TRAIN_LOG.recognise),
    "bench": Option(lambda t: BENCH, "bench/results.json", _bench_json),
    "routes": Option(lambda t: ROUTES, "maps/routes.json", lambda p: b'"utilisation"' in Path(p).read_bytes()),
}

# (option, target) -> the fragment of the one-line refusal, or None where the write is allowed (exit 0).
# The targets: an input image, the detector, another output of the same run, an unrelated file
# without --overwrite, an earlier output with --overwrite, a FIFO with no reader, /dev/null, a link.
READS = "which this run reads"
UNDER = "imgs, which this run reads"  # train names its data folders by their absolute paths
OTHER = "is also this run's"
EXISTS = "exists; pass --"
NOT_EARLIER = "exists and is not an earlier"
FIFO = "is a FIFO with no reader"
LINK = "is a symbolic link"
NOT_REGULAR = "is not a regular file"
EXPECTED: dict[tuple[str, str], str | None] = {
    **{(o, "input"): UNDER for o in ("scan-out", "summary-json", "html", "train-out", "train-log")},
    ("report", "input"): "is under ., which this run reads",
    ("routes", "input"): NOT_EARLIER,
    ("bench", "input"): NOT_EARLIER,
    ("merge", "input"): NOT_EARLIER,
    **{(o, "detector"): READS for o in ("scan-out", "summary-json", "html", "export", "export-sidecar", "bench", "routes")},
    ("report", "detector"): "is under ., which this run reads",
    ("merge", "detector"): NOT_EARLIER,
    **{(o, "other"): OTHER for o in ("scan-out", "summary-json", "html", "export", "train-out", "train-log", "bench", "routes")},
    **{(o, "unrelated"): EXISTS for o in OPTIONS if o != "train-log"},
    ("train-log", "unrelated"): NOT_EARLIER,
    **{(o, "earlier"): None for o in OPTIONS if o != "export-sidecar"},
    **{(o, "fifo"): FIFO for o in OPTIONS},
    ("merge", "fifo"): NOT_REGULAR,
    ("export", "fifo"): NOT_REGULAR,
    ("train-out", "fifo"): NOT_REGULAR,
    **{(o, "devnull"): None for o in ("scan-out", "summary-json", "html", "report", "train-log", "bench", "routes")},
    ("export", "devnull"): NOT_REGULAR,
    ("train-out", "devnull"): NOT_REGULAR,
    **{(o, "symlink"): LINK for o in OPTIONS},
}


def _folder_target(option: str) -> str | None:
    return {"bench": "bench/results.json", "routes": "maps/routes.json"}.get(option)


def _char_device(work: Path) -> str:
    """A character device to write to: a private node like /dev/null where we may make one (root),
    so that a build that replaces devices replaces only that node and never the machine's
    /dev/null; /dev/null itself otherwise (a user who cannot make nodes cannot replace it either)."""
    node = work / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return "/dev/null"
    return str(node)


def _place(option: str, kind: str, work: Path) -> tuple[str, list[str]]:
    """Make the target of one case in ``work``; return its path and extra arguments."""
    inside = _folder_target(option)
    if inside is not None:
        target = work / inside
        if kind in ("fifo", "devnull"):
            shutil.rmtree(target.parent)
            target.parent.mkdir()
        source = {"input": work / "imgs" / "a.png", "detector": work / "ck.safetensors"}.get(kind)
        if source is not None:
            target.unlink()
            os.link(source, target)
            return inside, ["--overwrite"]
        if kind == "other":
            # a later file of the run made the same file as an earlier one (a hard link)
            first, later = ("bench/results.csv", "bench/predictions.csv") if option == "bench" else ("maps/a.png", inside)
            (work / later).unlink()
            os.link(work / first, work / later)
            return later, ["--overwrite"]
        if kind == "devnull":
            target.symlink_to(_char_device(work))
            return inside, []
        return _make(kind, work, inside, OPTIONS[option].earlier)
    if kind == "input":
        return "imgs/a.png", ["--overwrite"]
    if kind == "detector":
        if option == "export-sidecar":
            shutil.copy(work / "ck.safetensors", work / "x.onnx.json")
            return "x.onnx.json", ["--checkpoint", "x.onnx.json", "--overwrite"]
        return "ck.safetensors", ["--overwrite"]
    if kind == "other":
        if option == "export":
            shutil.copy(work / "m.onnx", work / "o.onnx")
            os.link(work / "o.onnx", work / "o.onnx.json")
            return "o.onnx", ["--overwrite"]
        if option == "train-log":
            return "new.safetensors", []
        target, clash = {"scan-out": ("o.csv", "--summary-json"), "summary-json": ("o.json", "--html"),
                         "html": ("o.html", "--summary-json"), "train-out": ("o.safetensors", "--log")}[option]  # fmt: skip
        return target, [clash, target, "--overwrite"]
    if kind == "devnull":
        return _char_device(work), []
    name = {"export-sidecar": "x.onnx.json", "export": "x.onnx", "merge": "x.csv"}.get(option, "x" + Path(OPTIONS[option].earlier).suffix)
    return _make(kind, work, name, OPTIONS[option].earlier)


def _make(kind: str, work: Path, name: str, earlier: str) -> tuple[str, list[str]]:
    target = work / name
    if kind == "unrelated":
        target.write_bytes(KEEP)
        return name, []
    if kind == "earlier":
        if os.path.abspath(work / earlier) != os.path.abspath(target):
            shutil.copy(work / earlier, target)
        return name, ["--overwrite"]
    if kind == "fifo":
        os.mkfifo(target)
        return name, []
    if kind == "symlink":
        shutil.copy(work / earlier, work / "linked")
        target.unlink(missing_ok=True)
        target.symlink_to(work / "linked")
        return name, ["--overwrite"]
    raise AssertionError(kind)


def _state(path: Path) -> tuple | None:
    """What a refused command must leave as it was: the file's type, inode and bytes (a link's target too)."""
    if not os.path.lexists(path):
        return None
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return ("link", os.readlink(path), _state(path.parent / os.readlink(path)))
    if stat.S_ISREG(info.st_mode):
        return ("file", info.st_ino, path.read_bytes())
    return ("special", stat.S_IFMT(info.st_mode), info.st_rdev)


CASES = sorted(EXPECTED)


@pytest.mark.parametrize(("option", "kind"), CASES, ids=[f"{o}-{k}" for o, k in CASES])
def test_every_output_follows_the_rule(made, tmp_path, monkeypatch, option, kind):
    work = tmp_path / "work"
    shutil.copytree(made, work, symlinks=True)
    monkeypatch.chdir(work)
    spec = OPTIONS[option]
    target, extra = _place(option, kind, work)
    spec.prepare(work, target)
    path = Path(target) if os.path.isabs(target) else work / target
    before = _state(path)
    args = spec.argv(target) + extra
    if "--checkpoint" in extra:  # the sidecar case names its own checkpoint
        at = args.index("--checkpoint")
        del args[at : at + 2]
    result = _invoke(*args)
    expected = EXPECTED[(option, kind)]
    if expected is not None:
        # a FIFO found without a reader at the end of the work follows its progress lines
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert result.exit_code == 2, result.output
        assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]) and expected in errors[0], result.stderr
        assert "Traceback" not in result.output
        assert _state(path) == before, f"{target} changed"
        return
    assert result.exit_code == 0, result.output
    if kind == "devnull":
        assert _state(path) == before and stat.S_ISCHR(os.stat(path).st_mode)
        return
    assert spec.recognise(str(path)), f"{target} is not a fresh {option} output"
    if option == "train-log":
        assert path.read_bytes().startswith(before[2]) and len(path.read_bytes()) > len(before[2])  # appended
    else:
        assert os.stat(path).st_ino != before[1], f"{target} was not replaced"


def test_a_fifo_with_a_reader_receives_the_summary_in_place(made, tmp_path, monkeypatch):
    """--summary-json into a FIFO someone reads: the reader gets the JSON, the FIFO stays a FIFO."""
    import json
    import select

    work = tmp_path / "work"
    shutil.copytree(made, work, symlinks=True)
    monkeypatch.chdir(work)
    os.mkfifo("pipe")
    reader = os.open("pipe", os.O_RDONLY | os.O_NONBLOCK)
    try:
        result = _invoke(*SCAN, "-o", "new.csv", "--summary-json", "pipe")
        assert result.exit_code == 0, result.output
        received = b""
        while select.select([reader], [], [], 0)[0]:
            chunk = os.read(reader, 1 << 16)
            if not chunk:
                break
            received += chunk
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat("pipe").st_mode)
    assert json.loads(received)["scored"] == 5


def test_dev_stdout_is_written_not_replaced(made, tmp_path, monkeypatch):
    """/dev/stdout is a link to the process's standard output: rows go there, and no file appears."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    shutil.copytree(made, tmp_path / "work", symlinks=True)
    done = subprocess.run(
        [sys.executable, "-m", "aigdetect", *SCAN, "-q", "--format", "csv", "-o", "/dev/stdout"],
        cwd=tmp_path / "work", env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0].startswith("path,status,") and len(lines) == 1 + 5
    assert os.path.islink("/dev/stdout")
