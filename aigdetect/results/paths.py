"""How file paths are written into scan results, so that any name survives and can be recovered.

Linux file names are bytes. The ``path`` column holds them as text: valid UTF-8 is written as is,
while each byte that is not valid UTF-8, each control character and the backslash itself are
escaped (``\\xNN`` and ``\\\\``). The escaping is unambiguous, so ``raw_path`` gives the exact bytes
back, and no row ever spans two lines of a CSV or JSONL file.
"""

from __future__ import annotations

import os
import re

_NEEDS_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f\udc80-\udcff]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def display_path(path: str | bytes | os.PathLike[str]) -> str:
    """The escaped text form of a path, as it appears in the ``path`` column."""
    text = os.fsdecode(path)
    return _NEEDS_ESCAPE.sub(_escape_char, text) if _NEEDS_ESCAPE.search(text) else text


def raw_path(text: str) -> bytes:
    """Invert ``display_path``: the file name's exact bytes, ready for ``open`` or ``os.stat``."""
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        out += text[position : match.start()].encode("utf-8")
        token = match.group(1)
        out += b"\\" if token == "\\" else bytes([int(token[1:], 16)])
        position = match.end()
    out += text[position:].encode("utf-8")
    return bytes(out)


def sort_key(path: str) -> bytes:
    """Byte order of the file name, identical on every machine and locale."""
    return os.fsencode(path)
