"""The JSON results document, ``{"columns": [...], "rows": [...], "summary": {...}}``, read row by row.

``json.load`` would hold the whole document and every row at once (gigabytes for a file of empty
objects); here the top-level object is walked by hand and each value decoded with
``JSONDecoder.raw_decode`` from a sliding buffer that never holds more than one value (capped) and
one chunk. The keys may come in any order; unknown keys are skipped, within the same cap.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..errors import InputError, InputFileError

_CHUNK = 64 * 1024
_SPACE = re.compile(r"[ \t\n\r]*")


class _Incomplete(Exception):
    """The buffer ends inside the value being decoded."""


class JsonRows:
    """Walks one JSON results document; ``columns`` and ``summary`` are set as they are met.

    Args:
        handle: the file, at its start.
        name: the file's name, for messages.
        cap: the most bytes one value (a row, the columns, the summary) may take.
        max_bytes: the most bytes read from the file.
    """

    def __init__(self, handle: BinaryIO, name: str, cap: int, max_bytes: int) -> None:
        self.handle = handle
        self.name = name
        self.cap = cap
        self.max_bytes = max_bytes
        self.columns: list[str] | None = None
        self.summary: dict[str, Any] = {}
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._json = json.JSONDecoder()
        self._buffer = ""
        self._at = 0
        self._read = 0
        self._eof = False

    def _fill(self, wanted: int) -> None:
        if self._eof:
            raise _Incomplete
        data = self.handle.read(max(_CHUNK, wanted))
        self._read += len(data)
        if self._read > self.max_bytes:
            raise InputFileError(self.name, "too-large", f"more than {self.max_bytes} bytes")
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise InputError(f"{self.name} is not UTF-8 text (byte {self._read - len(data) + exc.start}); "
                             "it was not written by 'aigdetect scan'") from None  # fmt: skip
        self._eof = not data
        self._buffer = self._buffer[self._at :] + text
        self._at = 0

    def _invalid(self, detail: str) -> InputError:
        return InputError(f"{self.name} is not valid JSON ({detail[:80]})")

    def _next_char(self) -> str:
        """The next character that is not white space, left unread; "" at the end of the file."""
        while True:
            self._at = _SPACE.match(self._buffer, self._at).end()  # type: ignore[union-attr]
            if self._at < len(self._buffer):
                return self._buffer[self._at]
            if self._eof:
                return ""
            self._fill(_CHUNK)

    def _take(self, char: str) -> bool:
        if self._next_char() == char:
            self._at += 1
            return True
        return False

    def _expect(self, char: str) -> None:
        if not self._take(char):
            raise self._invalid(f"expected {char!r} at character {self._at}")

    def _value(self, what: str) -> Any:
        """One whole JSON value, read in as many chunks as it needs, up to ``cap`` bytes."""
        self._next_char()
        while True:
            try:
                value, end = self._json.raw_decode(self._buffer, self._at)
                if end == len(self._buffer) and not self._eof:
                    raise _Incomplete  # a number or literal may go on in the next chunk
                if end - self._at > self.cap:
                    raise InputError(f"{what} of {self.name} is larger than {self.cap} bytes; the file is damaged")
                self._at = end
                return value
            except (json.JSONDecodeError, _Incomplete) as exc:
                pending = len(self._buffer) - self._at
                if self._eof:
                    raise self._invalid(str(exc) or "it ends inside a value") from None
                if pending > self.cap:
                    raise InputError(f"{what} of {self.name} is larger than {self.cap} bytes; the file is damaged") from None
                try:
                    self._fill(pending)
                except _Incomplete:
                    raise self._invalid(str(exc)) from None
            except (ValueError, RecursionError) as exc:
                raise self._invalid(str(exc) or "nested too deeply") from None

    def rows(self) -> Iterator[Any]:
        """Every element of ``rows``, in order; the other keys are read as they come.

        Raises:
            InputError: not a JSON object with a ``rows`` list, ``columns`` not a list of names,
                ``summary`` not an object, a value over the cap, or anything not valid JSON.
        """
        if not self._take("{"):
            self._value("the document")
            raise InputError(f'{self.name} is not an aigdetect scan result: no "rows" list')
        seen_rows = False
        first = True
        while not self._take("}"):
            if not first:
                self._expect(",")
            first = False
            key = self._value("a key")
            if not isinstance(key, str):
                raise self._invalid(f"a key is not a string at character {self._at}")
            self._expect(":")
            if key == "rows" and self._next_char() == "[":
                seen_rows = True
                yield from self._elements()
            else:
                self._keep(key, self._value(f'"{key[:40]}"'))
        if self._next_char():
            raise self._invalid("extra data after the document")
        if not seen_rows:
            raise InputError(f'{self.name} is not an aigdetect scan result: no "rows" list')

    def _elements(self) -> Iterator[Any]:
        self._expect("[")
        number = 0
        while not self._take("]"):
            if number:
                self._expect(",")
            number += 1
            yield self._value(f"row {number}")

    def _keep(self, key: str, value: Any) -> None:
        if key == "columns":
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise InputError(f'{self.name}: "columns" is not a list of names')
            self.columns = value
        elif key == "summary":
            if value is not None and not isinstance(value, dict):
                raise InputError(f'{self.name}: "summary" is not an object')
            self.summary = value or {}
        elif key == "rows":
            raise InputError(f'{self.name} is not an aigdetect scan result: no "rows" list')
