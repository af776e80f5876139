"""Hostile metadata: every case gives one error finding with its reason, quickly, and never an exception."""

from __future__ import annotations

import json
import zlib

import pytest
from evidence_files import encode, exif_block, png_chunk, png_insert, png_with_text, small_photo, write, xmp_packet

from aigdetect.evidence import EvidenceConfig, Finding, collect_evidence
from aigdetect.evidence.boundedjson import loads, nesting_depth
from aigdetect.evidence.findings import MetadataError

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
    + b']><x:xmpmeta xmlns:x="adobe:ns:meta/">&lol9;</x:xmpmeta>'
)
EXTERNAL_ENTITY = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'


def errors(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.source, f.detail.split(":", 1)[0]) for f in findings if f.claim == "error"]


def only_error(findings: list[Finding]) -> Finding:
    assert [f.claim for f in findings] == ["error"], findings
    return findings[0]


def test_a_huge_xmp_packet_is_refused_before_it_is_read(tmp_path):
    packet = xmp_packet(elements="<dc:description>" + "x" * (2 << 20) + "</dc:description>")
    png = png_with_text(small_photo(), {}, itxt={"XML:com.adobe.xmp": packet.decode()})
    finding = only_error(collect_evidence(write(tmp_path / "huge.png", png)))
    assert finding.source == "xmp"
    assert finding.detail.startswith("too-large: XMP packet of ") and finding.detail.endswith(" exceeds 1048576")


def test_a_huge_xmp_packet_in_webp(tmp_path):
    packet = xmp_packet(elements="<dc:description>" + "x" * (2 << 20) + "</dc:description>")
    finding = only_error(collect_evidence(write(tmp_path / "huge.webp", encode(small_photo(), "WEBP", xmp=packet))))
    assert (finding.source, finding.detail) == ("xmp", f"too-large: XMP packet of {len(packet)} bytes exceeds 1048576")


