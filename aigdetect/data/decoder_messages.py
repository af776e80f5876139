"""What decoders say while they work, kept for the file's row instead of reaching the terminal.

Decoders talk on three channels: Python warnings, the records of Pillow's loggers (``PIL.*``, e.g.
"More samples per pixel than can be decoded"), and native libraries writing straight to file
descriptor 2 (libtiff's "WEBP compression support is not configured"). The first two are taken in
any thread. Descriptor 2 belongs to the whole process, so it is taken only in a process that owns
it, with no other thread writing there: a decode worker, which says so with ``own_native_stderr``
when it starts. Anywhere else native messages go where they always went.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

MAX_MESSAGES = 4
MAX_MESSAGE_CHARS = 200
_NATIVE_READ = 16 << 10
_PIL_LOGGER = "PIL"


def _clean(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:MAX_MESSAGE_CHARS]


class _ToSinks(logging.Handler):
    """Hands each record to the list of the thread that logged it, if that thread is capturing."""

    def __init__(self, sinks: dict[int, list[str]]) -> None:
        super().__init__(logging.WARNING)
        self.sinks = sinks

    def emit(self, record: logging.LogRecord) -> None:
        sink = self.sinks.get(record.thread or 0)
        if sink is not None:
            sink.append(record.getMessage())


class _PillowLogs:
    """Takes the records of Pillow's loggers, per capturing thread, while any capture runs; Pillow's
    logger does not propagate meanwhile, so nothing reaches the root logger or Python's last-resort
    stderr handler (a record from a thread that is not capturing is dropped)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sinks: dict[int, list[str]] = {}
        self._handler = _ToSinks(self._sinks)
        self._saved_propagate = True

    @contextmanager
    def __call__(self, sink: list[str]) -> Iterator[None]:
        logger = logging.getLogger(_PIL_LOGGER)
        with self._lock:
            if not self._sinks:
                self._saved_propagate = logger.propagate
                logger.addHandler(self._handler)
                logger.propagate = False
            self._sinks[threading.get_ident()] = sink
        try:
            yield
        finally:
            with self._lock:
                del self._sinks[threading.get_ident()]
                if not self._sinks:
                    logger.removeHandler(self._handler)
                    logger.propagate = self._saved_propagate


class _NativeStderr:
    """Descriptor 2 pointed at a private file around each decode, in a process that owns it."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None

    def own(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile()

    @contextmanager
    def __call__(self, sink: list[str]) -> Iterator[None]:
        capture = self._file
        if capture is None:
            yield
            return
        sys.stderr.flush()
        capture.seek(0)
        capture.truncate()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sink.extend(capture.read(_NATIVE_READ).decode("utf-8", "replace").splitlines())


_pillow_logs = _PillowLogs()
_native_stderr = _NativeStderr()


def own_native_stderr() -> None:
    """Declare that this process owns descriptor 2 (a decode worker): from now on, what native
    decoders write there during a capture is taken too."""
    _native_stderr.own()


class DecoderMessages:
    """The messages of one decode, cleaned to single lines, repeats and Pillow's stand-in file name
    (``tempfile.tif: ``) removed."""

    def __init__(self) -> None:
        self._raw: list[str] = []

    @contextmanager
    def captured(self, ignore: tuple[type[Warning], ...] = ()) -> Iterator[None]:
        """Take every message of the three channels written inside the block; warnings of the
        ``ignore`` categories are dropped (the caller says the same thing better)."""
        with warnings.catch_warnings(record=True) as caught, _pillow_logs(self._raw), _native_stderr(self._raw):
            warnings.simplefilter("always")
            for category in ignore:
                warnings.simplefilter("ignore", category)
            try:
                yield
            finally:
                self._raw.extend(str(warning.message) for warning in caught)

    @property
    def lines(self) -> list[str]:
        out: list[str] = []
        for raw in self._raw:
            line = _clean(raw.removeprefix("tempfile.tif: "))
            if line and line not in out:
                out.append(line)
        return out[:MAX_MESSAGES]

    def mention(self, text: str) -> str | None:
        """The first message containing ``text``, or None."""
        return next((line for line in self.lines if text in line), None)

    def appended_to(self, detail: str) -> str:
        """``detail`` followed by the messages it does not already contain."""
        extra = [line for line in self.lines if line not in detail]
        return f"{detail} (decoder said: {'; '.join(extra)})" if extra else detail
