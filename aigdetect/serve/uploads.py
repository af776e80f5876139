"""Receiving uploads: a multipart body streamed to a private folder, counted and capped as it arrives.

The body is never held in memory and never read past its cap: a declared ``Content-Length`` over
the cap is refused before a byte of the body is read, and a body without one (chunked) is refused
as soon as the bytes received pass it. Each file goes to a folder only this process may enter, under
a name of our own (its index), so that nothing the client sends, its file name included, reaches a
path; the client's name is kept as text for the report.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .refusals import Refused

FIELD = "files"
"""The multipart field that carries the files."""
MAX_NAME_CHARS = 255
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


@dataclass(frozen=True)
class UploadLimits:
    """What one request may send: body bytes, files, and seconds of silence between two chunks."""

    max_bytes: int
    max_files: int
    read_timeout_s: float


@dataclass
class Uploads:
    """The files of one request, in a private folder that ``remove`` deletes with them."""

    folder: str
    names: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def clean_name(raw: bytes, index: int) -> str:
    """The client's file name as text for a report: its last path component, without control or
    invisible characters, at most ``MAX_NAME_CHARS``; ``upload-N`` when nothing is left."""
    text = raw.decode("utf-8", errors="replace").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c) not in _HIDDEN).strip()[:MAX_NAME_CHARS]
    return text if text not in ("", ".", "..") else f"upload-{index + 1}"


def _boundary(content_type: str | None) -> bytes:
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise Refused(400, "bad-upload", f"send the files as multipart/form-data in the field '{FIELD}'")
    return boundary


def check_length(content_length: str | None, limits: UploadLimits) -> None:
    """Refuse a body whose declared length is over the cap, before any of it is read."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise Refused(400, "bad-upload", "the Content-Length header is not a number") from None
    if declared > limits.max_bytes:
        raise Refused(413, "too-large", f"the upload is over the limit of {limits.max_bytes} bytes")


class _Receiver:
    """python-multipart's callbacks: each part named ``files`` is written to its own file as it arrives."""

    def __init__(self, uploads: Uploads, max_files: int) -> None:
        self.uploads = uploads
        self.max_files = max_files
        self.header_field = b""
        self.headers: dict[bytes, bytes] = {}
        self.fd: int | None = None
        self.ended = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: setattr(self, "header_field", self.header_field + data[start:end]),
            "on_header_value": self.header_value,
            "on_header_end": lambda: setattr(self, "header_field", b""),
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": lambda: setattr(self, "ended", True),
        }

    def part_begin(self) -> None:
        self.headers = {}
        self.header_field = b""

    def header_value(self, data: bytes, start: int, end: int) -> None:
        key = self.header_field.lower()
        self.headers[key] = self.headers.get(key, b"") + data[start:end]

    def headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        kind, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if kind != b"form-data" or options.get(b"name") != FIELD.encode() or b"filename" not in options:
            raise Refused(400, "bad-upload", f"only files in the field '{FIELD}' are accepted")
        index = len(self.uploads.paths)
        if index >= self.max_files:
            raise Refused(413, "too-many-files", f"more than {self.max_files} files in one request")
        path = os.path.join(self.uploads.folder, f"{index:04d}")
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        self.uploads.paths.append(path)
        self.uploads.names.append(clean_name(options[b"filename"], index))

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.fd is not None:
            view = memoryview(data)[start:end]
            while view:
                view = view[os.write(self.fd, view) :]

    def part_end(self) -> None:
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


async def receive_uploads(
    content_type: str | None, content_length: str | None, chunks: AsyncIterator[bytes], limits: UploadLimits
) -> Uploads:
    """Stream a multipart body into a new private folder and return its files.

    Raises:
        Refused: 400 for a body that is not a well-formed multipart upload of files (truncated
            included), 408 when the client goes silent, 413 for too many bytes or files. The folder
            is removed before it raises.
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser

    check_length(content_length, limits)
    boundary = _boundary(content_type)
    uploads = Uploads(tempfile.mkdtemp(prefix="aigdetect-upload-"))
    receiver = _Receiver(uploads, limits.max_files)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        received = 0
        iterator = aiter(chunks)
        while True:
            try:
                chunk = await asyncio.wait_for(anext(iterator), limits.read_timeout_s)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise Refused(408, "timeout", f"the client sent nothing for {limits.read_timeout_s:g} s") from None
            received += len(chunk)
            if received > limits.max_bytes:
                raise Refused(413, "too-large", f"the upload is over the limit of {limits.max_bytes} bytes")
            parser.write(chunk)
        parser.finalize()
        if not receiver.ended:
            raise Refused(400, "bad-upload", "the upload ends before its closing boundary (truncated)")
        if not uploads.paths:
            raise Refused(400, "bad-upload", f"no file in the field '{FIELD}'")
    except MultipartParseError as exc:
        receiver.close()
        uploads.remove()
        raise Refused(400, "bad-upload", f"not a well-formed multipart upload ({exc})") from None
    except BaseException:
        receiver.close()
        uploads.remove()
        raise
    receiver.close()
    return uploads
