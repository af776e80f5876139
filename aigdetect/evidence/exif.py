"""EXIF fields where AI tools write their names, and the camera maker.

- ``Software`` and ``Artist``: a known AI tool gives claim ``ai`` (moderate: anyone can write EXIF).
- ``ImageDescription`` and ``UserComment``: only structured generation settings count (AUTOMATIC1111
  writes its ``parameters`` into UserComment of JPEG and WebP files); free text is not matched, since
  a caption about an AI company is not an AI image.
- ``Make``: a known camera maker gives claim ``camera``, weak (one line of metadata proves nothing).

EXIF text is meant to be ASCII; bytes that are not valid UTF-8 are read with replacement characters
and reported as a ``malformed`` error finding beside whatever the text still says. UserComment
starts with an 8-byte character-code prefix (``ASCII``, ``UNICODE`` (UCS-2 in the file's byte
order unless a BOM says otherwise), ``JIS`` or undefined).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from . import signatures
from .config import EvidenceConfig
from .findings import Finding, MetadataError, clean_text
from .generation import a1111

EXIF_IFD = 0x8769
TAGS = {0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model", 0x0131: "Software", 0x013B: "Artist"}
USER_COMMENT = 0x9286
TOOL_TAGS = ("Software", "Artist")
SETTINGS_TAGS = ("ImageDescription", "UserComment")


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


def exif_findings(exif: Image.Exif, config: EvidenceConfig) -> list[Finding]:
    """Findings from the fields listed in the module docstring; text problems as error findings."""
    problems: list[Finding] = []
    fields: dict[str, str] = {}
    for tag, name in TAGS.items():
        if tag in exif and (text := _text(exif[tag], name, problems)):
            fields[name] = text
    comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
    if comment is not None and (text := _user_comment(comment, exif.endian, problems)):
        fields["UserComment"] = text
    findings: list[Finding] = []
    for name in TOOL_TAGS:
        if name in fields and (row := signatures.match("tool", fields[name])):
            findings.append(
                Finding.make("exif", "ai", "moderate", f"EXIF {name} names {clean_text(fields[name], 120)}", row.generator)
            )
    for name in SETTINGS_TAGS:
        if name not in fields:
            continue
        try:
            generation = a1111(fields[name], config.max_text_chunk_bytes, config.max_json_depth)
        except MetadataError as exc:
            problems.append(Finding.error("exif", exc.reason, f"EXIF {name}: {exc.text}"))
            continue
        if generation:
            row = signatures.png_key("parameters")
            default = row.generator if row else "Stable Diffusion"
            detail = f"EXIF {name} holds {generation.describe()}"
            findings.append(Finding.make("exif", "ai", "moderate", detail, generation.generator(default)))
    if "Make" in fields and (row := signatures.match("camera", fields["Make"])):
        model = f" (model {clean_text(fields['Model'], 60)})" if "Model" in fields else ""
        findings.append(
            Finding.make("exif", "camera", "weak", f"EXIF Make is {clean_text(fields['Make'], 60)}{model}", row.generator)
        )
    return findings + problems
