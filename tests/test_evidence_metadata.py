"""Metadata evidence from real files written here: PNG text of AI front ends, XMP, EXIF, and plain photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from evidence_files import (
    A1111,
    IPTC,
    encode,
    exif_block,
    photo,
    png_chunk,
    png_insert,
    png_with_text,
    small_photo,
    write,
    xmp_packet,
)
from PIL import Image

from aigdetect.data.images import decode_image, open_image
from aigdetect.evidence import (
    EvidenceConfig,
    Finding,
    collect_evidence,
    default_bands,
    fuse,
    generation,
    read_metadata_evidence,
    signatures,
)

COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev-fp8.safetensors"}},
}
COMFY_WORKFLOW = {"nodes": [{"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["flux1-dev-fp8.safetensors"]}]}
NOVELAI_COMMENT = {"prompt": "a fox", "steps": 28, "sampler": "k_euler_ancestral", "uc": "lowres", "n_samples": 1}
INVOKE = {"model": {"name": "juggernautXL_v9", "base": "sdxl"}, "app_version": "4.2.0", "generation_mode": "txt2img"}
PARSER_SAMPLES = {
    "a1111": A1111.replace(", Model hash: 31e35c80fc, Model: sd_xl_base_1.0", ""),
    "comfyui-prompt": json.dumps({"3": COMFY_PROMPT["3"]}),
    "comfyui-workflow": json.dumps({"nodes": [{"id": 3, "type": "KSampler", "widgets_values": [5, "randomize", 20]}]}),
    "novelai": json.dumps(NOVELAI_COMMENT),
    "invokeai": json.dumps({"app_version": "4.2.0", "generation_mode": "txt2img"}),
    "text": '"a cat" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms',
}
"""One real-shaped value per parser, what the front end writes under its key (naming no model: the row names the tool)."""


def evidence(path: Path, **config) -> list[Finding]:
    return collect_evidence(path, EvidenceConfig(**config))


def claims(findings: list[Finding]) -> list[tuple[str, str, str, str | None]]:
    return [(f.source, f.claim, f.strength, f.generator) for f in findings]


def verdict(findings: list[Finding], score: float = 0.05) -> str:
    return fuse(findings, score, 0.5, default_bands(0.5)).verdict


def test_automatic1111_parameters_name_the_model_and_decide_the_verdict(tmp_path):
    path = write(tmp_path / "a1111.png", png_with_text(small_photo(), {"parameters": A1111}))
    findings = evidence(path)
    assert claims(findings) == [("png-text", "ai", "moderate", "Stable Diffusion XL")]
    assert "AUTOMATIC1111 parameters, model sd_xl_base_1.0 (hash 31e35c80fc)" in findings[0].detail
    fused = fuse(findings, 0.02, 0.5, default_bands(0.5))
    assert (fused.verdict, fused.generator) == ("ai-generated", "Stable Diffusion XL")
    assert fused.reasons[0].startswith("PNG text 'parameters'")


def test_comfyui_prompt_and_workflow_name_the_checkpoint_once(tmp_path):
    texts = {"prompt": json.dumps(COMFY_PROMPT), "workflow": json.dumps(COMFY_WORKFLOW)}
    findings = evidence(write(tmp_path / "comfy.png", png_with_text(small_photo(), texts)))
    assert claims(findings) == [("png-text", "ai", "moderate", "FLUX.1 (Black Forest Labs)")]
    assert "ComfyUI prompt graph, model flux1-dev-fp8.safetensors" in findings[0].detail
    assert verdict(findings) == "ai-generated"


def test_comfyui_with_an_unknown_checkpoint_names_the_checkpoint_and_the_tool_in_the_detail(tmp_path):
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "favourites/myMix_v3.safetensors"}}}
    findings = evidence(write(tmp_path / "c.png", png_with_text(small_photo(), {"prompt": json.dumps(prompt)})))
    assert claims(findings) == [("png-text", "ai", "moderate", "myMix_v3")]
    assert findings[0].detail == "PNG text 'prompt': ComfyUI prompt graph, model favourites/myMix_v3.safetensors"


def test_comfyui_without_a_checkpoint_names_comfyui(tmp_path):
    prompt = {"1": {"class_type": "UNETLoader", "inputs": {"weight_dtype": "default"}}}
    findings = evidence(write(tmp_path / "c.png", png_with_text(small_photo(), {"prompt": json.dumps(prompt)})))
    assert claims(findings) == [("png-text", "ai", "moderate", "ComfyUI")]


def test_novelai_software_comment_and_source_give_one_finding_per_generator(tmp_path):
    texts = {"Software": "NovelAI", "Comment": json.dumps(NOVELAI_COMMENT), "Source": "Stable Diffusion XL C1E1DE52"}
    findings = evidence(write(tmp_path / "nai.png", png_with_text(small_photo(), texts)))
    assert claims(findings) == [("png-text", "ai", "moderate", "NovelAI"), ("png-text", "ai", "moderate", "Stable Diffusion XL")]


@pytest.mark.parametrize(
    "key, value",
    [
        ("Comment", "Shot on a sunny afternoon"),
        ("Comment", json.dumps({"steps": 3})),
        ("prompt", "a plain prompt, not a graph"),
        ("parameters", "exposure=1/250"),
        ("Software", "GIMP 2.10"),
        ("Title", "Stable Diffusion explained"),
    ],
)
def test_keys_that_merely_share_a_name_say_nothing(tmp_path, key, value):
    assert evidence(write(tmp_path / "x.png", png_with_text(small_photo(), {key: value}))) == []


def test_text_after_the_image_data_is_read_too(tmp_path):
    png = png_insert(encode(small_photo(), "PNG"), png_chunk(b"tEXt", b"parameters\x00" + A1111.encode("latin-1")))
    path = write(tmp_path / "late.png", png)
    with Image.open(path) as image:
        assert "parameters" not in image.info  # Pillow sees it only after loading the pixels
    assert claims(evidence(path)) == [("png-text", "ai", "moderate", "Stable Diffusion XL")]


def test_compressed_itxt_and_ztxt_are_inflated(tmp_path):
    import zlib

    ztxt = png_chunk(b"zTXt", b"parameters\x00\x00" + zlib.compress(A1111.encode("latin-1")))
    itxt = png_chunk(b"iTXt", b"Software\x00\x01\x00en\x00\x00" + zlib.compress("Midjourney".encode()))
    png = png_insert(png_insert(encode(small_photo(), "PNG"), ztxt, before=b"IDAT"), itxt)
    assert claims(evidence(write(tmp_path / "z.png", png))) == [
        ("png-text", "ai", "moderate", "Stable Diffusion XL"),
        ("png-text", "ai", "moderate", "Midjourney"),
    ]


@pytest.mark.parametrize("fmt, suffix", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_xmp_digital_source_type_in_every_container(tmp_path, fmt, suffix):
    packet = xmp_packet({"Iptc4xmpExt:DigitalSourceType": IPTC + "trainedAlgorithmicMedia", "xmp:CreatorTool": "Adobe Firefly"})
    if fmt == "PNG":
        data = png_with_text(small_photo(), {}, itxt={"XML:com.adobe.xmp": packet.decode()})
    elif fmt == "TIFF":
        data = encode(small_photo(), fmt, tiffinfo={700: packet})
    else:
        data = encode(small_photo(), fmt, xmp=packet)
    findings = evidence(write(tmp_path / f"x.{suffix}", data))
    assert claims(findings) == [("xmp", "ai", "moderate", "Adobe Firefly")]
    assert findings[0].detail == "XMP Iptc4xmpExt:DigitalSourceType is trainedAlgorithmicMedia"
    assert verdict(findings) == "ai-generated"


@pytest.mark.parametrize(
    "source_type, claim, fused",
    [
        (IPTC + "trainedAlgorithmicMedia", "ai", "ai-generated"),
        ("http://c2pa.org/digitalsourcetype/trainedAlgorithmicData", "ai", "ai-generated"),
        (IPTC + "compositeSynthetic", "ai", "ai-generated"),
        (IPTC + "compositeWithTrainedAlgorithmicMedia", "ai-edited", "ai-edited"),
        (IPTC + "algorithmicMedia", "none", "inconclusive"),  # made by an algorithm not trained on data
        (IPTC + "digitalArt", "none", "inconclusive"),
    ],
)
def test_xmp_source_types_sorted_as_the_c2pa_rubric_does(tmp_path, source_type, claim, fused):
    packet = xmp_packet({"Iptc4xmpExt:DigitalSourceType": source_type})
    findings = evidence(write(tmp_path / "x.jpg", encode(small_photo(), "JPEG", xmp=packet)))
    assert [f.claim for f in findings] == [claim]
    assert verdict(findings, 0.5) == fused


def test_xmp_fields_as_elements_and_capture_types(tmp_path):
    elements = (
        f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{IPTC}digitalCapture"/>'
        "<dc:creator><rdf:Seq><rdf:li>Jane Doe</rdf:li></rdf:Seq></dc:creator><tiff:Make>NIKON CORPORATION</tiff:Make>"
    )
    findings = evidence(write(tmp_path / "cam.jpg", encode(small_photo(), "JPEG", xmp=xmp_packet(elements=elements))))
    assert claims(findings) == [("xmp", "camera", "weak", None), ("xmp", "camera", "weak", "Nikon")]
    assert verdict(findings, 0.95) == "likely-ai"  # weak camera claims decide nothing


def test_xmp_creator_tool_without_source_type(tmp_path):
    packet = xmp_packet(elements="<photoshop:Credit>Made with Google AI</photoshop:Credit>")
    findings = evidence(write(tmp_path / "g.jpg", encode(small_photo(), "JPEG", xmp=packet)))
    assert claims(findings) == [("xmp", "ai", "moderate", "Google AI")]
    assert findings[0].detail == "XMP photoshop:Credit names Made with Google AI"


@pytest.mark.parametrize(
    "software, generator",
    [
        ("Midjourney", "Midjourney"),
        ("Adobe Firefly 2.1", "Adobe Firefly"),
        ("DALL·E 3", "DALL-E 3"),
        ("Stable Diffusion XL 1.0", "Stable Diffusion XL"),
    ],
)
def test_exif_software(tmp_path, software, generator):
    data = encode(small_photo(), "JPEG", exif=exif_block({0x0131: software}))
    findings = evidence(write(tmp_path / "s.jpg", data))
    assert claims(findings) == [("exif", "ai", "moderate", generator)]
    assert findings[0].detail == f"EXIF Software names {software}"
    assert verdict(findings) == "ai-generated"


@pytest.mark.parametrize(
    "software", ["Adobe Photoshop 25.0 (Windows)", "GIMP 2.10.34", "Imagenomic Portraiture", "darktable 4.6"]
)
def test_ordinary_software_says_nothing(tmp_path, software):
    data = encode(small_photo(), "JPEG", exif=exif_block({0x0131: software}))
    assert evidence(write(tmp_path / "s.jpg", data)) == []


@pytest.mark.parametrize("codec, prefix", [("utf-16-be", b"UNICODE\x00"), ("ascii", b"ASCII\x00\x00\x00")])
def test_automatic1111_parameters_in_a_jpeg_user_comment(tmp_path, codec, prefix):
    data = encode(small_photo(), "JPEG", exif=exif_block({}, user_comment=prefix + A1111.encode(codec)))
    findings = evidence(write(tmp_path / "u.jpg", data))
    assert claims(findings) == [("exif", "ai", "moderate", "Stable Diffusion XL")]
    assert findings[0].detail.startswith("EXIF UserComment holds AUTOMATIC1111 parameters, model sd_xl_base_1.0")


def test_a_caption_about_ai_in_image_description_is_not_evidence(tmp_path):
    data = encode(small_photo(), "JPEG", exif=exif_block({0x010E: "Midjourney founder speaks at a conference", 0x010F: "Canon"}))
    findings = evidence(write(tmp_path / "news.jpg", data))
    assert claims(findings) == [("exif", "camera", "weak", "Canon")]


def test_png_exif_chunk_is_read_without_loading(tmp_path):
    png = png_insert(encode(small_photo(), "PNG"), png_chunk(b"eXIf", exif_block({0x0131: "NovelAI"})))
    assert claims(evidence(write(tmp_path / "e.png", png))) == [("exif", "ai", "moderate", "NovelAI")]


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_plain_photographs_give_no_finding(tmp_path, index, fmt):
    path = write(tmp_path / f"photo.{fmt.lower()}", encode(photo(index), fmt))
    findings = evidence(path)
    assert findings == []
    fused = fuse(findings, 0.5, 0.5, default_bands(0.5))
    assert fused.verdict == "inconclusive"  # no metadata is no evidence: the score alone decides


# Speed and the file position --------------------------------------------------------------------

METADATA_FILES = {
    "a1111.png": lambda: png_with_text(small_photo(), {"parameters": A1111}),
    "xmp.jpg": lambda: encode(
        small_photo(), "JPEG", xmp=xmp_packet({"Iptc4xmpExt:DigitalSourceType": IPTC + "trainedAlgorithmicMedia"})
    ),
    "exif.webp": lambda: encode(small_photo(), "WEBP", exif=exif_block({0x0131: "Midjourney"})),
    "exif.tif": lambda: encode(small_photo(), "TIFF", exif=exif_block({0x0131: "Midjourney"})),
    "plain.gif": lambda: encode(small_photo(), "GIF"),
    "exif.avif": lambda: encode(small_photo(), "AVIF", exif=exif_block({0x0131: "Midjourney"})),
    "exif.heic": lambda: encode(small_photo(), "HEIF", exif=exif_block({0x0131: "Midjourney"})),
}


@pytest.mark.parametrize("name", list(METADATA_FILES))
def test_metadata_never_decodes_pixels_and_leaves_the_handle_where_it_was(tmp_path, monkeypatch, name):
    """Only a PNG's stealth check decodes anything: the rows that would hold the header, in an image of its own."""
    path = write(tmp_path / name, METADATA_FILES[name]())
    with open(path, "rb") as handle, open_image(handle) as image:
        position = handle.tell()
        calls = []
        real_load = type(image).load
        monkeypatch.setattr(
            type(image), "load", lambda self, *a, **k: calls.append((self, self.size)) or real_load(self, *a, **k)
        )
        findings = read_metadata_evidence(image, handle, path=str(path), config=EvidenceConfig())
        assert image._im is None and all(loaded is not image for loaded, _ in calls)
        expected = [(image.size[0], min(image.size[1], 152))] if name.endswith(".png") else []
        assert list({id(loaded): size for loaded, size in calls}.values()) == expected
        assert handle.tell() == position
        assert [f for f in findings if f.claim == "error"] == []
        assert name.startswith("plain") or [f.generator for f in findings if f.claim == "ai"] != []
        monkeypatch.undo()
        image.load()  # the pixels still decode after the metadata was read
        with Image.open(path) as fresh:
            assert np.array_equal(np.asarray(image), np.asarray(fresh))


