"""Every file a command writes goes through here, under one rule.

An output is checked before the run starts (``check_outputs``) and written through ``write_output``:

- a path equal to a file the run reads (a scanned image, the detector, a report's results file) or
  to another output of the same run is refused, paths compared by identity (``st_dev``/``st_ino``),
  not by spelling; so is an existing file under a folder the run reads (scanned images, the images a
  report previews) unless it is an earlier output of the same kind;
- an existing regular file is replaced only with ``overwrite``, and only when its content shows it
  is an earlier output of the same kind (a CSV header, a JSON key, the HTML generator tag, the
  checkpoint's metadata, ...): never an image or a file of another kind, whatever its name;
- a FIFO or a character device (``/dev/stdout``, ``/dev/null``) is written to in place, never
  replaced; a FIFO with no reader is refused rather than waited on; block devices and sockets
  are refused;
- a symbolic link is refused unless it leads to a FIFO or a character device (``/dev/stdout`` is a
  link): replacing it would either cut the link or write wherever it points, and neither is what
  a user naming it could be sure of.

Regular files are replaced atomically (``atomic_write``), so readers never see half an output.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .errors import ConfigError
from .fileio import atomic_write

HEAD_BYTES = 1 << 20
"""How much of an existing file is read to recognise its kind (a checkpoint's header fits)."""

PathLike = str | os.PathLike[str]
Key = tuple[str, Any, Any]
Reads = tuple[dict[tuple[int, int], str], list[tuple[str, tuple[int, int]]]]


class OutputError(ConfigError):
    """An output path that must not be written: an input, another output, a file of another kind."""


@dataclass(frozen=True)
class OutputKind:
    """A kind of file we write, and how to tell an earlier one (at the path given) by its content."""

    name: str
    recognise: Callable[[str], bool]


def head(path: str) -> bytes:
    """The first ``HEAD_BYTES`` of a regular file, read without following a link or blocking; empty
    when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as handle:
        return handle.read(HEAD_BYTES) if stat.S_ISREG(os.fstat(handle.fileno()).st_mode) else b""


def starts(*prefixes: bytes, holding: tuple[bytes, ...] = ()) -> Callable[[str], bool]:
    """A recogniser: the file starts with one of ``prefixes`` and its head holds every marker."""

    def recognise(path: str) -> bool:
        first = head(path)
        return first.startswith(prefixes) and all(marker in first for marker in holding)

    return recognise


def _safetensors_metadata(marker: bytes) -> Callable[[str], bool]:
    def recognise(path: str) -> bool:
        first = head(path)
        size = int.from_bytes(first[:8], "little") if len(first) >= 8 else 0
        header = first[8 : 8 + size]
        return header.startswith(b"{") and b'"__metadata__"' in header and marker in header

    return recognise


SCAN_SUMMARY = OutputKind("scan summary", starts(b"{", holding=(b'"scored"', b'"aigdetect_version"')))
HTML_REPORT = OutputKind("aigdetect HTML report", starts(b"", holding=(b'<meta name="generator" content="aigdetect ',)))
CHECKPOINT = OutputKind("aigdetect checkpoint", _safetensors_metadata(b"aigdetect.detector"))
ONNX_GRAPH = OutputKind("ONNX graph exported by PyTorch", starts(b"\x08", holding=(b"\x12\x07pytorch",)))
EXPORT_SIDECAR = OutputKind("export sidecar", starts(b"{", holding=(b'"aigdetect_version"', b'"preprocessing"')))
# Appending to an empty file loses nothing (another rank may have just created the log).
TRAIN_LOG = OutputKind("training log", lambda path: starts(b'{"run_id": ')(path) or os.path.getsize(path) == 0)
BENCH_JSON = OutputKind("bench results.json", starts(b"{", holding=(b'"scores"', b'"aigdetect_version"')))
BENCH_CSV = OutputKind("bench CSV", starts(b"pass,scope,", b"perturbation,level,scope,", b"subset,path,label,"))
BENCH_MARKDOWN = OutputKind("bench results.md", starts(b"# aigdetect "))
FIGURE = OutputKind("aigdetect figure", starts(b"\x89PNG\r\n\x1a\n", holding=(b"Software\x00Matplotlib",)))
ROUTES_DOCUMENT = OutputKind("routes.json", starts(b"{", holding=(b'"utilisation"',)))


@dataclass(frozen=True)
class Output:
    """One file a run will write: where, what kind, and the setting that named it (for messages)."""

    path: str
    kind: OutputKind
    setting: str

    @classmethod
    def of(cls, path: PathLike, kind: OutputKind, setting: str) -> Output:
        return cls(os.fspath(path), kind, setting)


def _stat(path: str, setting: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"`{setting}` {path}: {exc.strerror or exc}") from None


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _where(path: str) -> tuple[str, str]:
    """A key for a path that may not exist yet: its folder resolved, and its name."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.realpath(folder), name


def _special(mode: int) -> bool:
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _under(path: str, folders: Sequence[tuple[str, tuple[int, int]]]) -> str | None:
    """The read folder that holds ``path`` (by the identity of its parents), if any."""
    parents = {_identity(os.stat(p)) for p in Path(os.path.realpath(path)).parents if os.path.exists(p)}
    return next((name for name, key in folders if key in parents), None)


def _read_sets(reads: Iterable[PathLike]) -> Reads:
    files: dict[tuple[int, int], str] = {}
    folders: list[tuple[str, tuple[int, int]]] = []
    for read in reads:
        name = os.fspath(read)
        try:
            info = os.stat(name)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            folders.append((name, _identity(info)))
        elif stat.S_ISREG(info.st_mode):
            files[_identity(info)] = name
    return files, folders


def _keys(path: str, info: os.stat_result | None) -> list[Key]:
    """What makes two outputs the same file: the same name in the same (resolved) folder, or the
    same inode."""
    return [("at", *_where(path))] + ([("id", *_identity(info))] if info is not None else [])


def check_output(
    output: Output,
    *,
    overwrite: bool,
    reads: Iterable[PathLike] = (),
    others: Sequence[Output] = (),
    allowed_by: str = "pass `overwrite` to replace it",
) -> None:
    """Refuse ``output`` where writing it would destroy something the user did not ask to replace.

    Args:
        output: the file to write.
        overwrite: whether the user allows an earlier output of the same kind to be replaced.
        reads: the files and folders the run reads.
        others: the run's other outputs.
        allowed_by: what the message tells the user to pass when the file exists.

    Raises:
        OutputError: the path is a link to a file, a folder, an input, another output, a block
            device or socket, or an existing file without ``overwrite`` or of another kind.
    """
    taken = {key: other for other in others for key in _keys(other.path, _stat(other.path, other.setting))}
    _check(output, overwrite, _read_sets(reads), taken, allowed_by)


def check_outputs(
    outputs: Sequence[Output],
    *,
    overwrite: bool,
    reads: Iterable[PathLike] = (),
    others: Sequence[Output] = (),
    allowed_by: str = "pass `overwrite` to replace it",
) -> None:
    """``check_output`` for each output of one run, against the files read, the others among
    ``outputs`` and ``others`` (outputs of the run that are checked elsewhere)."""
    read_sets = _read_sets(reads)
    taken = {key: other for other in others for key in _keys(other.path, _stat(other.path, other.setting))}
    for output in outputs:
        _check(output, overwrite, read_sets, taken, allowed_by)


def _check(output: Output, overwrite: bool, reads: Reads, taken: dict[Key, Output], allowed_by: str) -> None:
    """``check_output``'s rule; ``taken`` (the run's other outputs by key) gains ``output``."""
    path, setting = output.path, output.setting
    files, folders = reads
    info = _stat(path, setting)
    keys = _keys(path, info)
    other = next((taken[key] for key in keys if key in taken), None)
    if other is not None:
        raise OutputError(f"`{setting}` {path} is also this run's `{other.setting}` ({other.path}); give each output its own file")
    taken.update(dict.fromkeys(keys, output))
    if info is None:
        if os.path.islink(path):
            raise OutputError(f"`{setting}` {path} is a symbolic link to nothing; give a plain file name")
        return
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"`{setting}` {path} is a folder; give a file name")
    if _identity(info) in files:
        raise OutputError(f"`{setting}` {path} is {files[_identity(info)]}, which this run reads; write to another file")
    if _special(info.st_mode):
        return
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"`{setting}` {path} is a block device or socket; refusing to write to it")
    if os.path.islink(path):
        raise OutputError(f"`{setting}` {path} is a symbolic link; give the path of the file itself")
    if not overwrite:
        raise OutputError(f"`{setting}` {path} exists; {allowed_by}")
    recognised = output.kind.recognise(path)
    folder = None if recognised else _under(path, folders)
    if folder is not None:
        raise OutputError(f"`{setting}` {path} is under {folder}, which this run reads; write to another file")
    if not recognised:
        raise OutputError(f"`{setting}` {path} exists and is not an earlier {output.kind.name}; refusing to replace it")


