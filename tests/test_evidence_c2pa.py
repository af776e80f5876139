"""C2PA Content Credentials on files signed here with a throw-away CA chain: validity, trust, tampering, sidecars, offline."""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from evidence_files import (
    CAPTURE_SOURCE,
    ai_manifest,
    break_manifest_box,
    chain,
    encode,
    manifest,
    sign,
    small_photo,
    splice_pixels,
    write,
    xmp_packet,
)
from PIL import Image

from aigdetect.errors import ConfigError
from aigdetect.evidence import EvidenceConfig, Finding, collect_evidence, default_bands, fuse, summarize_c2pa
from aigdetect.evidence.credentials import c2pa_settings, read_store, sidecar_path
from aigdetect.evidence.findings import MetadataError

MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}
SUFFIX = {"JPEG": "jpg", "PNG": "png"}


@pytest.fixture(scope="module")
def trust(tmp_path_factory) -> EvidenceConfig:
    root, _, _ = chain()
    path = write(tmp_path_factory.mktemp("trust") / "anchors.pem", root)
    return EvidenceConfig(c2pa_trust=str(path))


def signed_file(tmp_path: Path, fmt: str, definition: dict, name: str = "signed") -> Path:
    data, _ = sign(encode(small_photo(), fmt), MIME[fmt], definition)
    return write(tmp_path / f"{name}.{SUFFIX[fmt]}", data)


