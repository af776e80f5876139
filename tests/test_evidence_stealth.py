"""Stealth parameters (AUTOMATIC1111's sd-webui-stealth-pnginfo, NovelAI) written here by a plain encoder.

The encoder below follows the layout as the extension writes it (``scripts/stealth_pnginfo.py`` of
ashen-sensored/sd_webui_stealth_pnginfo, ``prepare_data`` and ``add_data``): signature bits, then the
payload's length in bits as 32 bits, then the payload (gzip for ``...comp``), bit by bit into the
lowest bit of alpha (one per pixel) or of red, green, blue (three per pixel), column by column. It is
written pixel by pixel on purpose, unlike the vectorised reader it checks.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from evidence_files import A1111, encode, photo, png_with_text, write

from aigdetect.evidence import EvidenceConfig, Finding, collect_evidence

NOVELAI = {"prompt": "a fox", "steps": 28, "sampler": "k_euler_ancestral", "uc": "lowres", "n_samples": 1}


def stealth_pixels(
    pixels: np.ndarray, signature: str, payload: bytes, *, length_bits: int | None = None, raw: bool = False
) -> np.ndarray:
    """``pixels`` with a stealth block written into their lowest bits (``length_bits`` overrides the stated
    length; ``raw`` stores the payload uncompressed whatever the signature says)."""
    data = gzip.compress(payload) if signature.endswith("comp") and not raw else payload
    stated = len(data) * 8 if length_bits is None else length_bits
    bits = "".join(f"{b:08b}" for b in signature.encode("utf-8")) + f"{stated:032b}" + "".join(f"{b:08b}" for b in data)
    out = pixels.copy()
    height, width = out.shape[:2]
    channels = (0, 1, 2) if "rgb" in signature else (3,)
    index = 0
    for x in range(width):
        for y in range(height):
            for c in channels:
                if index < len(bits):
                    out[y, x, c] = (int(out[y, x, c]) & 0xFE) | int(bits[index])
                    index += 1
    assert index == len(bits), "the picture is too small for the payload"
    return out


def rgba(height: int = 200, width: int = 120) -> np.ndarray:
    """A real photo crop with an opaque alpha channel, as the extension's ``putalpha(255)`` leaves it."""
    rgb = photo(1)[:height, :width]
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def evidence(path: Path, **config) -> list[Finding]:
    return collect_evidence(path, EvidenceConfig(**config))


def claims(findings: list[Finding]) -> list[tuple[str, str, str | None]]:
    return [(f.source, f.claim, f.generator) for f in findings]


@pytest.mark.parametrize("signature", ["stealth_pnginfo", "stealth_pngcomp", "stealth_rgbinfo", "stealth_rgbcomp"])
def test_automatic1111_stealth_parameters_in_every_mode(tmp_path, signature):
    pixels = rgba() if "png" in signature else rgba()[:, :, :3].copy()
    path = write(tmp_path / "s.png", encode(stealth_pixels(pixels, signature, A1111.encode()), "PNG"))
    findings = evidence(path)
    assert claims(findings) == [("png-text", "ai", "Stable Diffusion XL")]
    assert findings[0].detail == (
        f"PNG stealth data ({signature}) 'parameters': AUTOMATIC1111 parameters, model sd_xl_base_1.0 (hash 31e35c80fc)"
    )


def test_a_short_image_carries_the_header_over_several_columns(tmp_path):
    pixels = rgba(height=40, width=400)  # 152 header bits fill the first four columns of 40 rows
    findings = evidence(write(tmp_path / "wide.png", encode(stealth_pixels(pixels, "stealth_pngcomp", A1111.encode()), "PNG")))
    assert claims(findings) == [("png-text", "ai", "Stable Diffusion XL")]


