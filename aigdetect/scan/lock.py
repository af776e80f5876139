"""An exclusive lock on a scan's output for the whole run, so two scans never write one file.

The lock is ``fcntl.flock`` on ``OUT.lock``: the kernel releases it when the holder exits, even
after ``kill -9``, so a stale lock file never blocks the next scan. The file holds the holder's
process id and command, which the refusal names.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from types import TracebackType

from ..errors import InputError

LOCK_SUFFIX = ".lock"
MAX_HOLDER_BYTES = 4096
# Failures to make the lock file that are the folder's doing (missing, read-only, not writable,
# full): the error names the output the user gave, not the lock file beside it.
FOLDER_ERRORS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


class OutputLock:
    """Context manager: hold ``OUT.lock`` exclusively, or refuse naming the scan that holds it."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.path = out + LOCK_SUFFIX
        self.fd: int | None = None

    def __enter__(self) -> OutputLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            if exc.errno not in FOLDER_ERRORS:
                raise
            raise OSError(exc.errno, exc.strerror, self.out) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, MAX_HOLDER_BYTES, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise InputError(f"{self.path[: -len(LOCK_SUFFIX)]} is being written by another scan ({holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}"[:MAX_HOLDER_BYTES].encode("utf-8", "replace"), 0)
        self.fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None) -> None:
        if self.fd is not None:
            os.unlink(self.path)
            os.close(self.fd)
            self.fd = None