def c2pa_findings(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.source == "c2pa"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_signed_ai_image_is_valid_untrusted_then_trusted_with_the_root(tmp_path, fmt, trust):
    path = signed_file(tmp_path, fmt, ai_manifest())
    (untrusted,) = collect_evidence(path)
    assert (untrusted.source, untrusted.claim, untrusted.strength, untrusted.generator) == ("c2pa", "ai", "moderate", "DALL-E 3")
    assert untrusted.detail.startswith(
        "C2PA manifest (valid, signed by Evidence Test Signer / Evidence Tests, untrusted) declares trainedAlgorithmicMedia"
    )
    (trusted,) = collect_evidence(path, trust)
    assert (trusted.claim, trusted.strength) == ("ai", "strong")
    assert "trusted by the anchors in anchors.pem) declares trainedAlgorithmicMedia (c2pa.created by DALL·E 3)" in trusted.detail
    for findings in ([untrusted], [trusted]):
        for score in (0.0, 0.5, 1.0, None):
            fused = fuse(findings, score, 0.5, default_bands(0.5))
            assert (fused.verdict, fused.generator) == ("ai-generated", "DALL-E 3")


@pytest.mark.parametrize(
    "fmt, mime",
    [("WEBP", "image/webp"), ("TIFF", "image/tiff"), ("AVIF", "image/avif"), ("HEIF", "image/heic"), ("GIF", "image/gif")],
)
def test_manifests_in_the_other_containers(tmp_path, fmt, mime):
    import aigdetect.data.images  # noqa: F401  (registers the HEIF opener and saver)

    data, _ = sign(encode(small_photo(), fmt), mime, ai_manifest())
    (finding,) = collect_evidence(write(tmp_path / f"signed.{fmt.lower()}", data))
    assert (finding.claim, finding.strength, finding.generator) == ("ai", "moderate", "DALL-E 3")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_changing_the_pixels_after_signing_is_tampering(tmp_path, fmt, trust):
    signed, _ = sign(encode(small_photo(), fmt), MIME[fmt], ai_manifest())
    changed = small_photo()
    changed[10:20, 10:20] = 255 - changed[10:20, 10:20]
    path = write(tmp_path / f"tampered.{SUFFIX[fmt]}", splice_pixels(signed, encode(changed, fmt), fmt))
    with Image.open(path) as image:  # still a valid image, with other pixels
        assert not np.array_equal(np.asarray(image.convert("RGB")), np.asarray(Image.open(io.BytesIO(signed)).convert("RGB")))
    for config in (EvidenceConfig(), trust):
        (finding,) = collect_evidence(path, config)
        assert (finding.claim, finding.strength, finding.generator) == ("tampered", "strong", None)
        assert "fails validation (assertion.dataHash.mismatch)" in finding.detail
        assert "it declared trainedAlgorithmicMedia" in finding.detail
        assert fuse([finding], 0.03, 0.5, default_bands(0.5)).verdict == "tampered-credentials"


def test_capture_credentials_are_camera_signed_only_when_trusted(tmp_path, trust):
    definition = manifest([{"action": "c2pa.created", "digitalSourceType": CAPTURE_SOURCE}], generator="Leica Camera AG M11-P")
    path = signed_file(tmp_path, "JPEG", definition)
    (weak,) = collect_evidence(path)
    (strong,) = collect_evidence(path, trust)
    assert [(f.claim, f.strength) for f in (weak, strong)] == [("camera", "weak"), ("camera", "strong")]
    bands = default_bands(0.5)
    assert fuse([weak], 0.3, 0.5, bands).verdict == "inconclusive"  # an untrusted camera claim decides nothing
    assert fuse([strong], 0.3, 0.5, bands).verdict == "camera-signed"
    assert fuse([strong], 0.95, 0.5, bands).verdict == "conflict"  # never overrides a high score


def test_a_camera_maker_creating_without_a_source_type_counts_as_capture(tmp_path, trust):
    created = {
        "action": "c2pa.created",
        "digitalSourceType": "http://c2pa.org/digitalsourcetype/empty",
        "softwareAgent": {"name": "Nikon Z6III"},
    }
    path = signed_file(tmp_path, "JPEG", manifest([created]))
    (finding,) = collect_evidence(path, trust)
    assert (finding.claim, finding.strength, finding.generator) == ("camera", "strong", "Nikon")


def test_edits_without_ai_are_edited(tmp_path, trust):
    actions = [
        {"action": "c2pa.created", "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"},
        {"action": "c2pa.color_adjustments"},
    ]
    (finding,) = collect_evidence(signed_file(tmp_path, "PNG", manifest(actions)), trust)
    assert (finding.claim, finding.strength) == ("edited", "strong")
    assert "records c2pa.color_adjustments, no AI" in finding.detail
    assert fuse([finding], 0.95, 0.5, default_bands(0.5)).verdict == "likely-ai"


def test_a_known_ai_claim_generator_without_source_type_is_ai(tmp_path):
    created = {"action": "c2pa.created", "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"}
    path = signed_file(tmp_path, "JPEG", manifest([created], generator="Adobe_Firefly"))
    (finding,) = collect_evidence(path)
    assert (finding.claim, finding.strength, finding.generator) == ("ai", "moderate", "Adobe Firefly")


def test_a_sidecar_beside_the_file_is_read(tmp_path, trust):
    asset, store = sign(encode(small_photo(), "JPEG"), "image/jpeg", ai_manifest(), sidecar=True)
    path = write(tmp_path / "photo.jpg", asset)
    assert collect_evidence(path) == []  # nothing embedded, no sidecar yet
    write(tmp_path / "photo.c2pa", store)
    (finding,) = collect_evidence(path, trust)
    assert (finding.claim, finding.strength) == ("ai", "strong")
    assert finding.detail.startswith("C2PA sidecar manifest (valid, signed by Evidence Test Signer")
    (summary,) = summarize_c2pa(path, trust)
    assert summary["where"] == "sidecar" and summary["validation"] == "trusted"


def test_a_sidecar_that_is_a_link_is_not_followed(tmp_path):
    asset, store = sign(encode(small_photo(), "JPEG"), "image/jpeg", ai_manifest(), sidecar=True)
    path = write(tmp_path / "photo.jpg", asset)
    (tmp_path / "photo.c2pa").symlink_to(write(tmp_path / "elsewhere.bin", store))
    (finding,) = collect_evidence(path)
    assert finding.claim == "error" and finding.detail.startswith("refused: C2PA sidecar photo.c2pa")


def test_sidecar_names():
    assert sidecar_path("/a/b/photo.jpg") == "/a/b/photo.c2pa"
    assert sidecar_path(b"/a/photo.tar.png") == b"/a/photo.tar.c2pa"


def test_summary_for_inspect(tmp_path, trust):
    path = signed_file(tmp_path, "PNG", ai_manifest("ChatGPT"))
    (summary,) = summarize_c2pa(path, trust)
    assert summary == {
        "where": "embedded",
        "validation": "trusted",
        "trusted": True,
        "trust": "trusted",
        "vouched_by": "anchors in anchors.pem",
        "failures": [],
        "signer": {"common_name": "Evidence Test Signer", "issuer": "Evidence Tests"},
        "claim_generator": "Evidence Tests 1.0",
        "title": "test image",
        "actions": [{"action": "c2pa.created", "digitalSourceType": "trainedAlgorithmicMedia", "softwareAgent": "ChatGPT"}],
        "ingredients": 0,
        "ingredient_ai_source_types": [],
        "manifests": [
            {
                "label": summary["manifests"][0]["label"],
                "active": True,
                "pseudo": False,
                "signer": "Evidence Test Signer",
                "trust": "trusted",
                "signals": ["fullyGenAIMedia", "ambiguousActions"],  # the builder leaves allActionsIncluded out
                "ingredients": [],
            }
        ],
        "identities": [],
    }
    assert summary["manifests"][0]["label"].startswith("urn:c2pa:")
    assert summarize_c2pa(write(tmp_path / "plain.png", encode(small_photo(), "PNG"))) == []
    (untrusted,) = summarize_c2pa(path)
    assert (untrusted["validation"], untrusted["failures"]) == ("valid", ["signingCredential.untrusted"])
    assert (untrusted["trust"], untrusted["vouched_by"]) == ("untrusted", None)


def test_the_size_cap_applies_before_the_library_reads(tmp_path):
    path = signed_file(tmp_path, "JPEG", ai_manifest())
    (finding,) = collect_evidence(path, EvidenceConfig(max_c2pa_bytes=1000))
    assert finding.claim == "error"
    assert finding.detail.startswith("too-large: C2PA manifest store of ") and finding.detail.endswith("exceeds 1000")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_malformed_manifest_box_is_an_error_finding(tmp_path, fmt):
    signed, _ = sign(encode(small_photo(), fmt), MIME[fmt], ai_manifest())
    findings = collect_evidence(write(tmp_path / f"junk.{SUFFIX[fmt]}", break_manifest_box(signed, fmt)))
    assert [(f.source, f.claim) for f in findings] == [("c2pa", "error")]
    assert findings[0].detail.startswith("malformed: C2PA: Verify: ")


def test_app11_jumbf_that_is_not_c2pa_says_nothing(tmp_path):
    clean = encode(small_photo(), "JPEG")
    other = b"JP\x00\x11\x00\x00\x00\x01" + b"\x00\x00\x00\x40jumb" + b"\xa5" * 120  # JUMBF, but no c2pa store
    data = clean[:2] + b"\xff\xeb" + (len(other) + 2).to_bytes(2, "big") + other + clean[2:]
    assert collect_evidence(write(tmp_path / "jumbf.jpg", data)) == []


class _Listener:
    """A local HTTP endpoint that records every connection it gets (answers 404)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.hits: list[bytes] = []
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/manifest.c2pa"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                self.hits.append(connection.recv(4096))
                connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.server.close()


@pytest.fixture()
def listener():
    endpoint = _Listener()
    yield endpoint
    endpoint.close()


def test_a_remote_manifest_is_reported_and_never_fetched(tmp_path, listener, monkeypatch):
    import c2pa

    asset, _ = sign(encode(small_photo(), "JPEG"), "image/jpeg", ai_manifest(), remote_url=listener.url)
    path = write(tmp_path / "remote.jpg", asset)
    # The control: c2pa-python's default settings do fetch, so the listener would see it.
    with pytest.raises(c2pa.C2paError):
        c2pa.Reader("image/jpeg", io.BytesIO(asset))
    assert len(listener.hits) == 1 and listener.hits[0].startswith(b"GET /manifest.c2pa")

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    (finding,) = collect_evidence(path)
    assert (finding.source, finding.claim) == ("c2pa", "error")
    assert finding.detail == f"refused: the C2PA manifest is stored remotely ({listener.url}) and is never fetched"
    with open(path, "rb") as handle, pytest.raises(MetadataError, match="stored remotely") as caught:
        read_store(handle, "image/jpeg", None, EvidenceConfig(), "embedded")  # the library itself, with our settings
    assert caught.value.reason == "refused"
    assert len(listener.hits) == 1  # still only the control's


def test_the_reading_settings_fetch_nothing():
    settings = c2pa_settings(EvidenceConfig())
    assert settings["verify"]["remote_manifest_fetch"] is False and settings["verify"]["ocsp_fetch"] is False
    assert settings["core"]["allowed_network_hosts"] == []


def test_a_bad_trust_file_fails_when_the_config_is_made(tmp_path):
    with pytest.raises(ConfigError, match="missing"):
        EvidenceConfig(c2pa_trust=str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match="no PEM certificate"):
        EvidenceConfig(c2pa_trust=str(write(tmp_path / "x.pem", b"hello")))
    garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(ConfigError, match=r"certificate 1 \(line 1\) is not valid base64 DER"):
        EvidenceConfig(c2pa_trust=str(write(tmp_path / "g.pem", garbage)))


def test_an_ai_ingredient_makes_the_edit_ai(tmp_path):
    import c2pa

    parent, _ = sign(encode(small_photo(), "JPEG"), "image/jpeg", ai_manifest("Midjourney"))
    root, certs, key = chain()
    definition = manifest([{"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}, {"action": "c2pa.cropped"}])
    settings = {"version": 1, "builder": {"thumbnail": {"enabled": False}}}
    with c2pa.Context.from_dict(settings) as context, c2pa.Builder(definition, context=context) as builder:
        builder.add_ingredient(
            {"title": "parent.jpg", "relationship": "parentOf", "label": "parent"}, "image/jpeg", io.BytesIO(parent)
        )
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, certs, key, None))
        out = io.BytesIO()
        builder.sign(signer, "image/jpeg", io.BytesIO(parent), out)
    finding, ingredient = collect_evidence(write(tmp_path / "edit.jpg", out.getvalue()))
    assert (finding.claim, finding.strength) == ("ai", "moderate")
    assert "has an ingredient declaring trainedAlgorithmicMedia" in finding.detail
    assert (ingredient.claim, ingredient.strength) == ("none", "weak")
    assert ingredient.detail.startswith(
        "C2PA ingredient manifest (parentOf, signed by Evidence Test Signer, untrusted), signals: fullyGenAIMedia; urn:c2pa:"
    )


# Trust as C2PA defines it: real files from the C2PA SDK (tests/assets/c2pa/README.md) -----------

ASSETS = Path(__file__).parent / "assets" / "c2pa"
SDK_ROOTS = ASSETS / "test_cert_root_bundle.pem"


@pytest.mark.parametrize("name, code", [("XCA.jpg", "assertion.dataHash.mismatch"), ("E-sig-CA.jpg", "claimSignature.mismatch")])
def test_real_tampering_stays_tampered_whatever_the_trust(name, code):
    for config in (EvidenceConfig(), EvidenceConfig(c2pa_trust_list=str(SDK_ROOTS))):
        (finding,) = collect_evidence(ASSETS / name, config)
        assert (finding.claim, finding.strength) == ("tampered", "strong")
        assert f"fails validation ({code})" in finding.detail and "signingCredential" not in finding.detail
        assert fuse([finding], 0.02, 0.5, default_bands(0.5)).verdict == "tampered-credentials"
        (summary,) = summarize_c2pa(ASSETS / name, config)
        assert summary["validation"] == "invalid" and code in summary["failures"]


def test_an_expired_untrusted_signer_is_a_trust_state_not_tampering():
    # Signed in 2024 by a certificate that expired a month later, no time-stamp: c2pa-python calls
    # the store Invalid (signingCredential.untrusted and .expired), as for real ChatGPT images.
    path = ASSETS / "expired-signer.jpg"
    for config in (EvidenceConfig(), EvidenceConfig(c2pa_trust=str(ASSETS / "expired-signer-root.pem"))):
        (finding,) = collect_evidence(path, config)
        assert (finding.claim, finding.strength, finding.generator) == ("ai", "moderate", "ChatGPT (OpenAI)")
        assert finding.detail.startswith(
            "C2PA manifest (valid, signed by Evidence Test Signer / Evidence Tests, certificate expired)"
        )
        fused = fuse([finding], 0.01, 0.5, default_bands(0.5))
        assert fused.verdict == "ai-generated" and "certificate expired" in fused.reasons[0]
        (summary,) = summarize_c2pa(path, config)
        assert (summary["validation"], summary["trust"], summary["trusted"]) == ("valid", "expired", False)
        assert "signingCredential.expired" in summary["failures"]


def test_an_ai_declaration_in_the_parent_ingredient_still_counts_with_an_expired_signer():
    import c2pa

    from aigdetect.evidence.validation import manifest_trust

    path = ASSETS / "expired-ingredient-ai.jpg"
    finding, ingredient = collect_evidence(path)
    assert ingredient.detail.startswith("C2PA ingredient manifest (parentOf, signed by Evidence Test Signer, untrusted), signals:")
    assert (finding.claim, finding.strength, finding.generator) == ("ai", "moderate", "ChatGPT (OpenAI)")
    assert "certificate expired) has an ingredient declaring trainedAlgorithmicMedia" in finding.detail
    assert fuse([finding], 0.01, 0.5, default_bands(0.5)).verdict == "ai-generated"
    with open(path, "rb") as handle, c2pa.Reader("image/jpeg", handle) as reader:
        store = json.loads(reader.json())
    (ingredient,) = set(store["manifests"]) - {store["active_manifest"]}
    # The active signature is checked today (expired); the ingredient's as recorded when it was added (then valid, untrusted).
    assert (manifest_trust(store, store["active_manifest"]), manifest_trust(store, ingredient)) == ("expired", "untrusted")


@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs libfaketime's faketime to move the clock")
def test_a_time_stamped_signature_stays_trusted_after_its_certificate_expires():
    # Both files are signed by the SDK's test certificate, which expires on 2030-08-26; CA.jpg's
    # signature carries a time-stamp, the other's does not. Read as on 2031-06-01:
    script = (
        "import json, sys\n"
        "from aigdetect.evidence import EvidenceConfig, summarize_c2pa\n"
        "config = EvidenceConfig(c2pa_trust_list=sys.argv[1])\n"
        "print(json.dumps([summarize_c2pa(p, config)[0]['trust'] for p in sys.argv[2:]]))\n"
    )
    files = [str(ASSETS / "CA.jpg"), str(ASSETS / "sdk-signed-no-timestamp.jpg")]
    command = [sys.executable, "-c", script, str(SDK_ROOTS), *files]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}

    def trust_on(day: str) -> list[str]:
        done = subprocess.run(["faketime", day, *command], capture_output=True, text=True, env=env, check=True)
        return json.loads(done.stdout)

    assert trust_on("2027-01-01 00:00:00") == ["trusted", "trusted"]
    later = trust_on("2031-06-01 00:00:00")
    assert later == ["trusted", "expired"]


def test_a_real_file_chaining_to_the_trust_list_is_trusted():
    path = ASSETS / "CA.jpg"
    (untrusted,) = collect_evidence(path)
    assert (untrusted.claim, untrusted.strength) == ("edited", "weak")
    assert "(valid, signed by C2PA Signer / C2PA Test Signing Cert, untrusted)" in untrusted.detail
    replaced = EvidenceConfig(c2pa_trust_list=str(SDK_ROOTS))
    (trusted,) = collect_evidence(path, replaced)
    assert (trusted.claim, trusted.strength) == ("edited", "strong")
    assert "untrusted" not in trusted.detail and "trusted by the anchors in test_cert_root_bundle.pem)" in trusted.detail
    (summary,) = summarize_c2pa(path, replaced)
    assert (summary["trust"], summary["vouched_by"]) == ("trusted", "anchors in test_cert_root_bundle.pem")
    (added,) = summarize_c2pa(path, EvidenceConfig(c2pa_trust=str(SDK_ROOTS)))  # extra anchors beside the bundled list
    assert (added["trust"], added["vouched_by"]) == ("trusted", "anchors in test_cert_root_bundle.pem")


def test_the_bundled_c2pa_lists_are_loaded_by_default():
    from cryptography import x509

    from aigdetect.evidence.trustlists import TRUST_DIR

    shipped = {name: x509.load_pem_x509_certificates((TRUST_DIR / name).read_bytes()) for name in
               ("C2PA-TRUST-LIST.pem", "C2PA-TSA-TRUST-LIST.pem")}  # fmt: skip
    assert [len(certs) for certs in shipped.values()] == [30, 22]
    anchors = c2pa_settings(EvidenceConfig())["trust"]["trust_anchors"]
    loaded = x509.load_pem_x509_certificates(anchors.encode("ascii"))
    assert loaded == shipped["C2PA-TRUST-LIST.pem"] + shipped["C2PA-TSA-TRUST-LIST.pem"]
    assert "Google LLC" in {c.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value for c in loaded}
    config = EvidenceConfig()
    assert config.anchors.describe() == "C2PA Trust List of 2026-08-05, C2PA TSA Trust List of 2026-08-05"
    assert config.trust_pem is None
    replaced = EvidenceConfig(c2pa_trust_list=str(SDK_ROOTS))
    section = c2pa_settings(replaced)["trust"]
    replacement = x509.load_pem_x509_certificates(SDK_ROOTS.read_bytes())
    assert x509.load_pem_x509_certificates(section["trust_anchors"].encode()) == replacement + shipped["C2PA-TSA-TRUST-LIST.pem"]
    assert "user_anchors" not in section


def test_the_settings_cap_is_the_c2pa_librarys_own():
    import json

    import c2pa

    from aigdetect.evidence.trustlists import MAX_SETTINGS_BYTES

    settings = c2pa_settings(EvidenceConfig())
    for size, accepted in ((MAX_SETTINGS_BYTES, True), (MAX_SETTINGS_BYTES + 1, False)):
        padded = {**settings, "trust": {**settings["trust"], "trust_config": ""}}
        padded["trust"]["trust_config"] = " " * (size - len(json.dumps(padded).encode()))
        assert len(json.dumps(padded).encode()) == size
        if accepted:
            c2pa.Context.from_dict(padded).close()
        else:
            with pytest.raises(c2pa.C2paError, match="StringTooLong"):
                c2pa.Context.from_dict(padded)


def test_trust_files_over_the_librarys_limit_are_refused_up_front(tmp_path):
    block = SDK_ROOTS.read_bytes()
    big = write(tmp_path / "big.pem", block * (1_150_000 // len(block)))
    with pytest.raises(ConfigError, match=r"big\.pem is 11\d{5} bytes, over 1048576 bytes, the most the C2PA library accepts"):
        EvidenceConfig(c2pa_trust=str(big))
    # Under the file cap, but the settings string (JSON-escaped, beside the bundled list) would not fit.
    near = write(tmp_path / "near.pem", block * (1_020_000 // len(block)))
    with pytest.raises(ConfigError, match=r"need \d+ bytes of settings, over 1048576, the most the C2PA library accepts"):
        EvidenceConfig(c2pa_trust=str(near))


def test_pem_is_parsed_in_one_pass(tmp_path):
    # The pattern this replaced rescanned the rest of the file from every BEGIN line: quadratic.
    begins = write(tmp_path / "begins.pem", b"-----BEGIN CERTIFICATE-----\n" * 30_000)
    with pytest.raises(ConfigError, match="the certificate opened on line 1 has no END line before line 2"):
        EvidenceConfig(c2pa_trust=str(begins))
    stray = write(tmp_path / "stray.pem", SDK_ROOTS.read_bytes() + b"-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"line \d+ ends a certificate that was never begun"):
        EvidenceConfig(c2pa_trust=str(stray))
    unterminated = write(tmp_path / "open.pem", SDK_ROOTS.read_bytes() + b"-----BEGIN CERTIFICATE-----\nMIIB\n")
    with pytest.raises(ConfigError, match=r"opened on line \d+ has no END line$"):
        EvidenceConfig(c2pa_trust_list=str(unterminated))


# Stripped and remote manifests ------------------------------------------------------------------


def test_xmp_pointing_at_a_missing_embedded_manifest_means_stripped(tmp_path):
    pointer = "self#jumbf=/c2pa/urn:uuid:6f1a3c1e-2b9d-4d8e-9d0a-1f2e3d4c5b6a"
    xmp = xmp_packet({"dcterms:provenance": pointer})
    path = write(tmp_path / "stripped.jpg", encode(small_photo(), "JPEG", xmp=xmp))
    (finding,) = c2pa_findings(collect_evidence(path, EvidenceConfig(c2pa_remote=True)))
    assert (finding.claim, finding.strength) == ("none", "weak")
    assert finding.detail == (
        f"C2PA credentials were stripped: the XMP points at an embedded manifest ({pointer}) that is no longer in the file"
    )
    assert "remote" not in finding.detail
    bands = default_bands(0.5)
    assert [fuse([finding], s, 0.5, bands).verdict for s in (0.05, 0.5, 0.95)] == ["likely-real", "inconclusive", "likely-ai"]


class _Manifests(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` by path; ``/redirect`` sends to ``server.redirect``; records each path asked for."""

    def do_GET(self) -> None:  # noqa: N802  (the name http.server dispatches to)
        self.server.hits.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", self.server.redirect)
            self.end_headers()
            return
        body = self.server.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def manifest_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Manifests)
    server.files, server.hits, server.redirect = {}, [], ""
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_remote_manifest_is_fetched_only_with_c2pa_remote_and_within_the_caps(tmp_path, manifest_server, trust):
    url = manifest_server.base + "/m.c2pa"
    asset, store = sign(encode(small_photo(), "JPEG"), "image/jpeg", ai_manifest("Midjourney"), remote_url=url)
    manifest_server.files["/m.c2pa"] = store
    path = write(tmp_path / "remote.jpg", asset)
    (off,) = collect_evidence(path, trust)
    assert off.detail == f"refused: the C2PA manifest is stored remotely ({url}) and is never fetched"
    assert manifest_server.hits == []
    fetching = EvidenceConfig(c2pa_trust=trust.c2pa_trust, c2pa_remote=True)
    (finding,) = collect_evidence(path, fetching)
    assert (finding.claim, finding.strength, finding.generator) == ("ai", "strong", "Midjourney")
    assert finding.detail.startswith("remote C2PA manifest (valid, signed by Evidence Test Signer / Evidence Tests, trusted by")
    assert manifest_server.hits == ["/m.c2pa"]
    capped = EvidenceConfig(c2pa_remote=True, max_remote_bytes=len(store) - 1)
    (too_big,) = collect_evidence(path, capped)
    assert too_big.detail == f"too-large: remote C2PA manifest at {url} is {len(store)} bytes, over {len(store) - 1}"
    other = small_photo()[::-1].copy()  # a manifest signed for other pixels, served for this file
    _, foreign = sign(encode(other, "JPEG"), "image/jpeg", ai_manifest("Midjourney"), remote_url=url)
    manifest_server.files["/m.c2pa"] = foreign
    (mismatch,) = collect_evidence(path, fetching)
    assert (mismatch.claim, mismatch.strength) == ("tampered", "strong")
    assert "remote C2PA manifest fails validation (assertion.dataHash.mismatch)" in mismatch.detail


