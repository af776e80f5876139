"""One scan of a folder that mixes every kind of evidence, real files all: a C2PA-signed AI image, an
XMP-tagged JPEG, an AUTOMATIC1111 PNG, a watermarked PNG, a camera photo and a broken file; each row
gets the verdict the README's rules give, and ``inspect`` agrees. Then ``--c2pa-trust`` on the CLI, and a
scan where hostile metadata (the library tests' cases) costs each file one error finding, never its score."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
from conftest import make_tiny_detector, write_image
from evidence_files import (
    A1111,
    AI_SOURCE,
    IPTC,
    ai_manifest,
    break_manifest_box,
    chain,
    encode,
    exif_block,
    photo,
    png_chunk,
    png_insert,
    png_with_text,
    sign,
    small_photo,
    write,
    xmp_packet,
)
from test_evidence_hostile import BILLION_LAUGHS
from typer.testing import CliRunner

from aigdetect import score_images
from aigdetect.cli import app

runner = CliRunner()
WATERMARKS = importlib.util.find_spec("imwatermark") is not None
SD_WATERMARK = "StableDiffusionV1"
"""The message the Stable Diffusion v1 scripts embed (bytes), as their own scripts set it."""


def _watermarked() -> bytes:
    import imwatermark

    encoder = imwatermark.WatermarkEncoder()
    encoder.set_watermark("bytes", SD_WATERMARK.encode("utf-8"))
    marked = encoder.encode(photo(0)[..., ::-1].copy(), "dwtDct")[..., ::-1].copy()  # the SD scripts hand it BGR
    return encode(marked, "PNG")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    signed, _ = sign(encode(small_photo(), "JPEG", quality=92), "image/jpeg", ai_manifest())
    write(folder / "signed.jpg", signed)
    xmp = xmp_packet({"Iptc4xmpExt:DigitalSourceType": IPTC + "trainedAlgorithmicMedia"})
    write(folder / "xmp.jpg", encode(small_photo(), "JPEG", xmp=xmp))
    write(folder / "a1111.png", png_with_text(small_photo(), {"parameters": A1111}))
    if WATERMARKS:
        write(folder / "marked.png", _watermarked())
    write(folder / "camera.jpg", encode(photo(1), "JPEG", quality=90, exif=exif_block({0x010F: "Canon", 0x0110: "Canon EOS R5"})))
    write(folder / "broken.png", encode(small_photo(), "PNG")[:80])
    return folder


def _rows(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.output
    return {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}


def _band_verdict(score: float) -> str:
    """README rule 4 at threshold 0.5: 2 logits either side, i.e. sigmoid(-2) and sigmoid(2)."""
    low, high = 1 / (1 + math.exp(2)), 1 / (1 + math.exp(-2))
    return "likely-ai" if score >= high else "likely-real" if score <= low else "inconclusive"


def test_one_scan_of_mixed_evidence_gives_each_file_its_readme_verdict(mixed, tiny_checkpoint):
    scan = ["scan", str(mixed), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--format", "jsonl", "--watermarks"]
    rows = _rows(runner.invoke(app, scan))
    expected_names = {"signed.jpg", "xmp.jpg", "a1111.png", "camera.jpg", "broken.png"} | ({"marked.png"} if WATERMARKS else set())
    assert set(rows) == expected_names

    def sources(name: str) -> list[str]:
        return [f["source"] for f in rows[name]["evidence"]]

    # Rule 2: AI evidence decides whatever the score, and names the generator when the evidence does.
    assert (rows["signed.jpg"]["verdict"], rows["signed.jpg"]["generator"], sources("signed.jpg")) == ("ai-generated", "DALL-E 3", ["c2pa"])
    assert "untrusted) declares trainedAlgorithmicMedia" in rows["signed.jpg"]["evidence"][0]["detail"]
    assert (rows["xmp.jpg"]["verdict"], rows["xmp.jpg"]["generator"], sources("xmp.jpg")) == ("ai-generated", None, ["xmp"])
    assert rows["xmp.jpg"]["evidence"][0]["detail"] == "XMP Iptc4xmpExt:DigitalSourceType is trainedAlgorithmicMedia"
    assert (rows["a1111.png"]["verdict"], rows["a1111.png"]["generator"], sources("a1111.png")) == (
        "ai-generated", "Stable Diffusion XL", ["png-text"],
    )  # fmt: skip
    if WATERMARKS:
        marked = rows["marked.png"]
        assert (marked["verdict"], sources("marked.png"), marked["evidence"][0]["strength"]) == ("ai-generated", ["watermark"], "strong")
        assert marked["generator"] == "Stable Diffusion v1 (reference scripts)"

    # A camera maker is weak evidence that decides nothing: the score and its bands do (rule 4).
    camera = rows["camera.jpg"]
    (score,) = score_images(make_tiny_detector(), [str(mixed / "camera.jpg")])
    assert camera["score"] == pytest.approx(float(score), rel=1e-5)
    assert camera["verdict"] == _band_verdict(camera["score"])
    assert camera["model_verdict"] == ("fake" if camera["score"] > 0.5 else "real")
    assert [(f["source"], f["claim"], f["strength"]) for f in camera["evidence"]] == [("exif", "camera", "weak")]
    assert camera["generator"] is None
    for name in expected_names - {"camera.jpg", "broken.png"}:
        assert rows[name]["model_verdict"] == ("fake" if rows[name]["score"] > 0.5 else "real")  # the score is still there

    broken = rows["broken.png"]
    assert (broken["status"], broken["error_reason"], broken["verdict"] in (None, ""), broken["score"]) == ("error", "truncated", True, None)

    inspected = runner.invoke(app, ["inspect", str(mixed / "signed.jpg"), "--checkpoint", str(tiny_checkpoint), "--json"])
    assert inspected.exit_code == 0, inspected.output
    (report,) = json.loads(inspected.stdout)
    assert (report["verdict"], report["generator"]) == (rows["signed.jpg"]["verdict"], rows["signed.jpg"]["generator"])
    assert report["score"] == pytest.approx(rows["signed.jpg"]["score"], rel=1e-5)


def test_c2pa_trust_on_the_command_line_turns_a_valid_signature_trusted(mixed, tiny_checkpoint, tmp_path):
    root, _, _ = chain()
    anchors = write(tmp_path / "anchors.pem", root)
    signed = str(mixed / "signed.jpg")
    base = ["--checkpoint", str(tiny_checkpoint)]

    def c2pa_finding(*extra: str) -> dict:
        (row,) = _rows(runner.invoke(app, ["scan", signed, *base, "--workers", "0", "--format", "jsonl", *extra])).values()
        (finding,) = row["evidence"]
        return finding

    untrusted, trusted = c2pa_finding(), c2pa_finding("--c2pa-trust", str(anchors))
    assert untrusted["strength"] == "moderate" and ", untrusted) declares" in untrusted["detail"]
    assert trusted["strength"] == "strong" and ", trusted by the anchors in anchors.pem) declares" in trusted["detail"]

    def validation(*extra: str) -> tuple[str, bool]:
        result = runner.invoke(app, ["inspect", signed, *base, "--json", *extra])
        assert result.exit_code == 0, result.output
        (store,) = json.loads(result.stdout)[0]["c2pa"]
        return store["validation"], store["trusted"]

    assert validation() == ("valid", False)
    assert validation("--c2pa-trust", str(anchors)) == ("trusted", True)

    bad = write(tmp_path / "bad.pem", b"hello, not a certificate\n")
    for command in (["scan", signed, *base, "--workers", "0"], ["inspect", signed, *base]):
        result = runner.invoke(app, [*command, "--c2pa-trust", str(bad)])
        assert result.exit_code == 2 and result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: ") and "--c2pa-trust" in line and "no PEM certificate" in line


def _hostile_files(folder: Path) -> dict[str, tuple[str, str]]:
    """Files whose metadata the library tests refuse, most of them carrying an AI claim beyond the
    refusal: name -> (the source, the start of the detail) of the one error finding each must give."""
    ai_xmp = xmp_packet({"Iptc4xmpExt:DigitalSourceType": AI_SOURCE})
    huge = xmp_packet(
        {"Iptc4xmpExt:DigitalSourceType": AI_SOURCE}, "<dc:description>" + "x" * (2 << 20) + "</dc:description>"
    )
    write(folder / "huge-xmp.webp", encode(small_photo(), "WEBP", xmp=huge))
    write(folder / "laughs.jpg", encode(small_photo(), "JPEG", xmp=BILLION_LAUGHS))
    write(folder / "cut-xmp.jpg", encode(small_photo(), "JPEG", xmp=ai_xmp[: ai_xmp.index(b"</rdf:Description>")]))
    write(folder / "deep.png", png_with_text(small_photo(), {"prompt": "[" * 100_000 + "]" * 100_000}))
    workflow = json.dumps({"nodes": [{"type": "Note", "widgets_values": ["x" * 1000]}] * 3000})
    write(folder / "workflow.png", png_with_text(small_photo(), {"workflow": workflow}))
    chunks = b"".join(png_chunk(b"tEXt", b"k%d\x00v" % i) for i in range(1100))
    a1111_last = png_chunk(b"tEXt", b"parameters\x00" + A1111.encode())  # chunk 1101: never read
    write(folder / "chunks.png", png_insert(encode(small_photo(), "PNG"), chunks + a1111_last))
    signed, _ = sign(encode(small_photo(), "JPEG"), "image/jpeg", ai_manifest())
    write(folder / "c2pa-junk.jpg", break_manifest_box(signed, "JPEG"))
    return {
        "huge-xmp.webp": ("xmp", f"too-large: XMP packet of {len(huge)} bytes exceeds 1048576"),
        "laughs.jpg": ("xmp", "refused: XMP packet declares a DTD or entities"),
        "cut-xmp.jpg": ("xmp", "malformed: XMP packet is not well-formed XML"),
        "deep.png": ("png-text", "too-deep: ComfyUI prompt is nested 100000 levels deep, more than 64"),
        "workflow.png": (
            "png-text", f"too-large: PNG text chunk 'workflow' of {len(workflow) + len(b'workflow') + 1} bytes exceeds 2097152"
        ),
        "chunks.png": ("png-text", "too-large: more than 1024 PNG text chunks"),
        "c2pa-junk.jpg": ("c2pa", "malformed: C2PA: Verify: "),
    }


def _good_files(folder: Path) -> list[str]:
    names = ["good-1.jpg", "good-2.png", "good-3.webp"]
    for seed, name in enumerate(names):
        write_image(folder / name, (64, 48), seed=seed)
    return names


def test_hostile_metadata_in_a_scan_costs_one_error_finding_and_never_the_score(tmp_path, tiny_checkpoint):
    folder, alone = tmp_path / "hostile", tmp_path / "good"
    hostile = _hostile_files(folder)
    good = _good_files(folder)
    assert _good_files(alone) == good
    base = ["--checkpoint", str(tiny_checkpoint), "--workers", "0"]

    result = runner.invoke(app, ["scan", str(folder), *base])
    assert result.exit_code == 0, result.output
    csv_rows = list(csv.DictReader(result.stdout.splitlines()))
    assert sorted(Path(r["path"]).name for r in csv_rows) == sorted([*hostile, *good])  # one row each, no more
    by_name = {Path(r["path"]).name: r for r in csv_rows}
    jsonl = _rows(runner.invoke(app, ["scan", str(folder), *base, "--format", "jsonl"]))
    assert sorted(jsonl) == sorted(by_name)

    scores = score_images(make_tiny_detector(), [str(folder / name) for name in hostile])
    for (name, (source, detail)), score in zip(hostile.items(), scores):
        row, cells = jsonl[name], by_name[name]
        assert (row["status"], cells["status"], row["error_reason"]) == ("ok", "ok", None), name
        assert row["score"] == pytest.approx(float(score), rel=1e-5) and float(cells["score"]) == pytest.approx(row["score"])
        (finding,) = row["evidence"]
        assert (finding["source"], finding["claim"]) == (source, "error"), name
        assert finding["detail"].startswith(detail), finding["detail"]
        assert cells["evidence"] == f"{source}:error:{finding['detail'].replace(';', ',')}"
        assert (row["verdict"], cells["verdict"], row["generator"]) == (_band_verdict(row["score"]),) * 2 + (None,), name
        assert row["model_verdict"] == ("fake" if row["score"] > 0.5 else "real")

    alone_rows = _rows(runner.invoke(app, ["scan", str(alone), *base, "--format", "jsonl"]))
    assert sorted(alone_rows) == good
    for name in good:
        mixed_row, alone_row = jsonl[name], alone_rows[name]
        assert (mixed_row["status"], mixed_row["evidence"], mixed_row["sha256"]) == ("ok", [], alone_row["sha256"])
        assert mixed_row["score"] == pytest.approx(alone_row["score"], rel=1e-6)
        assert (mixed_row["verdict"], mixed_row["model_verdict"]) == (alone_row["verdict"], alone_row["model_verdict"])
        assert float(by_name[name]["score"]) == pytest.approx(alone_row["score"], rel=1e-6)
