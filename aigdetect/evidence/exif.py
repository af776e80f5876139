"""EXIF fields where AI tools write their names, and the camera maker.

- ``Software`` and ``Artist``: a known AI tool gives claim ``ai`` (moderate: anyone can write EXIF).
- ``ImageDescription`` and ``UserComment``: only structured generation settings count (AUTOMATIC1111,
  Fooocus and SwarmUI write their ``parameters`` into UserComment of JPEG and WebP files; Fooocus puts
  it in the first IFD rather than the EXIF one); free text is not matched, since a caption about an AI
  company is not an AI image, and text that merely looks like JSON (an INI section) is just text.
- Any first-IFD text of the form ``key:{json}`` whose key is a ``png-key`` row: ComfyUI's WebP
  savers (still and animated) write ``prompt:{...}`` into ``Model`` and each extra PNG-info entry,
  ``workflow:{...}`` first, into ``Make``, then ``ImageDescription`` and downwards. Such a field is
  read by the row's parser and is not a camera maker or model.
- ``Make``: a known camera maker gives claim ``camera``, weak (one line of metadata proves nothing).

One finding per generator and per front end, generation settings first (they name the model):
Fooocus writes ``Software`` and ``UserComment``.

EXIF text is meant to be ASCII; bytes that are not valid UTF-8 are read with replacement characters
and reported as a ``malformed`` error finding beside whatever the text still says. UserComment
starts with an 8-byte character-code prefix (``ASCII``, ``UNICODE`` (UCS-2 in the file's byte
order unless a BOM says otherwise), ``JIS`` or undefined).
"""

from __future__ import annotations

import re
from typing import Any

from PIL import Image

from . import signatures
from .config import EvidenceConfig
from .findings import Finding, MetadataError, clean_text
from .generation import PARSERS, Generation, a1111, distinct