def test_remote_manifests_are_fetched_over_http_only(tmp_path, manifest_server):
    fetching = EvidenceConfig(c2pa_remote=True)
    for pointer, expected in [
        ("file:///etc/passwd", "refused: remote C2PA manifest at file:///etc/passwd: only http and https URLs are fetched"),
        (
            manifest_server.base + "/missing.c2pa",
            f"unreadable: remote C2PA manifest at {manifest_server.base}/missing.c2pa: HTTP 404",
        ),
        (
            manifest_server.base + "/redirect",
            "refused: remote C2PA manifest at ftp://127.0.0.1/m.c2pa: only http and https URLs are fetched",
        ),
    ]:
        manifest_server.redirect = "ftp://127.0.0.1/m.c2pa"  # urllib itself follows ftp
        path = write(tmp_path / "pointer.jpg", encode(small_photo(), "JPEG", xmp=xmp_packet({"dcterms:provenance": pointer})))
        (finding,) = c2pa_findings(collect_evidence(path, fetching))
        assert (finding.claim, finding.detail) == ("error", expected)


# Credentials in files that are not images --------------------------------------------------------


def wav_bytes(frames: int = 800) -> bytes:
    """A tenth of a second of 8 kHz mono 16-bit silence."""
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\x00\x00" * frames)
    return out.getvalue()