def is_special(path: PathLike) -> bool:
    """Whether ``path`` (followed) is a FIFO or character device, written in place."""
    try:
        return _special(os.stat(path).st_mode)
    except OSError:
        return False


def open_special(path: PathLike, mode: str = "w") -> Any:
    """Open a FIFO or character device for writing without waiting for a reader.

    Raises:
        OutputError: ``path`` is a FIFO that nobody reads (opening it would hang).
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OutputError(f"{name} is a FIFO with no reader; start its reader first") from None
        raise
    os.set_blocking(fd, True)
    return os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {}))


def append_output(path: PathLike) -> TextIO:
    """Open an output that grows by appending (rows, a training log): a FIFO or device in place,
    a regular file in append mode, never through a link.

    Raises:
        OutputError: ``path`` is a link to a regular file, a FIFO with no reader, a block device or
            a socket.
    """
    name = os.fspath(path)
    if is_special(name):
        return open_special(name)
    _refuse_link_or_device(name)
    return open(name, "a", encoding="utf-8")


def _refuse_link_or_device(name: str) -> None:
    try:
        info = os.stat(name)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{name} is a block device or socket; refusing to write to it")
    if os.path.islink(name):
        raise OutputError(f"{name} is a symbolic link; give the path of the file itself")


def write_output(path: PathLike, write: Callable[[str], Any]) -> None:
    """Write an output: ``write(name)`` fills a temporary file renamed over a regular ``path``, or
    writes straight into a FIFO or character device, which stays what it is.

    Raises:
        OutputError: ``path`` is a link to a regular file, a FIFO with no reader, a block device or
            a socket.
    """
    name = os.fspath(path)
    if is_special(name):
        with open_special(name, "wb"):
            write(name)
        return
    _refuse_link_or_device(name)
    atomic_write(name, write)
