"""XMP packets: the IPTC digital source type, the tools named as creator, the camera, a remote manifest.

Fields read (anything else in the packet is ignored):

- ``Iptc4xmpExt:DigitalSourceType``: an AI type gives claim ``ai``, a capture type ``camera``
  (weak: anyone can write it), any other type ``none``.
- ``xmp:CreatorTool``, ``photoshop:Credit``, ``dc:creator``: a known AI tool (``tool`` rows of the
  signature table) gives claim ``ai``.
- ``tiff:Make``: a known camera maker gives claim ``camera``, weak.
- ``dcterms:provenance``: where C2PA puts the URL of a manifest stored remotely (reported, not fetched).

Packets are parsed with defusedxml and refused outright when they declare a DTD, so entity
expansion (the "billion laughs") and external entities never run. Some writers store the packet with
the JPEG APP1 namespace (``http://ns.adobe.com/xap/1.0/`` and a NUL) in front, as the C2PA SDK's own
HEIC sample does, and pad it with NULs; both are wrapping, not XML, and are taken off before parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

from . import signatures
from .findings import Finding, MetadataError, clean_text
from .sourcetypes import origin, type_name

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
SOURCE_TYPE = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}DigitalSourceType"
TOOL_FIELDS = {
    "{http://ns.adobe.com/xap/1.0/}CreatorTool": "xmp:CreatorTool",
    "{http://ns.adobe.com/photoshop/1.0/}Credit": "photoshop:Credit",
    "{http://purl.org/dc/elements/1.1/}creator": "dc:creator",
}
MAKE = "{http://ns.adobe.com/tiff/1.0/}Make"
PROVENANCE = "{http://purl.org/dc/terms/}provenance"
_WANTED = {SOURCE_TYPE, MAKE, PROVENANCE, *TOOL_FIELDS}
APP1_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"


@dataclass
class XmpFacts:
    """The fields of one packet that speak to origin, as cleaned text."""

    source_types: list[str] = field(default_factory=list)
    tools: list[tuple[str, str]] = field(default_factory=list)
    makes: list[str] = field(default_factory=list)
    provenance: str | None = None


def _values(element: Element) -> list[tuple[str, str]]:
    """(qualified name, value) of the wanted fields this element states, as attributes or as itself."""
    found = [(name, value) for name, value in element.attrib.items() if name in _WANTED]
    if element.tag in _WANTED:
        text = " ".join(t.strip() for t in element.itertext() if t.strip()) or element.attrib.get(f"{_RDF}resource", "")
        found.append((element.tag, text))
    return found


def parse_xmp(data: bytes | str, max_bytes: int) -> XmpFacts:
    """The origin fields of an XMP packet.

    Raises:
        MetadataError: ``too-large`` over ``max_bytes``, ``refused`` for a DTD or entities,
            ``malformed`` when it is not XML.
    """
    import defusedxml
    from defusedxml.ElementTree import fromstring

    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise MetadataError("too-large", f"XMP packet of {len(raw)} bytes exceeds {max_bytes}")
    try:
        root = fromstring(raw.removeprefix(APP1_NAMESPACE).strip(b"\x00 \t\r\n"), forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise MetadataError("refused", f"XMP packet declares a DTD or entities ({type(exc).__name__})") from None
    except ParseError as exc:
        raise MetadataError("malformed", f"XMP packet is not well-formed XML ({exc})") from None
    facts = XmpFacts()
    for element in root.iter():
        for name, value in _values(element):
            text = clean_text(value, 200)
            if not text:
                continue
            if name == SOURCE_TYPE:
                facts.source_types.append(type_name(text) or text)
            elif name == MAKE:
                facts.makes.append(text)
            elif name == PROVENANCE:
                facts.provenance = facts.provenance or text
            else:
                facts.tools.append((TOOL_FIELDS[name], text))
    return facts


def xmp_findings(facts: XmpFacts) -> list[Finding]:
    """Findings for the packet's fields (see the module docstring); a remote manifest is left to the caller."""
    tools = [(where, value, row) for where, value in facts.tools if (row := signatures.match("tool", value))]
    generator = tools[0][2].generator if tools else None
    findings = []
    for name in dict.fromkeys(facts.source_types):
        kind = origin(name)
        if kind in ("ai", "ai-edited"):
            findings.append(Finding.make("xmp", kind, "moderate", f"XMP Iptc4xmpExt:DigitalSourceType is {name}", generator))
        elif kind == "camera":
            findings.append(Finding.make("xmp", "camera", "weak", f"XMP Iptc4xmpExt:DigitalSourceType is {name}"))
        else:
            findings.append(Finding.make("xmp", "none", "weak", f"XMP Iptc4xmpExt:DigitalSourceType is {name}"))
    if not any(f.claim in ("ai", "ai-edited") for f in findings):
        seen = set()
        for where, value, row in tools:
            if row.generator not in seen:
                seen.add(row.generator)
                findings.append(Finding.make("xmp", "ai", "moderate", f"XMP {where} names {value}", row.generator))
    for make in dict.fromkeys(facts.makes):
        if row := signatures.match("camera", make):
            findings.append(Finding.make("xmp", "camera", "weak", f"XMP tiff:Make is {make}", row.generator))
    return findings