@pytest.mark.parametrize("packet", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_xml_with_a_dtd_is_refused(tmp_path, packet):
    finding = only_error(collect_evidence(write(tmp_path / "lol.jpg", encode(small_photo(), "JPEG", xmp=packet))))
    assert finding.source == "xmp" and finding.detail.startswith("refused: XMP packet declares a DTD or entities")


def test_malformed_xml(tmp_path):
    finding = only_error(
        collect_evidence(write(tmp_path / "bad.jpg", encode(small_photo(), "JPEG", xmp=b"<x:xmpmeta><unclosed>")))
    )
    assert finding.source == "xmp" and finding.detail.startswith("malformed: XMP packet is not well-formed XML")


def test_deeply_nested_json_is_refused_before_parsing(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    findings = collect_evidence(write(tmp_path / "deep.png", png_with_text(small_photo(), {"prompt": deep})))
    assert only_error(findings).detail == "too-deep: ComfyUI prompt is nested 100000 levels deep, more than 64"


def test_gigantic_json_is_refused_by_size(tmp_path):
    workflow = json.dumps({"nodes": [{"type": "Note", "widgets_values": ["x" * 1000]}] * 3000})
    assert len(workflow) > 2 << 20
    finding = only_error(collect_evidence(write(tmp_path / "big.png", png_with_text(small_photo(), {"workflow": workflow}))))
    assert finding.source == "png-text"
    assert (
        finding.detail == f"too-large: PNG text chunk 'workflow' of {len(workflow) + len(b'workflow') + 1} bytes exceeds 2097152"
    )


def test_a_compression_bomb_stops_at_the_cap(tmp_path):
    bomb = png_chunk(b"zTXt", b"parameters\x00\x00" + zlib.compress(b"\x00" * (64 << 20), 9))
    assert len(bomb) < 100_000
    png = png_insert(encode(small_photo(), "PNG"), bomb)
    finding = only_error(collect_evidence(write(tmp_path / "bomb.png", png)))
    assert finding.detail == "too-large: PNG zTXt chunk 'parameters' inflates to more than 2097152 bytes"


def test_total_text_is_capped(tmp_path):
    texts = {f"note{i}": "y" * (1 << 20) for i in range(4)}
    findings = collect_evidence(
        write(tmp_path / "many.png", png_with_text(small_photo(), texts)), EvidenceConfig(max_text_total_bytes=3 << 20)
    )
    assert errors(findings) == [("png-text", "too-large")]
    assert findings[0].detail == "too-large: PNG text beyond 3145728 bytes in all is not read"


def test_too_many_text_chunks(tmp_path):
    png = encode(small_photo(), "PNG")
    chunks = b"".join(png_chunk(b"tEXt", b"k%d\x00v" % i) for i in range(1100))
    findings = collect_evidence(write(tmp_path / "chunks.png", png_insert(png, chunks)))
    assert errors(findings) == [("png-text", "too-large")]
    assert findings[0].detail == "too-large: more than 1024 PNG text chunks"


def test_non_utf8_exif_text_is_reported_and_still_read(tmp_path):
    data = encode(small_photo(), "JPEG", exif=exif_block({0x0131: b"Stable Diffusion \xff\xfe\x80"}))
    findings = collect_evidence(write(tmp_path / "latin.jpg", data))
    assert [(f.source, f.claim, f.generator) for f in findings] == [("exif", "ai", "Stable Diffusion"), ("exif", "error", None)]
    assert findings[1].detail == "malformed: EXIF Software is not valid UTF-8 (read with replacements)"
    assert "\ufffd" in findings[0].detail


def test_non_utf8_exif_text_alone_is_one_error(tmp_path):
    data = encode(small_photo(), "JPEG", exif=exif_block({0x013B: b"J\xe9r\xf4me Dupr\xe9"}))  # Latin-1, as old cameras write
    finding = only_error(collect_evidence(write(tmp_path / "artist.jpg", data)))
    assert finding.detail == "malformed: EXIF Artist is not valid UTF-8 (read with replacements)"


def test_bad_ucs2_user_comment(tmp_path):
    data = encode(
        small_photo(), "JPEG", exif=exif_block({}, user_comment=b"UNICODE\x00\xd8\xd8\xd8\xd8")
    )  # surrogates, either byte order
    finding = only_error(collect_evidence(write(tmp_path / "ucs2.jpg", data)))
    assert finding.detail == "malformed: EXIF UserComment is not valid UCS-2 text"


@pytest.mark.parametrize(
    "block",
    [
        b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05" + b"\xff" * 20,
        b"Exif\x00\x00garbage!",
    ],
    ids=["ifd-past-the-end", "truncated-entries", "not-tiff"],
)
def test_broken_exif_blocks_never_raise(tmp_path, block):
    png = png_insert(encode(small_photo(), "PNG"), png_chunk(b"eXIf", block))
    findings = collect_evidence(write(tmp_path / "exif.png", png))
    assert all(f.claim == "error" and f.source == "exif" for f in findings)


def test_a_huge_exif_chunk_is_refused(tmp_path):
    block = exif_block({0x010E: "z" * (2 << 20)})
    png = png_insert(encode(small_photo(), "PNG"), png_chunk(b"eXIf", block))
    finding = only_error(collect_evidence(write(tmp_path / "exif.png", png)))
    assert finding.detail == f"too-large: EXIF block of {len(block)} bytes exceeds 1048576"


def test_text_chunk_with_no_keyword(tmp_path):
    png = png_insert(encode(small_photo(), "PNG"), png_chunk(b"tEXt", b"no separator at all"))
    finding = only_error(collect_evidence(write(tmp_path / "kw.png", png)))
    assert finding.detail == "malformed: PNG tEXt chunk has no valid keyword"


def test_control_characters_never_reach_a_finding(tmp_path):
    data = encode(small_photo(), "JPEG", exif=exif_block({0x0131: "Midjourney\n\x1b[31mred\u202e\x00"}))
    (finding,) = collect_evidence(write(tmp_path / "ctl.jpg", data))
    assert finding.detail == "EXIF Software names Midjourney [31mred"


@pytest.mark.parametrize(
    "text, depth",
    [("{}", 1), ('[{"a": [1, {"b": []}]}]', 5), ('"[[[[["', 0), ('["\\"[[", [[]]]', 3), ("[\\", 1), ('["\\\\", [[]]]', 3)],
)
def test_nesting_depth_matches_hand_counts(text, depth):
    assert nesting_depth(text) == depth


def test_nesting_depth_agrees_with_the_parsed_structure():
    def depth(value) -> int:
        if isinstance(value, dict):
            return 1 + max((depth(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((depth(v) for v in value), default=0)
        return 0

    samples = [{"a": [1, 2, {"b": "]]]}}}", "c": [[["x\\"]]]}]}, [[], [[[]]], {"k": {"l": {"m": []}}}], {"s": '\\"[{'}]
    for value in samples:
        assert nesting_depth(json.dumps(value)) == depth(value)


def test_loads_bounds():
    assert loads('{"a": [1]}', what="x", max_chars=100, max_depth=2) == {"a": [1]}
    for text, reason in [("[[[1]]]", "too-deep"), ("1" * 101, "too-large"), ("{nope", "malformed"), ("9" * 5000, "malformed")]:
        with pytest.raises(MetadataError) as caught:
            loads(text, what="x", max_chars=100 if reason == "too-large" else 10_000, max_depth=2)
        assert caught.value.reason == reason