EXIF_IFD = 0x8769
TAGS = {0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model", 0x0131: "Software", 0x013B: "Artist"}
USER_COMMENT = 0x9286
TOOL_TAGS = ("Software", "Artist")
SETTINGS_TAGS = ("ImageDescription", "UserComment")
_KEYED_JSON = re.compile(r"([A-Za-z_][\w.-]{0,78}):\s*[\[{]")


def load_exif(data: bytes, max_bytes: int) -> Image.Exif:
    """An ``Image.Exif`` from a raw EXIF block (with or without the ``Exif\\0\\0`` header).

    Raises:
        MetadataError: ``too-large`` over ``max_bytes``.
    """
    if len(data) > max_bytes:
        raise MetadataError("too-large", f"EXIF block of {len(data)} bytes exceeds {max_bytes}")
    exif = Image.Exif()
    exif.load(bytes(data))
    return exif


def _utf8(raw: bytes, name: str, problems: list[Finding]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(Finding.error("exif", "malformed", f"EXIF {name} is not valid UTF-8 (read with replacements)"))
        return raw.decode("utf-8", "replace")


def _text(value: Any, name: str, problems: list[Finding]) -> str | None:
    """The text of an ASCII-type field: Pillow hands it over as Latin-1, so the bytes come back exactly."""
    if isinstance(value, str):
        return _utf8(value.encode("latin-1", "replace"), name, problems).rstrip("\x00")
    if isinstance(value, bytes):
        return _utf8(value, name, problems).rstrip("\x00")
    problems.append(Finding.error("exif", "malformed", f"EXIF {name} is not text"))
    return None


def _user_comment(value: Any, endian: str | None, problems: list[Finding]) -> str | None:
    if not isinstance(value, bytes):
        return _text(value, "UserComment", problems)
    prefix, body = value[:8], value[8:]
    if prefix == b"UNICODE\x00":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            codec = "utf-16"
        else:
            codec = "utf-16-le" if endian == "<" else "utf-16-be"
        try:
            return body.decode(codec).rstrip("\x00")
        except UnicodeDecodeError:
            problems.append(Finding.error("exif", "malformed", "EXIF UserComment is not valid UCS-2 text"))
            return None
    if prefix == b"JIS\x00\x00\x00\x00\x00":
        return body.decode("shift_jis", "replace").rstrip("\x00")
    return _utf8(body, "UserComment", problems).rstrip("\x00 ")


def _tag_name(tag: int) -> str:
    return TAGS.get(tag, f"tag 0x{tag:04X}")


def _keyed(exif: Image.Exif, problems: list[Finding]) -> dict[int, tuple[str, str]]:
    """First-IFD fields holding ``key:{json}`` under a ``png-key`` row's key: tag -> (key, json text)."""
    found = {}
    for tag, value in exif.items():
        head = value[:90].decode("latin-1") if isinstance(value, bytes) else value[:90] if isinstance(value, str) else ""
        if not (match := _KEYED_JSON.match(head)):
            continue
        if signatures.png_key(match.group(1)) and (text := _text(value, _tag_name(tag), problems)):
            found[tag] = (match.group(1), text[len(match.group(1)) + 1 :])
    return found


def _settings(name: str, text: str, config: EvidenceConfig, problems: list[Finding]) -> Generation | None:
    """Generation parameters in a free-text field; text that only looks like JSON is text, not an error."""
    try:
        return a1111(text, config.max_text_chunk_bytes, config.max_json_depth)
    except MetadataError as exc:
        if exc.reason != "malformed":
            problems.append(Finding.error("exif", exc.reason, f"EXIF {name}: {exc.text}"))
        return None


def exif_findings(exif: Image.Exif, config: EvidenceConfig) -> list[Finding]:
    """Findings from the fields listed in the module docstring; text problems as error findings."""
    problems: list[Finding] = []
    found: list[tuple[Finding, str | None]] = []
    keyed = _keyed(exif, problems)
    for tag, (key, text) in keyed.items():
        row = signatures.png_key(key)
        name = _tag_name(tag)
        try:
            generation = PARSERS[row.parser](text, config.max_text_chunk_bytes, config.max_json_depth)
        except MetadataError as exc:
            problems.append(Finding.error("exif", exc.reason, f"EXIF {name} {key!r}: {exc.text}"))
            continue
        if generation:
            detail = f"EXIF {name} holds {key!r}: {generation.describe()}"
            finding = Finding.make("exif", "ai", "moderate", detail, generation.generator(row.generator))
            found.append((finding, generation.tool or row.generator))
    fields: dict[str, str] = {}
    for tag, name in TAGS.items():
        if tag in exif and tag not in keyed and (text := _text(exif[tag], name, problems)):
            fields[name] = text
    comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT, exif.get(USER_COMMENT))
    if comment is not None and (text := _user_comment(comment, exif.endian, problems)):
        fields["UserComment"] = text
    default = signatures.png_key("parameters")
    for name in SETTINGS_TAGS:
        if name in fields and (generation := _settings(name, fields[name], config, problems)):
            detail = f"EXIF {name} holds {generation.describe()}"
            generator = generation.generator(default.generator if default else "Stable Diffusion")
            found.append((Finding.make("exif", "ai", "moderate", detail, generator), generation.tool))
    for name in TOOL_TAGS:
        if name in fields and (row := signatures.match("tool", fields[name])):
            detail = f"EXIF {name} names {clean_text(fields[name], 120)}"
            found.append((Finding.make("exif", "ai", "moderate", detail, row.generator), row.generator))
    findings = distinct(found)
    if "Make" in fields and (row := signatures.match("camera", fields["Make"])):
        model = f" (model {clean_text(fields['Model'], 60)})" if "Model" in fields else ""
        findings.append(
            Finding.make("exif", "camera", "weak", f"EXIF Make is {clean_text(fields['Make'], 60)}{model}", row.generator)
        )
    return findings + problems
