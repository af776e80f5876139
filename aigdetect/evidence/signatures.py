"""The table of known generator signatures (``signatures.json``), loaded once and matched one way.

Adding a generator is one row in the JSON file. Matching is deliberately plain, so a row means
what it says:

- ``tool`` and ``camera`` rows match whole words, ignoring case and punctuation: ``Adobe_Firefly/2.1``,
  ``adobe firefly`` and ``Adobe-Firefly`` all contain ``Adobe Firefly``; ``Imagenomic`` does not
  contain ``Imagen``. When several rows match, the longest pattern wins (``Stable Diffusion XL``
  before ``Stable Diffusion``).
- ``model`` rows match inside a checkpoint file name, ignoring case and punctuation
  (``sd_xl_base_1.0.safetensors`` contains ``sdxl``): model names glue words together.
- ``png-key`` rows match a PNG text key exactly (keys are case-sensitive in PNG) and name the
  parser that reads its value.
- ``watermark`` rows give a dwtDct message as text bytes or as a string of bits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

KINDS: tuple[str, ...] = ("tool", "camera", "model", "png-key", "watermark")
PARSERS: tuple[str, ...] = ("a1111", "comfyui-prompt", "comfyui-workflow", "novelai", "invokeai", "text")
ENCODINGS: tuple[str, ...] = ("bytes", "bits")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_FIELDS = {"kind", "pattern", "generator", "parser", "encoding"}


@dataclass(frozen=True)
class Signature:
    """One row of the table: what to look for (``pattern``), and whom it points to (``generator``)."""

    kind: str
    pattern: str
    generator: str
    parser: str | None = None
    encoding: str | None = None

    def bits(self) -> tuple[int, ...]:
        """A watermark row's message as bits, most significant bit of each byte first."""
        if self.encoding == "bits":
            return tuple(int(b) for b in self.pattern)
        return tuple((byte >> (7 - i)) & 1 for byte in self.pattern.encode("utf-8") for i in range(8))


def words(text: str) -> str:
    """Lower case, every run of punctuation or space turned into one space, padded for whole-word search."""
    return f" {_NON_WORD.sub(' ', text.lower()).strip()} "


def _squeezed(text: str) -> str:
    return _NON_WORD.sub("", text.lower())


def _row(raw: object, index: int) -> Signature:
    if not isinstance(raw, dict) or not {"kind", "pattern", "generator"} <= set(raw) <= _FIELDS:
        raise ValueError(f"row {index} is not an object with kind, pattern, generator (and parser or encoding)")
    row = Signature(**raw)
    if row.kind not in KINDS:
        raise ValueError(f"row {index}: kind {row.kind!r} is not one of {KINDS}")
    if not isinstance(row.pattern, str) or not row.pattern.strip() or not isinstance(row.generator, str) or not row.generator:
        raise ValueError(f"row {index}: pattern and generator must be non-empty strings")
    if (row.kind == "png-key") != (row.parser is not None) or (row.parser is not None and row.parser not in PARSERS):
        raise ValueError(f"row {index}: png-key rows, and only they, name a parser from {PARSERS}")
    if (row.kind == "watermark") != (row.encoding is not None) or (row.encoding is not None and row.encoding not in ENCODINGS):
        raise ValueError(f"row {index}: watermark rows, and only they, name an encoding from {ENCODINGS}")
    if row.encoding == "bits" and set(row.pattern) - {"0", "1"}:
        raise ValueError(f"row {index}: a bits pattern holds only 0 and 1")
    if row.kind in ("tool", "camera") and not words(row.pattern).strip():
        raise ValueError(f"row {index}: pattern {row.pattern!r} has no letters or digits")
    return row


def parse_table(text: str) -> tuple[Signature, ...]:
    """Rows from the JSON text of a signature table, each checked (a bad row names its index).

    Raises:
        ValueError: the table is not version 1, or a row is malformed or duplicated.
    """
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("rows"), list):
        raise ValueError("a signature table is an object with version 1 and a list of rows")
    rows = tuple(_row(raw, i) for i, raw in enumerate(data["rows"]))
    seen = set()
    for i, row in enumerate(rows):
        key = (row.kind, _key(row))
        if key in seen:
            raise ValueError(f"row {i}: duplicate {row.kind} pattern {row.pattern!r}")
        seen.add(key)
    return rows


def _key(row: Signature) -> str:
    if row.kind == "model":
        return _squeezed(row.pattern)
    if row.kind in ("tool", "camera"):
        return words(row.pattern)
    return row.pattern


@cache
def load_signatures() -> tuple[Signature, ...]:
    """The built-in table, read once from the package data."""
    return parse_table(resources.files(__package__).joinpath("signatures.json").read_text(encoding="utf-8"))


def of_kind(kind: str) -> tuple[Signature, ...]:
    return tuple(row for row in load_signatures() if row.kind == kind)


def match(kind: str, text: str) -> Signature | None:
    """The longest ``tool``, ``camera`` or ``model`` row found in ``text``, or None."""
    if kind == "model":
        haystack = _squeezed(text)
        found = [row for row in of_kind(kind) if _squeezed(row.pattern) in haystack]
    else:
        haystack = words(text)
        found = [row for row in of_kind(kind) if words(row.pattern) in haystack]
    return max(found, key=lambda row: len(row.pattern), default=None)


def png_key(key: str) -> Signature | None:
    """The ``png-key`` row for a PNG text key, matched exactly."""
    return next((row for row in of_kind("png-key") if row.pattern == key), None)