def test_a_signed_wav_gets_an_ok_row_with_the_evidence_verdict_and_no_score(tmp_path, tiny_checkpoint):
    from typer.testing import CliRunner

    from aigdetect.cli import app

    folder = tmp_path / "media"
    signed, _ = sign(wav_bytes(), "audio/wav", ai_manifest("Suno"))
    write(folder / "song.wav", signed)
    edited = manifest([{"action": "c2pa.created", "digitalSourceType": CAPTURE_SOURCE}, {"action": "c2pa.trimmed"}])
    write(folder / "interview.wav", sign(wav_bytes(), "audio/wav", edited)[0])
    write(folder / "plain.wav", wav_bytes())
    write(folder / "notes.txt", b"not an image")
    write(folder / "broken.pdf", b"%PDF-1.4\n no objects, no cross-reference table")
    scan = ["scan", str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--format", "jsonl"]
    result = CliRunner().invoke(app, scan)
    assert result.exit_code == 0, result.output
    rows = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    song = rows["song.wav"]
    assert (song["status"], song["verdict"], song["generator"], song["score"], song["model_verdict"]) == (
        "ok", "ai-generated", "Suno", None, None,
    )  # fmt: skip
    assert (song["format"], song["width"], song["height"], song["error_reason"]) == ("WAV", None, None, None)
    assert [(f["source"], f["claim"]) for f in song["evidence"]] == [("c2pa", "ai")]
    interview = rows["interview.wav"]
    assert (interview["status"], interview["verdict"], interview["score"]) == ("ok", "inconclusive", None)
    assert interview["evidence"][0]["claim"] == "camera" and "untrusted" in interview["evidence"][0]["detail"]
    for name in ("plain.wav", "notes.txt", "broken.pdf"):  # no credentials: the row is what it always was
        assert (rows[name]["status"], rows[name]["error_reason"], rows[name]["verdict"]) == ("error", "unsupported", None)
    inspected = CliRunner().invoke(app, ["inspect", str(folder / "song.wav"), "--checkpoint", str(tiny_checkpoint), "--json"])
    (report,) = json.loads(inspected.stdout)
    assert (report["verdict"], report["score"], report["model_verdict"], report["format"]) == ("ai-generated", None, None, "WAV")
    assert [(c["where"], c["trust"]) for c in report["c2pa"]] == [("embedded", "untrusted")]
    assert report["c2pa_trust"] == "C2PA Trust List of 2026-08-05, C2PA TSA Trust List of 2026-08-05"
    out, summary, html = tmp_path / "rows.jsonl", tmp_path / "summary.json", tmp_path / "report.html"
    named = [*scan, "-o", str(out), "--summary-json", str(summary), "--html", str(html), "--c2pa-trust-list", str(SDK_ROOTS)]
    assert CliRunner().invoke(app, named).exit_code == 0
    lists = "anchors in test_cert_root_bundle.pem, C2PA TSA Trust List of 2026-08-05"
    assert json.loads(summary.read_text())["c2pa_trust"] == lists
    assert f'<dd id="c2pa-trust">{lists}</dd>' in html.read_text()
    off = CliRunner().invoke(app, [*scan, "--no-evidence"])
    assert {json.loads(line)["error_reason"] for line in off.stdout.splitlines()} == {"unsupported"}


def test_media_files_are_recognised_by_their_first_bytes():
    from aigdetect.evidence.media import read_media_evidence, sniff

    assert sniff(b"\x00\x00\x00\x18ftypqt  \x00\x00\x00\x00") == ("MOV", "video/quicktime")
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") == ("WAV", "audio/wav")
    assert sniff(b"%PDF-1.7\n") == ("PDF", "application/pdf")
    assert sniff(b"GIF89a") is None
    with open(ASSETS / "CA.jpg", "rb") as handle:  # an image is not this reader's business
        assert read_media_evidence(handle, None, EvidenceConfig()) is None


@pytest.mark.parametrize(
    "trusted, codes, state",
    [
        (True, [], "trusted"),
        (False, ["signingCredential.untrusted"], "untrusted"),
        (False, ["signingCredential.untrusted", "signingCredential.expired"], "expired"),
        (False, ["claimSignature.outsideValidity"], "expired"),
        (False, ["signingCredential.expired", "signingCredential.ocsp.revoked"], "revoked"),
        (False, ["signingCredential.invalid", "timeStamp.untrusted"], "untrusted"),
        (False, ["assertion.dataHash.mismatch"], "untrusted"),
    ],
)
def test_trust_states_from_validation_codes(trusted, codes, state):
    from aigdetect.evidence.validation import is_trust_code, trust_state

    assert trust_state(trusted, codes) == state
    integrity = ["assertion.dataHash.mismatch", "claimSignature.mismatch", "assertion.missing", "timeStamp.mismatch"]
    assert not any(is_trust_code(code) for code in integrity)
    assert all(is_trust_code(c) for c in ["signingCredential.expired", "signingCredential.revoked", "timeStamp.untrusted"])


def test_every_trust_list_file_is_package_data():
    import fnmatch

    import tomllib

    from aigdetect.evidence.trustlists import TRUST_DIR

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = declared["package-data"]["aigdetect.evidence"]
    shipped = sorted(f.name for f in TRUST_DIR.iterdir())
    assert shipped == ["ATTRIBUTION.md", "C2PA-TRUST-LIST.pem", "C2PA-TSA-TRUST-LIST.pem", "lists.json"]
    assert all(any(fnmatch.fnmatch(f"trust/{name}", p) for p in patterns) for name in shipped)