# The signature table, one row at a time ----------------------------------------------------------


def _row_file(row: signatures.Signature) -> tuple[bytes, str, str]:
    """A file that carries just this row's signature: (bytes, file suffix, expected finding claim)."""
    if row.kind == "tool":
        return encode(small_photo(), "JPEG", exif=exif_block({0x0131: row.pattern})), "jpg", "ai"
    if row.kind == "camera":
        return encode(small_photo(), "JPEG", exif=exif_block({0x010F: row.pattern})), "jpg", "camera"
    if row.kind == "model":
        return png_with_text(small_photo(), {"parameters": A1111.replace("sd_xl_base_1.0", f"my_{row.pattern}_mix")}), "png", "ai"
    return png_with_text(small_photo(), {row.pattern: PARSER_SAMPLES[row.parser]}), "png", "ai"


@pytest.mark.parametrize(
    "row", [r for r in signatures.load_signatures() if r.kind != "watermark"], ids=lambda r: f"{r.kind}:{r.pattern}"
)
def test_every_signature_row_is_recognised(tmp_path, row):
    data, suffix, claim = _row_file(row)
    findings = evidence(write(tmp_path / f"row.{suffix}", data))
    assert [(f.claim, f.generator) for f in findings] == [(claim, row.generator)]


def test_every_parser_named_by_the_table_exists():
    assert set(generation.PARSERS) == set(signatures.PARSERS) == set(PARSER_SAMPLES)
    assert {r.parser for r in signatures.of_kind("png-key")} <= set(generation.PARSERS)


