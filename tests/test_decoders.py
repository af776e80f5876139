"""The decoder allow-list on real third-party files (Pillow's own test images, see
``tests/assets/third_party/README.md``): the formats it admits decode to their reference pixels,
the ones it leaves out are named with the reason, and decoder messages stay off the terminal."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from aigdetect.data.decoders import DECODERS, EXCLUDED
from aigdetect.data.files import is_image_file
from aigdetect.data.images import decode_center, decode_image
from aigdetect.errors import ImageDecodeError

ASSETS = Path(__file__).parent / "assets" / "third_party" / "pillow"
README = Path(__file__).resolve().parents[1] / "README.md"


def _reference_rgb(path: Path) -> np.ndarray:
    """Pillow's reference PNG as RGB, alpha dropped (as the README says aigdetect does)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA" if "A" in image.mode else "RGB"))[..., :3]


@pytest.mark.parametrize(
    ("name", "reference", "fmt"),
    [
        ("DXGI_FORMAT_R8G8B8A8_UNORM_SRGB.dds", "DXGI_FORMAT_R8G8B8A8_UNORM_SRGB.png", "DDS"),
        ("200x32_l_bl_rle.tga", "200x32_l.png", "TGA"),
        ("blp2_dxt1a.blp", "blp2_dxt1a.png", "BLP"),
    ],
)
def test_admitted_formats_decode_to_pillows_reference_pixels(name, reference, fmt):
    decoded = decode_image(ASSETS / name)
    assert decoded.format == fmt
    np.testing.assert_array_equal(decoded.array, _reference_rgb(ASSETS / reference))


def test_jpeg_2000_gives_the_pixels_of_the_same_image_as_tiff():
    jp2, tif = decode_image(ASSETS / "16bit.cropped.jp2"), decode_image(ASSETS / "16bit.cropped.tif")
    assert (jp2.format, tif.format, jp2.array.shape) == ("JPEG2000", "TIFF", (64, 64, 3))
    assert jp2.array.max() > jp2.array.min()
    np.testing.assert_array_equal(jp2.array, tif.array)


@pytest.mark.parametrize(
    ("name", "fmt", "size"), [("rgba.psd", "PSD", (100, 100)), ("hopper.ico", "ICO", (16, 16)), ("hopper.bw", "SGI", (128, 128))]
)
def test_photoshop_icon_and_sgi_files_are_scored_formats(name, fmt, size):
    decoded = decode_center(ASSETS / name, 8)
    assert (decoded.format, (decoded.width, decoded.height), decoded.array.shape) == (fmt, size, (8, 8, 3))
    assert is_image_file(ASSETS / name)


def test_photoshop_composite_is_decoded_not_a_layer():
    with Image.open(ASSETS / "rgba.psd") as image:
        composite = np.asarray(image.convert("RGBA"))[..., :3]
    np.testing.assert_array_equal(decode_image(ASSETS / "rgba.psd").array, composite)


@pytest.mark.parametrize(("name", "fmt", "why"), [("reqd_showpage.eps", "EPS", "Ghostscript"), ("drawing.wmf", "WMF", "handler")])
def test_a_format_outside_the_allow_list_is_named_with_the_reason(tmp_path, name, fmt, why):
    misnamed = shutil.copy(ASSETS / name, tmp_path / "photo.jpg")
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(misnamed)
    assert caught.value.reason == "unsupported"
    assert caught.value.detail.startswith(f"{fmt} ") and "outside the allow-list" in caught.value.detail
    assert why in caught.value.detail


def test_tga_has_no_signature_so_only_a_tga_name_admits_it(tmp_path):
    renamed = shutil.copy(ASSETS / "200x32_l_bl_rle.tga", tmp_path / "frame.dat")
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(renamed)
    assert caught.value.reason == "unsupported"
    assert not is_image_file(renamed) and is_image_file(ASSETS / "200x32_l_bl_rle.tga")


def test_readme_lists_every_decoder_and_every_exclusion():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Image formats") :]
    section = section[: section.index("\n## ")]
    for name in DECODERS + ("TGA",):
        assert f"`{name}`" in section, name
    for name in EXCLUDED:
        assert f"`{name}`" in section, name


def _png_with_text(path: Path, text_bytes: int) -> Path:
    """A PNG whose one zTXt chunk inflates to ``text_bytes`` (a few kB on disk)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "A" * text_bytes, zip=True)
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path, pnginfo=info)
    assert path.stat().st_size < 20_000
    return path


def test_a_png_whose_text_pillow_refuses_still_has_its_pixels(tmp_path):
    path = _png_with_text(tmp_path / "big-text.png", 3 * PngImagePlugin.MAX_TEXT_CHUNK)
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"), Image.open(path):
        pass
    expected = np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(path).array, expected)


def _scan(paths: list[Path], checkpoint: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    command = [sys.executable, "-m", "aigdetect", "scan", *map(str, paths), "--checkpoint", str(checkpoint),
               "--format", "jsonl", "--quiet", "--workers", "1"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    rows = {Path(row["path"]).name: row for row in map(json.loads, done.stdout.splitlines())}
    return done, rows


def test_a_scan_scores_a_png_with_oversized_text_and_reports_the_chunk(tmp_path, tiny_checkpoint):
    path = _png_with_text(tmp_path / "big-text.png", 3 * PngImagePlugin.MAX_TEXT_CHUNK)
    done, rows = _scan([path], tiny_checkpoint)
    assert done.returncode == 0, done.stderr
    row = rows["big-text.png"]
    assert row["status"] == "ok" and 0.0 <= row["score"] <= 1.0, row
    errors = [f for f in row["evidence"] if f["source"] == "png-text" and f["claim"] == "error"]
    assert errors and "Comment" in errors[0]["detail"], row["evidence"]


def test_decoder_messages_go_into_rows_not_onto_the_terminal(tmp_path, tiny_checkpoint):
    webp = shutil.copy(ASSETS / "hopper_webp.tif", tmp_path / "webp.tif")
    samples = shutil.copy(ASSETS / "oom-225817ca0f8c663be7ab4b9e717b02c661e66834.tif", tmp_path / "samples.tif")
    done, rows = _scan([Path(webp), Path(samples)], tiny_checkpoint)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    webp_row, samples_row = rows["webp.tif"], rows["samples.tif"]
    assert webp_row["error_reason"] == "unsupported", webp_row
    assert "TIFF compression 'webp'" in webp_row["error_detail"] and "not configured" in webp_row["error_detail"]
    assert samples_row["error_reason"] == "corrupt", samples_row
    assert samples_row["error_detail"].startswith("TIFF signature, but Pillow cannot parse the header (decoder said: ")
    assert "More samples per pixel than can be decoded: 303169682" in samples_row["error_detail"]


def test_collect_evidence_opens_a_tga_by_its_name():
    from aigdetect.evidence import collect_evidence

    assert collect_evidence(ASSETS / "200x32_l_bl_rle.tga") == []
