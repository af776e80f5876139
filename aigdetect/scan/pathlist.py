"""``files_from``: the paths of a list file (or standard input), read with caps and never blocking.

The list is input like any other: it may be ``/dev/zero``, a FIFO nobody writes to, gigabytes, or
one endless line. So it is read in chunks against a cap on its size and on each line, a FIFO is
opened without blocking (with no writer it is simply empty), devices and sockets are refused, and
every path is written one way (``./a.png``, ``a.png`` and ``.//a.png`` are one file, one row).
"""

from __future__ import annotations

import os
import select
import stat
from collections.abc import Iterator
from typing import BinaryIO

from ..errors import InputError

MAX_LIST_BYTES = 256 * 1024 * 1024
"""The largest list read: about two million paths of a hundred bytes."""
MAX_LINE_BYTES = 4096
"""The longest path in a list: ``PATH_MAX`` on Linux."""
STDIN = "-"
_CHUNK = 1 << 20


def normal_path(path: bytes) -> bytes:
    """The path without ``.`` components and repeated or trailing slashes; ``..`` is kept, since
    through a link it need not lead back where it came from."""
    parts = [part for part in path.split(b"/") if part not in (b"", b".")]
    joined = b"/".join(parts)
    if path.startswith(b"/"):
        return b"/" + joined
    return joined or b"."


def _fifo_chunks(fd: int) -> Iterator[bytes]:
    """A pipe's bytes until its writers close it; with no writer it reads as empty at once (a
    non-blocking read sees the end), and only a pipe that has a writer is waited on."""
    while True:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            select.select([fd], [], [])
            continue
        if not data:
            return
        yield data


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    while data := handle.read(_CHUNK):
        yield data


class _Collector:
    """Splits chunks into paths, refusing a list or a line over its cap."""

    def __init__(self, name: str, null_separated: bool) -> None:
        self.name = name
        self.null_separated = null_separated
        self.separator = b"\0" if null_separated else b"\n"
        self.paths: dict[bytes, None] = {}
        self.line = 0

    def add(self, item: bytes) -> None:
        self.line += 1
        if not self.null_separated:
            item = item.rstrip(b"\r")
            if b"\0" in item:
                raise InputError(
                    f"`files_from` {self.name}: line {self.line} holds a NUL byte; for NUL-separated lists use `null`"
                )
        if len(item) > MAX_LINE_BYTES:
            raise InputError(f"`files_from` {self.name}: path {self.line} is longer than {MAX_LINE_BYTES} bytes")
        if item:
            self.paths.setdefault(normal_path(item))

    def read(self, chunks: Iterator[bytes]) -> tuple[str, ...]:
        pending = b""
        total = 0
        for chunk in chunks:
            total += len(chunk)
            if total > MAX_LIST_BYTES:
                raise InputError(f"`files_from` {self.name} is larger than {MAX_LIST_BYTES} bytes; split the list")
            *items, pending = (pending + chunk).split(self.separator)
            for item in items:
                self.add(item)
            if len(pending) > MAX_LINE_BYTES:
                raise InputError(f"`files_from` {self.name}: path {self.line + 1} is longer than {MAX_LINE_BYTES} bytes")
        self.add(pending)
        return tuple(os.fsdecode(path) for path in self.paths)


def read_path_list(source: str, *, null_separated: bool, stdin: BinaryIO | None) -> tuple[str, ...]:
    """The paths listed in ``source`` (``-``: ``stdin``), one per line or NUL-separated, each once.

    Args:
        source: the list file, or ``-`` for standard input.
        null_separated: paths end with NUL bytes (``find -print0``) instead of newlines.
        stdin: standard input as bytes, or None when it is closed.

    Raises:
        InputError: standard input is closed, the file cannot be opened or is a device, socket or
            folder, the list or one line is over its cap, or a line holds a NUL byte.
    """
    if source == STDIN:
        if stdin is None:
            raise InputError("`files_from` -: standard input is closed")
        try:
            return _Collector("-", null_separated).read(_chunks(stdin))
        except OSError as exc:
            raise InputError(f"`files_from` -: standard input cannot be read ({exc.strerror or exc})") from None
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InputError(f"`files_from` {source}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a device or socket"
        raise InputError(f"`files_from` {source} is {kind}, not a list file")
    with os.fdopen(fd, "rb", buffering=0) as handle:
        collector = _Collector(source, null_separated)
        try:
            if stat.S_ISFIFO(mode):
                return collector.read(_fifo_chunks(fd))
            os.set_blocking(fd, True)
            return collector.read(_chunks(handle))  # type: ignore[arg-type]
        except OSError as exc:
            raise InputError(f"`files_from` {source}: {exc.strerror or exc}") from None