def test_matching_ignores_case_and_punctuation_but_keeps_whole_words():
    assert signatures.match("tool", "ADOBE_FIREFLY/2.0 adobe_c2pa/0.7").generator == "Adobe Firefly"
    assert signatures.match("tool", "Stable-Diffusion-XL").generator == "Stable Diffusion XL"
    assert signatures.match("tool", "Imagenomic") is None
    assert signatures.match("tool", "openaire") is None
    assert signatures.match("model", "SD_XL_base_1.0.safetensors").generator == "Stable Diffusion XL"


@pytest.mark.parametrize(
    "table, message",
    [
        ('{"version": 2, "rows": []}', "version 1"),
        ('{"version": 1, "rows": [{"kind": "tool", "pattern": "X"}]}', "row 0"),
        ('{"version": 1, "rows": [{"kind": "paint", "pattern": "X", "generator": "Y"}]}', "kind"),
        ('{"version": 1, "rows": [{"kind": "png-key", "pattern": "k", "generator": "Y"}]}', "parser"),
        ('{"version": 1, "rows": [{"kind": "watermark", "pattern": "012", "generator": "Y", "encoding": "bits"}]}', "0 and 1"),
        (
            '{"version": 1, "rows": [{"kind": "tool", "pattern": "A-B", "generator": "Y"}, {"kind": "tool", "pattern": "a b", "generator": "Z"}]}',
            "duplicate",
        ),
    ],
)
def test_a_bad_table_row_is_named(table, message):
    with pytest.raises(ValueError, match=message):
        signatures.parse_table(table)


