"""The fusion rules, as one table, plus bands, findings and the config they rest on."""

from __future__ import annotations

import math
import pickle

import pytest

from aigdetect.errors import ConfigError
from aigdetect.evidence import VERDICTS, EvidenceConfig, EvidenceError, Finding, Fused, default_bands, fuse, validate_bands
from aigdetect.evidence.findings import clean_text

C2PA_AI = Finding(
    "c2pa", "ai", "strong", "C2PA manifest (valid, signed by OpenAI, trusted) declares trainedAlgorithmicMedia", "DALL-E 3"
)
C2PA_AI_UNTRUSTED = Finding(
    "c2pa", "ai", "moderate", "C2PA manifest (valid, signed by X, untrusted) declares trainedAlgorithmicMedia", "DALL-E 3"
)
WATERMARK = Finding("watermark", "ai", "strong", "invisible watermark of SDXL decoded: 48/48 bits agree", "Stable Diffusion XL")
XMP_AI = Finding("xmp", "ai", "moderate", "XMP Iptc4xmpExt:DigitalSourceType is trainedAlgorithmicMedia", "Midjourney")
TAMPERED = Finding("c2pa", "tampered", "strong", "C2PA manifest fails validation (assertion.dataHash.mismatch)")
CAMERA = Finding("c2pa", "camera", "strong", "C2PA manifest (valid, signed by Leica, trusted) declares digitalCapture", "Leica")
CAMERA_UNTRUSTED = Finding("c2pa", "camera", "weak", "C2PA manifest (valid, signed by X, untrusted) declares digitalCapture")
EXIF_CAMERA = Finding("exif", "camera", "weak", "EXIF Make is Canon", "Canon")
EDITED = Finding("c2pa", "edited", "weak", "C2PA manifest (valid, signed by X, untrusted) records c2pa.cropped, no AI")
C2PA_AI_EDIT = Finding(
    "c2pa", "ai-edited", "moderate",
    "C2PA manifest (valid, signed by X, untrusted): generative parts in a capture (perceptibleGenAI)", "Photoshop",
)  # fmt: skip
XMP_AI_EDIT = Finding("xmp", "ai-edited", "moderate", "XMP Iptc4xmpExt:DigitalSourceType is compositeWithTrainedAlgorithmicMedia")
XMP_ALGORITHMIC = Finding("xmp", "none", "weak", "XMP Iptc4xmpExt:DigitalSourceType is algorithmicMedia")
ERROR = Finding.error("xmp", "too-large", "XMP packet of 2000000 bytes exceeds 1048576")

LOW, HIGH = default_bands(0.5)
CASES = [
    # findings, score, verdict, generator
    ([], 0.95, "likely-ai", None),
    ([], HIGH, "likely-ai", None),
    ([], math.nextafter(HIGH, 0), "inconclusive", None),
    ([], 0.5, "inconclusive", None),
    ([], math.nextafter(LOW, 1), "inconclusive", None),
    ([], LOW, "likely-real", None),
    ([], 0.0, "likely-real", None),
    ([], None, "inconclusive", None),
    ([], float("nan"), "inconclusive", None),
    ([XMP_AI], 0.01, "ai-generated", "Midjourney"),
    ([C2PA_AI_UNTRUSTED], None, "ai-generated", "DALL-E 3"),
    ([C2PA_AI], 0.0, "ai-generated", "DALL-E 3"),
    ([WATERMARK], 0.3, "ai-generated", "Stable Diffusion XL"),
    ([XMP_AI, WATERMARK], 0.3, "ai-generated", "Stable Diffusion XL"),
    ([TAMPERED], 0.95, "tampered-credentials", None),
    ([TAMPERED], None, "tampered-credentials", None),
    ([TAMPERED, XMP_AI], 0.9, "tampered-credentials", "Midjourney"),
    ([TAMPERED, C2PA_AI_UNTRUSTED], 0.9, "tampered-credentials", "DALL-E 3"),
    ([TAMPERED, WATERMARK], 0.1, "ai-generated", "Stable Diffusion XL"),
    ([CAMERA], 0.5, "camera-signed", None),
    ([CAMERA], 0.05, "camera-signed", None),
    ([CAMERA], None, "camera-signed", None),
    ([CAMERA], math.nextafter(HIGH, 0), "camera-signed", None),
    ([CAMERA], HIGH, "conflict", None),
    ([CAMERA, EXIF_CAMERA], 0.99, "conflict", None),
    ([CAMERA, WATERMARK], 0.05, "ai-generated", "Stable Diffusion XL"),
    ([CAMERA_UNTRUSTED], 0.05, "likely-real", None),
    ([CAMERA_UNTRUSTED], 0.95, "likely-ai", None),
    ([EXIF_CAMERA], 0.95, "likely-ai", None),
    ([EDITED, ERROR], 0.5, "inconclusive", None),
    ([ERROR], 0.99, "likely-ai", None),
    ([C2PA_AI_EDIT], 0.01, "ai-edited", "Photoshop"),
    ([XMP_AI_EDIT], None, "ai-edited", None),
    ([C2PA_AI_EDIT, CAMERA], 0.05, "ai-edited", "Photoshop"),
    ([C2PA_AI_EDIT, C2PA_AI], 0.05, "ai-generated", "DALL-E 3"),
    ([C2PA_AI_EDIT, TAMPERED], 0.05, "tampered-credentials", "Photoshop"),
    ([XMP_ALGORITHMIC], 0.05, "likely-real", None),
    ([XMP_ALGORITHMIC], 0.5, "inconclusive", None),
]


