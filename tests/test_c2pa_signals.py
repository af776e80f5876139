"""The C2PA asset signals against the rubric evaluator's own outputs, the chain fusion reads, and
CAWG identities, on the C2PA SDK's fixtures and on hand-made crJSON (tests/assets/c2pa_signals/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aigdetect.evidence import collect_evidence, default_bands, fuse, summarize_c2pa
from aigdetect.evidence.c2pa_signals import (
    INCEPTION_SIGNALS,
    TRANSFORMATION_SIGNALS,
    chain,
    chain_origin,
    manifest_signals,
    trust_state,
)

ASSETS = Path(__file__).parent / "assets"
REFERENCES = sorted((ASSETS / "c2pa_signals").glob("*/*.crjson.json"))
FIXTURES = ASSETS / "c2pa" / "signals"
EVALUATOR_PSEUDO_ONLY = {"ocsp.jpg": 1}
"""Pseudo manifests the evaluator makes for 1.x ingredients whose real manifest aigdetect follows."""


def reference(path: Path) -> list[list[str]]:
    """The evaluator's signals per manifest, in its order, with the rubric's prefixes stripped."""
    output = json.loads(path.with_name(path.name.replace(".crjson.json", ".signals.json")).read_text())
    assert output["rubricName"] == "C2PA Asset Signals Rubric (Local)" and output["rubricVersion"] == "1.0"
    return [
        sorted(s["trait"].split(":signal_", 1)[1] for s in m["localInceptions"] + m["localTransformations"])
        for m in output["manifests"]
    ]


@pytest.mark.parametrize("path", REFERENCES, ids=[p.name.removesuffix(".crjson.json") for p in REFERENCES])
def test_signals_equal_the_rubric_evaluators(path):
    expected = reference(path)
    found = [sorted(entry.signals) for entry in chain(json.loads(path.read_text()))]
    extra = EVALUATOR_PSEUDO_ONLY.get(path.name.removesuffix(".crjson.json"), 0)
    assert found == expected[: len(expected) - extra]


def test_the_references_raise_every_signal_and_come_from_the_sdk_and_by_hand():
    seen = {s for path in REFERENCES for m in reference(path) for s in m}
    assert seen == set(INCEPTION_SIGNALS) | set(TRANSFORMATION_SIGNALS)
    assert {p.parent.name for p in REFERENCES} == {"sdk", "synthetic", "signed"}
    assert len([p for p in REFERENCES if p.parent.name == "sdk"]) == 18


def test_the_evaluator_saw_a_pseudo_manifest_where_a_1x_ingredient_has_a_real_one():
    store = json.loads((ASSETS / "c2pa_signals" / "sdk" / "ocsp.jpg.crjson.json").read_text())
    entries = chain(store)
    assert [(e.active, e.pseudo, e.signer) for e in entries] == [
        (True, False, "Adobe C2PA"),
        (False, False, "Adobe Firefly C2PA Stage"),
    ]
    assert entries[0].ingredients == ((entries[1].label, "componentOf"),)
    assert reference(ASSETS / "c2pa_signals" / "sdk" / "ocsp.jpg.crjson.json")[2] == ["partlyGenAICreation"]


def synthetic(name: str) -> dict:
    return json.loads((ASSETS / "c2pa_signals" / "synthetic" / f"{name}.crjson.json").read_text())


@pytest.mark.parametrize(
    "name, origin",
    [
        ("fully_genai", ("ai", ("fullyGenAIMedia",))),
        ("chain_capture_from_genai_parent", ("ai", ("fullyGenAIMedia",))),  # a generated parent, edited since
        ("v1_actions_only", ("ai", ("fullyGenAIMedia",))),  # fusion reads 1.x actions, the rubric does not
        ("capture_generative_fill", ("ai-edited", ("perceptibleGenAI",))),
        ("partly_genai", ("ai-edited", ("partlyGenAICreation",))),
        ("composite", ("ai-edited", ("compositionMayContainGenAI",))),
        ("flat_ingredient_with_source_type", ("ai-edited", ("fullyGenAIMedia", "perceptibleGenAI"))),  # a component
        ("computational_capture_edits", (None, ())),  # digitalArt: possibly GenAI, not decisive
        ("not_exact_source_types", (None, ())),  # algorithmicMedia, and a capture URI with a leading space
        ("unknown_provenance_ingredient", (None, ())),
    ],
)
def test_what_the_chain_says_for_fusion(name, origin):
    assert chain_origin(chain(synthetic(name), legacy_actions=True)) == origin


def test_the_rubric_reads_only_v2_actions_and_fusion_reads_both():
    manifest = synthetic("v1_actions_only")["manifests"][0]
    assert manifest_signals(manifest) == ("ambiguousActions",)
    assert manifest_signals(manifest, legacy_actions=True) == ("fullyGenAIMedia", "ambiguousActions")


@pytest.mark.parametrize(
    "results, state",
    [
        ({"success": [{"code": "signingCredential.trusted"}]}, "trusted"),
        ({"failure": [{"code": "signingCredential.untrusted"}]}, "untrusted"),
        ({"failure": [{"code": "signingCredential.untrusted"}, {"code": "signingCredential.expired"}]}, "expired"),
        ({"failure": [{"code": "signingCredential.expired"}, {"code": "signingCredential.ocsp.revoked"}]}, "revoked"),
        ({"success": [{"code": "claimSignature.validated"}]}, "untrusted"),
        ({"failure": "signingCredential.untrusted"}, "untrusted"),
        (None, "untrusted"),
    ],
)
def test_trust_from_the_status_codes(results, state):
    assert trust_state(results) == state
    assert trust_state(None, results) == state


@pytest.mark.parametrize(
    "store",
    [
        None, [], {"manifests": "x"}, {"manifests": [1, "a", None]},
        {"manifests": [{"label": "a", "assertions": {"c2pa.actions.v2": {"actions": "all"}}}]},
        {"manifests": [{"label": "a", "assertions": {"c2pa.actions.v2": {"actions": [
            {"action": ["c2pa.created"], "digitalSourceType": {"x": 1}}, {"action": 7}, "text"]}}}]},
        {"manifests": [{"label": "a", "assertions": {"c2pa.ingredient.v3": {"activeManifest": {"url": 5}}}}]},
    ],
)  # fmt: skip
def test_hostile_stores_give_no_signal_of_substance(store):
    entries = chain(store)
    assert all(set(e.signals) <= {"ambiguousActions", "mediaUnknownProvenance", "perceptibleNonGenAI"} for e in entries)
    assert chain_origin(chain(store, legacy_actions=True)) == (None, ())


def test_inspect_summary_lists_every_manifest_of_a_real_chain():
    (summary,) = summarize_c2pa(FIXTURES / "ocsp.jpg")
    manifests = summary["manifests"]
    assert [(m["active"], m["pseudo"], m["signer"], m["trust"], m["signals"]) for m in manifests] == [
        (True, False, "Adobe C2PA", "untrusted", ["ambiguousActions"]),
        (False, False, "Adobe Firefly C2PA Stage", "untrusted", ["ambiguousActions"]),
    ]
    assert manifests[0]["label"] == "adobe:urn:uuid:f3a46a78-8103-4e04-9f98-abcf03ebab19"
    assert manifests[0]["ingredients"] == [{"label": manifests[1]["label"], "relationship": "componentOf"}]
    assert json.loads(json.dumps(summary)) == summary


def test_a_firefly_image_placed_in_a_photoshop_composite_is_ai_edited():
    finding, ingredient = collect_evidence(FIXTURES / "ocsp.jpg")
    assert (finding.claim, finding.strength, finding.generator) == ("ai-edited", "moderate", "Adobe Firefly")
    assert finding.detail.endswith(
        "records generative parts or edits in its chain (fullyGenAIMedia, partlyGenAICreation, perceptibleGenAI);"
        " claim generator Adobe Photoshop 26.9.0; signals: partlyGenAICreation, perceptibleGenAI"
    )
    assert (ingredient.claim, ingredient.strength, ingredient.detail) == (
        "none",
        "weak",
        "C2PA ingredient manifest (componentOf, signed by Adobe Firefly C2PA Stage, untrusted), signals: fullyGenAIMedia;"
        " urn:uuid:83875007-1e81-4027-847f-4137f13027db",
    )
    fused = fuse([finding, ingredient], 0.01, 0.5, default_bands(0.5))
    assert (fused.verdict, fused.generator) == ("ai-edited", "Adobe Firefly")


def test_algorithmic_media_alone_is_not_ai():
    findings = collect_evidence(FIXTURES / "C.jpg")
    assert [(f.source, f.claim) for f in findings] == [("c2pa", "none")]
    assert "declares no digital source type" in findings[0].detail
    assert fuse(findings, 0.05, 0.5, default_bands(0.5)).verdict == "likely-real"


def test_an_x509_identity_assertion_is_decoded():
    (summary,) = summarize_c2pa(FIXTURES / "C_with_CAWG_data.jpg")
    assert summary["identities"] == [
        {
            "manifest": "urn:c2pa:822f2ec0-ef27-4d95-88b4-74586c12873d",
            "label": "cawg.identity",
            "credential": "X.509 certificate",
            "who": ["C2PA Signer / C2PA Test Signing Cert"],
            "valid": True,
            "trusted": False,
            "codes": ["cawg.x509.signature.validated", "cawg.identity.well-formed", "cawg.x509.credential.untrusted"],
        }
    ]
    assert summary["validation"] == "valid"  # decoding the identity changes nothing in the claim's validation
    manifest, identity = collect_evidence(FIXTURES / "C_with_CAWG_data.jpg")
    assert (manifest.claim, identity.claim, identity.strength) == ("camera", "none", "weak")
    assert identity.detail == "CAWG identity (X.509 certificate, valid, untrusted): C2PA Signer / C2PA Test Signing Cert"


def test_an_identity_claims_aggregation_names_the_verified_identities():
    (summary,) = summarize_c2pa(FIXTURES / "ica_success.jpg")
    (identity,) = summary["identities"]
    assert (identity["credential"], identity["valid"], identity["trusted"]) == ("identity claims aggregation", True, False)
    assert identity["who"] == [
        "First-Name Last-Name (cawg.document_verification, via Example ID Verifier)",
        "Example Affiliated Organization (cawg.affiliation)",
        "Silly Cats 929 (cawg.social_media, via Example Social Network)",
        "username (cawg.crypto_wallet, via Example Crypto Wallet)",
    ]
    assert identity["codes"] == ["cawg.ica.untrusted_issuer"]
    findings = collect_evidence(FIXTURES / "ica_success.jpg")
    assert fuse(findings, 0.5, 0.5, default_bands(0.5)).verdict == "inconclusive"  # identities never decide