def test_the_packaged_table_loads_once_and_matches_its_file():
    from importlib import resources

    text = resources.files("aigdetect.evidence").joinpath("signatures.json").read_text(encoding="utf-8")
    assert signatures.load_signatures() is signatures.load_signatures()
    assert signatures.load_signatures() == signatures.parse_table(text)
    assert len(json.loads(text)["rows"]) == len(signatures.load_signatures())


def test_collect_evidence_adds_watermarks_when_given_the_pixels(tmp_path):
    pytest.importorskip("imwatermark")
    from test_evidence_watermark import ROWS, embed

    path = write(tmp_path / "marked.png", png_with_text(embed(photo(0), ROWS["bits"]), {"Software": "ComfyUI"}))
    findings = collect_evidence(path, EvidenceConfig(watermarks=True), rgb=decode_image(path).array)
    assert [(f.source, f.generator) for f in findings] == [("png-text", "ComfyUI"), ("watermark", ROWS["bits"].generator)]
    assert [f.source for f in collect_evidence(path, EvidenceConfig(watermarks=False), rgb=decode_image(path).array)] == [
        "png-text"
    ]


# Camera makers as their cameras spell them in EXIF Make ------------------------------------------

CAMERA_SPELLINGS = {
    "EASTMAN KODAK COMPANY": "Kodak",
    "KODAK": "Kodak",
    "KONICA MINOLTA": "Konica Minolta",
    "Minolta Co., Ltd.": "Minolta",
    "Konica Corporation": "Konica",
    "Polaroid": "Polaroid",
    "SANYO Electric Co.,Ltd.": "Sanyo",
    "HMD Global": "HMD Global (Nokia)",
    "Nokia": "Nokia",
    "Jolla": "Jolla",
    "NIKON CORPORATION": "Nikon",
    "OLYMPUS IMAGING CORP.": "Olympus",
    "OLYMPUS OPTICAL CO.,LTD": "Olympus",
    "OM Digital Solutions": "OM System",
    "FUJIFILM": "Fujifilm",
    "Fuji Photo Film Co., Ltd.": "Fujifilm",
    "CASIO COMPUTER CO.,LTD.": "Casio",
    "SEIKO EPSON CORP.": "Epson",
    "PENTAX Corporation": "Pentax",
    "RICOH IMAGING COMPANY, LTD.": "Ricoh",
    "LEICA CAMERA AG": "Leica",
    "Phase One A/S": "Phase One",
    "SAMSUNG TECHWIN": "Samsung",
    "Sony Ericsson": "Sony Ericsson",
    "Research In Motion": "BlackBerry",
    "LGE": "LG",
    "LG Electronics": "LG",
    "motorola": "Motorola",
    "Hewlett-Packard": "HP",
    "Arashi Vision": "Insta360",
    "HUAWEI": "Huawei",
    "HONOR": "Honor",
    "OnePlus": "OnePlus",
    "SIGMA": "Sigma",
    "Canon": "Canon",
    "SONY": "Sony",
    "Apple": "Apple",
    "Google": "Google",
}