@pytest.mark.parametrize("findings, score, verdict, generator", CASES)
def test_fusion_rules(findings, score, verdict, generator):
    fused = fuse(findings, score, 0.5, (LOW, HIGH))
    assert (fused.verdict, fused.generator) == (verdict, generator)
    assert len(fused.reasons) == len(findings) + 1 + (verdict == "conflict")  # every finding, the score, a conflict
    assert fused.reasons[-1].startswith("Detector score" if score is not None and not math.isnan(score) else "No detector score")


def test_every_verdict_has_a_row():
    assert {case[2] for case in CASES} == set(VERDICTS)


def test_reasons_put_the_decisive_evidence_first():
    fused = fuse([EXIF_CAMERA, ERROR, TAMPERED, WATERMARK], 0.1, 0.5, (LOW, HIGH))
    assert fused.reasons == (
        "Invisible watermark of SDXL decoded: 48/48 bits agree",
        "C2PA manifest fails validation (assertion.dataHash.mismatch)",
        "EXIF Make is Canon",
        "XMP not read (too-large: XMP packet of 2000000 bytes exceeds 1048576)",
        "Detector score 0.100 is in the likely-real band (at or below 0.119)",
    )
    conflict = fuse([CAMERA], 0.93, 0.5, (LOW, HIGH))
    assert conflict.reasons == (
        "C2PA manifest (valid, signed by Leica, trusted) declares digitalCapture",
        "The camera credentials conflict with a detector score in the likely-AI band: check the image by other means",
        "Detector score 0.930 is in the likely-AI band (at or above 0.881)",
    )
    assert fuse([], 0.5, 0.5, (LOW, HIGH)).reasons == (
        "Detector score 0.500 is between the bands (0.119 to 0.881): inconclusive",
    )


def test_default_bands_are_two_logits_around_the_threshold():
    assert default_bands(0.5) == pytest.approx((1 / (1 + math.e**2), 1 / (1 + math.e**-2)))
    assert default_bands(0.5) == pytest.approx((0.1192, 0.8808), abs=1e-4)
    low, high = default_bands(0.3)
    odds = 0.3 / 0.7
    assert (low / (1 - low), high / (1 - high)) == pytest.approx((odds / math.e**2, odds * math.e**2))
    for threshold in (0.0, 1e-15, 0.999999, 1.0):
        low, high = default_bands(threshold)
        assert 0 <= low <= threshold <= high <= 1
    assert fuse([], 0.7, 0.3, default_bands(0.3)).verdict == "inconclusive"
    assert fuse([], 0.8, 0.3, default_bands(0.3)).verdict == "likely-ai"


@pytest.mark.parametrize(
    "threshold, bands",
    [(0.5, (0.6, 0.9)), (0.5, (0.1, 0.4)), (0.5, (0.9, 0.1)), (0.5, (-0.1, 0.9)), (0.5, (0.1, 1.1)), (0.5, (float("nan"), 0.9))]
    + [(float("inf"), (0.1, 0.9)), (0.5, (0.1,)), (0.5, "ab")],
)
def test_bad_bands_are_refused(threshold, bands):
    with pytest.raises(ConfigError):
        validate_bands(threshold, bands)


