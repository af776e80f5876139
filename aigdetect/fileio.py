"""File helpers every layer shares: safe opening of inputs, atomic replacement of outputs, strict JSON."""

from __future__ import annotations

import errno
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from .errors import InputFileError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def naming_errors(path: str | os.PathLike[str], *aliases: str) -> Iterator[None]:
    """Make the OSErrors raised inside name ``path`` where they name no file (a failed write or
    flush on a file object names none, so a full disk would be reported without saying which
    output) or name one of ``aliases`` (the temporary file behind ``path``)."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None or exc.filename not in (None, *aliases):
            raise
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
    """Run ``write(tmp_path)`` then fsync and rename, so readers never see a half-written file.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask), not
    mkstemp's private 0600, so checkpoints and reports can be shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
    os.close(fd)
    try:
        with naming_errors(path, tmp):
            write(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_current_umask())
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def finite(value: Any) -> float | None:
    """The value as a float, or None where it is missing, NaN or infinite."""
    return float(value) if value is not None and math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """NaN and infinities become null (recursively), so what we write is strict JSON."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def open_input(path: str | bytes | os.PathLike[str], *, follow_symlinks: bool = False) -> tuple[BinaryIO, os.stat_result]:
    """Open an input file for reading without ever blocking on it or following a link by surprise.

    The file is opened non-blocking (a FIFO cannot hang us) and without following a final symbolic
    link unless asked; its type is then checked on the open descriptor, so a file swapped for a
    FIFO, a device or a link after it was listed is refused rather than read. The size and time
    come from that same descriptor, so they describe the bytes that will be read.

    Returns:
        The open binary handle (blocking again, for ordinary reads) and its ``fstat``.

    Raises:
        InputFileError: reason ``missing``, ``symlink``, ``unsupported`` (a FIFO, socket or device)
            or ``unreadable`` (no permission, a folder).
    """
    name = os.fsdecode(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputFileError(name, "missing", "no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise InputFileError(name, "symlink", "symbolic link, not followed") from None
        raise InputFileError(name, "unreadable", exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputFileError(name, "unreadable", "is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(name, "unsupported", f"not a regular file ({_kind(info.st_mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def read_capped(handle: BinaryIO, limit: int, name: str) -> bytes:
    """Read the rest of ``handle``, refusing (reason ``too-large``) more than ``limit`` bytes."""
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise InputFileError(name, "too-large", f"more than {limit} bytes")
    return data
