"""PNG text chunks (tEXt, zTXt, iTXt) and eXIf, read from the file under our own caps.

Pillow parses only the chunks before the image data until the pixels are loaded, and inflates
compressed text under its own limits; reading the chunks the container walk found gives every
chunk, wherever it sits, with each size checked before it is read or inflated.

ComfyUI's animated PNGs carry their ``prompt`` and ``workflow`` in private ``comf`` chunks after
the image data (``keyword\0text``, Latin-1, like tEXt); they are read as text chunks too.

What the text says: a key of the signature table (``png-key`` rows: ``parameters``, ``prompt``,
``workflow``, ``Comment``, ``invokeai_metadata``...) is read by the parser the row names; the
``Software`` and ``Source`` keys are matched against the known AI tools. ``XML:com.adobe.xmp`` and
eXIf chunks are handed back raw, for the XMP and EXIF readers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from . import signatures
from .config import EvidenceConfig
from .containers import Chunk, Layout
from .findings import Finding, MetadataError, clean_text
from .generation import PARSERS, distinct

XMP_KEY = "XML:com.adobe.xmp"
TOOL_KEYS: tuple[str, ...] = ("Software", "Source")
_KEYWORD_MAX = 79


@dataclass
class PngText:
    """What the PNG chunks hold: the text pairs, the raw XMP and EXIF blocks, and the problems met."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    xmp: list[bytes] = field(default_factory=list)
    exif: list[bytes] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)


def inflate(data: bytes, limit: int, what: str, *, gzip: bool = False) -> bytes:
    """zlib (or gzip) data inflated to at most ``limit`` bytes.

    Raises:
        MetadataError: ``too-large`` past ``limit``, ``malformed`` when it does not inflate.
    """
    inflater = zlib.decompressobj(31 if gzip else 15)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise MetadataError("malformed", f"{what} does not inflate ({exc})") from None
    if len(out) > limit:
        raise MetadataError("too-large", f"{what} inflates to more than {limit} bytes")
    return out


def _split_keyword(data: bytes, what: str) -> tuple[str, bytes]:
    keyword, sep, rest = data.partition(b"\x00")
    if not sep or not 1 <= len(keyword) <= _KEYWORD_MAX:
        raise MetadataError("malformed", f"{what} has no valid keyword")
    return keyword.decode("latin-1"), rest


def _keyword(handle: BinaryIO, chunk: Chunk) -> str | None:
    handle.seek(chunk.offset)
    keyword, sep, _ = handle.read(min(chunk.length, _KEYWORD_MAX + 1)).partition(b"\x00")
    return keyword.decode("latin-1") if sep else None


def _decode_text(chunk: Chunk, data: bytes, limit: int) -> tuple[str, str, bool]:
    """(key, text, valid UTF-8) of a tEXt, zTXt or iTXt chunk's data."""
    what = f"PNG {chunk.tag} chunk"
    key, rest = _split_keyword(data, what)
    what = f"PNG {chunk.tag} chunk {key!r}"
    if chunk.tag in ("tEXt", "comf"):
        return key, rest.decode("latin-1"), True
    if chunk.tag == "zTXt":
        if not rest or rest[0] != 0:
            raise MetadataError("malformed", f"{what} has an unknown compression method")
        return key, inflate(rest[1:], limit, what).decode("latin-1"), True
    if len(rest) < 2 or rest[1] != 0:
        raise MetadataError("malformed", f"{what} has an unknown compression method")
    compressed, rest = rest[0], rest[2:]
    parts = rest.split(b"\x00", 2)
    if len(parts) != 3:
        raise MetadataError("malformed", f"{what} is truncated")
    body = inflate(parts[2], limit, what) if compressed else parts[2]
    try:
        return key, body.decode("utf-8"), True
    except UnicodeDecodeError:
        return key, body.decode("utf-8", "replace"), False


def read_chunks(handle: BinaryIO, layout: Layout, config: EvidenceConfig) -> PngText:
    """Read the text and eXIf chunks the walk found, each within its cap, the text within the total cap."""
    found = PngText()
    if layout.png_chunks_dropped:
        found.errors.append(Finding.error("png-text", "too-large", f"more than {len(layout.png_chunks)} PNG text chunks"))
    total, over_total = 0, False
    for chunk in layout.png_chunks:
        if chunk.tag == "eXIf":
            source, cap, key = "exif", config.max_exif_bytes, None
        else:
            key = _keyword(handle, chunk)
            source, cap = ("xmp", config.max_xmp_bytes) if key == XMP_KEY else ("png-text", config.max_text_chunk_bytes)
        name = "XMP packet" if source == "xmp" else "EXIF block" if source == "exif" else f"PNG text chunk {key!r}"
        try:
            if chunk.length > cap:
                raise MetadataError("too-large", f"{name} of {chunk.length} bytes exceeds {cap}")
            if source == "png-text" and total + chunk.length > config.max_text_total_bytes:
                if over_total:
                    continue
                over_total = True
                raise MetadataError("too-large", f"PNG text beyond {config.max_text_total_bytes} bytes in all is not read")
            handle.seek(chunk.offset)
            data = handle.read(chunk.length)
            if source == "exif":
                found.exif.append(data)
                continue
            key, text, valid = _decode_text(chunk, data, cap)
            if source == "xmp":
                found.xmp.append(text.encode("utf-8"))
                continue
            total += len(text)
            if not valid:
                found.errors.append(Finding.error("png-text", "malformed", f"{name} is not valid UTF-8 (read with replacements)"))
            found.texts.append((key, text))
        except MetadataError as exc:
            found.errors.append(Finding.error(source, exc.reason, exc.text))
    return found


def text_findings(texts: list[tuple[str, str]], config: EvidenceConfig, *, where: str = "PNG text") -> list[Finding]:
    """Findings from the text pairs: known generator keys by their parser, tool names in Software/Source.

    One finding per generator and per front end: NovelAI, for one, writes ``Software``, ``Comment``
    and ``Source``; Fooocus ``parameters`` and ``fooocus_scheme``; ComfyUI ``prompt`` and ``workflow``.
    Keys are read in the signature table's order, generation settings before tool names, so the key
    that names the front end the user ran speaks first: SwarmUI writes its ComfyUI backend's ``prompt``
    before its own ``parameters``.
    """
    keys = [row.pattern for row in signatures.of_kind("png-key")]
    found: list[tuple[Finding, str | None]] = []
    for key, text in sorted(texts, key=lambda pair: keys.index(pair[0]) if pair[0] in keys else len(keys)):
        try:
            finding, tool = _text_finding(key, text, config, where)
        except MetadataError as exc:
            finding, tool = Finding.error("png-text", exc.reason, exc.text), None
        if finding is not None:
            found.append((finding, tool))
    return distinct(found)


def _text_finding(key: str, text: str, config: EvidenceConfig, where: str) -> tuple[Finding | None, str | None]:
    """The finding for one text pair, and the front end it names (for one finding per front end)."""
    if row := signatures.png_key(key):
        generation = PARSERS[row.parser](text, config.max_text_chunk_bytes, config.max_json_depth)
        if generation is None:
            return None, None
        detail = f"{where} {key!r}: {generation.describe()}"
        finding = Finding.make("png-text", "ai", "moderate", detail, generation.generator(row.generator))
        return finding, generation.tool or row.generator
    if key in TOOL_KEYS and (row := signatures.match("tool", text)):
        detail = f"{where} {key!r} names {clean_text(text, 120)}"
        return Finding.make("png-text", "ai", "moderate", detail, row.generator), row.generator
    return None, None