def test_equal_bands_are_allowed_for_those_who_want_a_hard_answer():
    assert validate_bands(0.5, (0.5, 0.5)) == (0.5, 0.5)
    assert fuse([], 0.5, 0.5, (0.5, 0.5)).verdict == "likely-ai"


def test_scores_outside_zero_to_one_are_refused():
    with pytest.raises(EvidenceError):
        fuse([], 1.5, 0.5, (LOW, HIGH))
    with pytest.raises(EvidenceError):
        Fused("fake", ())


# Findings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("exifs", "ai", "weak", "x"),
        ("exif", "fake", "weak", "x"),
        ("exif", "ai", "huge", "x"),
        ("exif", "ai", "weak", ""),
        ("exif", "ai", "weak", "two\nlines"),
        ("exif", "ai", "weak", "x" * 301),
        ("exif", "error", "weak", "no reason given"),
        ("exif", "error", "weak", "crashed: unknown reason"),
        ("exif", "ai", "weak", "x", ""),
        ("exif", "ai", "weak", "x", "g" * 81),
    ],
)
def test_findings_keep_the_vocabulary_closed(args):
    with pytest.raises(EvidenceError):
        Finding(*args)


def test_findings_round_trip_and_compact():
    for finding in (C2PA_AI, TAMPERED, ERROR, EDITED):
        assert Finding.from_dict(finding.to_dict()) == finding
    assert Finding.from_dict({"source": "xmp", "claim": "none", "strength": "weak", "detail": "d"}).generator is None
    for bad in ({"source": "xmp"}, {**C2PA_AI.to_dict(), "extra": 1}, {**C2PA_AI.to_dict(), "detail": 3}, ["xmp"]):
        with pytest.raises(EvidenceError):
            Finding.from_dict(bad)
    semicolons = Finding.make("png-text", "ai", "moderate", "PNG text 'parameters': a; b", "X")
    assert semicolons.compact() == "png-text:ai:PNG text 'parameters': a, b"
    assert "; ".join(f.compact() for f in (XMP_AI, ERROR)).count("; ") == 1


def test_clean_text_makes_one_safe_line():
    assert clean_text("a\nb\tc\x00d\u202ee\u2028f  g", 100) == "a b c d e f g"
    assert clean_text("x" * 50, 10) == "x" * 9 + "…"
    assert clean_text("\n\n", 10) == ""
    long_garbage = "\x00" * 10_000 + "tail"
    assert clean_text(long_garbage, 10) == ""  # only a bounded prefix of hostile text is ever looked at


def test_make_cleans_untrusted_text():
    finding = Finding.make("exif", "ai", "moderate", "EXIF Software names \x1b[2JMidjourney\r\n", "Mid\njourney")
    assert (finding.detail, finding.generator) == ("EXIF Software names [2JMidjourney", "Mid journey")


# Config -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{"max_xmp_bytes": 0}, {"max_json_depth": -1}, {"max_c2pa_bytes": True}, {"max_exif_bytes": 1.5}, {"watermarks": 1}]
)
def test_config_refuses_bad_values(kwargs):
    with pytest.raises(ConfigError):
        EvidenceConfig(**kwargs)


def test_config_defaults_and_pickling(tmp_path):
    from evidence_files import chain, write

    config = EvidenceConfig()
    assert (config.max_xmp_bytes, config.max_text_chunk_bytes, config.max_json_depth) == (1 << 20, 2 << 20, 64)
    assert config.trust_pem is None and config.watermarks is False
    trusted = EvidenceConfig(c2pa_trust=str(write(tmp_path / "root.pem", chain()[0])))
    assert trusted.trust_pem == chain()[0].decode()
    assert pickle.loads(pickle.dumps(trusted)) == trusted  # decode workers get it whole
    assert pickle.loads(pickle.dumps(trusted)).trust_pem == trusted.trust_pem


def test_importing_the_evidence_layer_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, aigdetect.evidence as e; e.fuse([], 0.5, 0.5, e.default_bands(0.5)); "
        "print(sorted(m for m in ('c2pa', 'cv2', 'imwatermark', 'torch', 'numpy', 'defusedxml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