def test_novelai_stealth_json_is_read_as_its_text_chunks(tmp_path):
    payload = json.dumps({"Software": "NovelAI", "Comment": json.dumps(NOVELAI), "Source": "Stable Diffusion XL C1E1DE52"})
    findings = evidence(write(tmp_path / "nai.png", encode(stealth_pixels(rgba(), "stealth_pngcomp", payload.encode()), "PNG")))
    assert claims(findings) == [("png-text", "ai", "NovelAI"), ("png-text", "ai", "Stable Diffusion XL")]
    assert findings[0].detail == "PNG stealth data (stealth_pngcomp) 'Comment': NovelAI generation settings"


def test_stealth_beside_the_text_chunk_gives_one_finding(tmp_path):
    data = png_with_text(stealth_pixels(rgba(), "stealth_pngcomp", A1111.encode()), {"parameters": A1111})
    findings = evidence(write(tmp_path / "both.png", data))
    assert claims(findings) == [("png-text", "ai", "Stable Diffusion XL")]
    assert findings[0].detail.startswith("PNG text 'parameters'")


@pytest.mark.parametrize(
    "signature, payload, length_bits, config, reason",
    [
        ("stealth_pnginfo", A1111.encode(), None, {"max_text_chunk_bytes": 64}, "too-large"),
        ("stealth_pnginfo", b"x" * 10, 0xFFFFFFF8, {}, "too-large"),
        ("stealth_pnginfo", b"x" * 10, 200 * 120 * 8, {}, "malformed"),
        ("stealth_pnginfo", b"x" * 10, 83, {}, "malformed"),
        ("stealth_pngcomp", b"\0" * 100_000, None, {"max_text_chunk_bytes": 4096}, "too-large"),
    ],
    ids=["over-the-cap", "length-of-4-gb", "longer-than-the-image", "not-whole-bytes", "gzip-bomb"],
)
def test_hostile_stealth_blocks_are_refused_with_a_reason(tmp_path, signature, payload, length_bits, config, reason):
    pixels = stealth_pixels(rgba(), signature, payload, length_bits=length_bits)
    findings = evidence(write(tmp_path / "h.png", encode(pixels, "PNG")), **config)
    assert [(f.source, f.claim) for f in findings] == [("png-text", "error")]
    assert findings[0].detail.startswith(f"{reason}: {signature} ")


def test_a_broken_gzip_payload_is_malformed(tmp_path):
    pixels = stealth_pixels(rgba(), "stealth_pngcomp", b"\x1f\x8b\x08\x00not deflate data", raw=True)
    findings = evidence(write(tmp_path / "b.png", encode(pixels, "PNG")))
    assert [(f.claim, f.detail.split(" (")[0]) for f in findings] == [
        ("error", "malformed: stealth_pngcomp payload does not inflate")
    ]


@pytest.mark.parametrize("mode", ["RGBA", "RGB"])
def test_ordinary_pngs_and_random_low_bits_say_nothing(tmp_path, mode):
    rng = np.random.default_rng(0)
    pixels = rgba()
    pixels[:, :, 3] = 254 | rng.integers(0, 2, pixels.shape[:2], dtype=np.uint8)
    pixels = pixels if mode == "RGBA" else pixels[:, :, :3].copy()
    assert evidence(write(tmp_path / "p.png", encode(pixels, "PNG"))) == []


def test_a_lossy_copy_loses_the_bits_and_says_nothing(tmp_path):
    pixels = stealth_pixels(rgba()[:, :, :3].copy(), "stealth_rgbinfo", A1111.encode())
    assert evidence(write(tmp_path / "j.jpg", encode(pixels, "JPEG", quality=95))) == []


def test_a_real_novelai_output_stealth_block():
    """A lossless cut of a real NovelAI PNG (sd-metadata's samples, MIT; see SOURCE.md): no text chunks, only the bits."""
    path = Path(__file__).parent / "assets" / "third_party" / "sd-metadata" / "novelai-curated-stealth-cut.png"
    findings = evidence(path)
    assert claims(findings) == [("png-text", "ai", "NovelAI")]
    assert findings[0].detail == "PNG stealth data (stealth_pngcomp) 'Comment': NovelAI generation settings"
