"""Invisible watermarks embedded here with invisible-watermark, as the generators do, then decoded from files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evidence_files import encode, photo, write

from aigdetect.data.images import decode_image
from aigdetect.evidence import EvidenceConfig, default_bands, fuse, read_watermark_evidence, watermark
from aigdetect.evidence.signatures import of_kind
from aigdetect.evidence.watermark import MIN_BIT_AGREEMENT, block_scores, decode_bits

WATERMARKS = EvidenceConfig(watermarks=True)

imwatermark = pytest.importorskip("imwatermark")
ROWS = {row.encoding: row for row in of_kind("watermark")}


def embed(rgb: np.ndarray, row, *, legacy: bool = False) -> np.ndarray:
    """Mark an RGB image as the generators do: the SD scripts and current diffusers hand the encoder
    BGR; older diffusers releases handed it the RGB array as it was (``legacy``)."""
    encoder = imwatermark.WatermarkEncoder()
    if row.encoding == "bytes":
        encoder.set_watermark("bytes", row.pattern.encode("utf-8"))
    else:
        encoder.set_watermark("bits", [int(b) for b in row.pattern])
    if legacy:
        return encoder.encode(np.ascontiguousarray(rgb), "dwtDct")
    return np.ascontiguousarray(encoder.encode(np.ascontiguousarray(rgb[..., ::-1]), "dwtDct")[..., ::-1])


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("row", of_kind("watermark"), ids=lambda row: row.generator)
def test_a_marked_png_names_its_generator(tmp_path, index, row):
    path = write(tmp_path / "marked.png", encode(embed(photo(index), row), "PNG"))
    findings = read_watermark_evidence(decode_image(path).array, WATERMARKS)
    assert [(f.source, f.claim, f.strength, f.generator) for f in findings] == [("watermark", "ai", "strong", row.generator)]
    agreed, total = (int(x) for x in findings[0].detail.split(": ")[1].split(" ")[0].split("/"))
    assert total == len(row.bits()) and agreed / total >= MIN_BIT_AGREEMENT
    fused = fuse(findings, 0.01, 0.5, default_bands(0.5))
    assert (fused.verdict, fused.generator) == ("ai-generated", row.generator)


def test_the_legacy_channel_order_is_found_and_said(tmp_path):
    path = write(tmp_path / "old.png", encode(embed(photo(0), ROWS["bits"], legacy=True), "PNG"))
    (finding,) = read_watermark_evidence(decode_image(path).array, WATERMARKS)
    assert finding.generator == ROWS["bits"].generator and "RGB channel order of older diffusers" in finding.detail


def test_jpeg_keeps_the_mark_only_without_chroma_subsampling(tmp_path):
    marked = embed(photo(1), ROWS["bits"])
    full = write(tmp_path / "444.jpg", encode(marked, "JPEG", quality=90, subsampling=0))
    halved = write(tmp_path / "420.jpg", encode(marked, "JPEG", quality=95, subsampling=2))
    assert [f.generator for f in read_watermark_evidence(decode_image(full).array, WATERMARKS)] == [ROWS["bits"].generator]
    assert read_watermark_evidence(decode_image(halved).array, WATERMARKS) == []  # erased: and no finding says otherwise


@pytest.mark.parametrize("index", [0, 1])
def test_unmarked_photos_give_no_finding(tmp_path, index):
    rgb = decode_image(write(tmp_path / "plain.png", encode(photo(index), "PNG"))).array
    assert read_watermark_evidence(rgb, WATERMARKS) == []
    for row in ROWS.values():  # and they are far from the threshold, near the 50 % of chance
        expected = np.array(row.bits(), dtype=bool)
        for order in ("RGB", "BGR"):
            assert np.mean(decode_bits(block_scores(rgb, order), len(expected)) == expected) < 0.7


def test_off_small_or_unavailable_gives_nothing(monkeypatch):
    marked = embed(photo(0), ROWS["bits"])
    assert read_watermark_evidence(marked, EvidenceConfig(watermarks=False)) == []
    assert read_watermark_evidence(marked[:200, :300], WATERMARKS) == []  # below 256x256 pixels
    monkeypatch.setattr(watermark, "WATERMARKS_AVAILABLE", False)
    assert read_watermark_evidence(marked, WATERMARKS) == []


@pytest.mark.parametrize("shape", [(427, 640), (301, 517), (256, 260)])
@pytest.mark.parametrize("length", [136, 48, 7])
def test_the_vectorised_decoder_equals_the_reference_bit_for_bit(shape, length):
    rng = np.random.default_rng(length)
    images = [photo(0)[: shape[0], : shape[1]], rng.integers(0, 256, (*shape, 3), dtype=np.uint8)]
    images.append(embed(images[0].copy(), ROWS["bytes"])) if shape[0] * shape[1] >= 256 * 256 else None
    decoder = imwatermark.WatermarkDecoder("bits", length)
    for rgb in images:
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        reference = np.array(decoder.decode(bgr, "dwtDct"))
        assert np.array_equal(decode_bits(block_scores(bgr, "BGR"), length), reference)
        assert np.array_equal(decode_bits(block_scores(rgb, "RGB"), length), reference)


def test_the_threshold_is_far_beyond_chance():
    """The docstring's claim: 90 % agreement on 48 random bits has a chance below 1e-9."""
    need = math.ceil(MIN_BIT_AGREEMENT * 48)
    tail = sum(math.comb(48, k) for k in range(need, 49)) / 2**48
    assert need == 44 and tail < 1e-9