@pytest.mark.parametrize("make, maker", list(CAMERA_SPELLINGS.items()))
def test_camera_makers_in_their_exif_spellings(tmp_path, make, maker):
    findings = evidence(write(tmp_path / "c.jpg", encode(small_photo(), "JPEG", exif=exif_block({0x010F: make, 0x0110: "X100"}))))
    assert claims(findings) == [("exif", "camera", "weak", maker)]
    assert findings[0].detail == f"EXIF Make is {make} (model X100)"
    packet = xmp_packet(elements=f"<tiff:Make>{make.replace('&', '&amp;')}</tiff:Make>")
    assert claims(evidence(write(tmp_path / "c2.jpg", encode(small_photo(), "JPEG", xmp=packet)))) == [
        ("xmp", "camera", "weak", maker)
    ]


@pytest.mark.parametrize("make", ["Photoshop", "Leafly Studio", "Sharpie", "Unknown", "Honorable Mention"])
def test_words_that_merely_contain_a_maker_are_not_camera_makers(make):
    assert signatures.match("camera", make) is None


# XMP as real files wrap it ------------------------------------------------------------------------

C2PA_RS_HEIC_XMP = Path(__file__).parent / "assets" / "third_party" / "c2pa-rs" / "sample1.heic.xmp"


def test_the_c2pa_sdk_heic_sample_xmp_is_well_formed():
    """The XMP item of c2pa-rs's sample1.heic, as stored: APP1 namespace in front, NUL-padded (see its .md)."""
    from aigdetect.evidence.xmp import parse_xmp

    data = C2PA_RS_HEIC_XMP.read_bytes()
    assert data.startswith(b"http://ns.adobe.com/xap/1.0/\x00<?xpacket") and data.endswith(b"<?xpacket end='w'?>\x00")
    assert parse_xmp(data, 1 << 20) == parse_xmp(data[29:-1], 1 << 20)  # the packet alone: only xmp:Rating


def test_an_app1_wrapped_packet_in_a_heic_is_read(tmp_path):
    pytest.importorskip("pillow_heif")
    packet = xmp_packet({"Iptc4xmpExt:DigitalSourceType": IPTC + "trainedAlgorithmicMedia"})
    findings = evidence(
        write(tmp_path / "w.heic", encode(small_photo(), "HEIF", xmp=b"http://ns.adobe.com/xap/1.0/\x00" + packet + b"\x00"))
    )
    assert claims(findings) == [("xmp", "ai", "moderate", None)]
    plain = evidence(write(tmp_path / "s.heic", encode(small_photo(), "HEIF", xmp=C2PA_RS_HEIC_XMP.read_bytes())))
    assert plain == []
