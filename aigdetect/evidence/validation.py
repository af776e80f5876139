"""What the C2PA library's validation codes say about a manifest: its integrity, and its signer's trust.

*Integrity* fails when a hash or the signature does not match, or a required assertion is broken or
missing: the asset or its credentials changed after signing. *Trust* is whether an anchor vouches for
the signer, one of ``TRUST_STATES``: ``trusted``; ``untrusted`` (no listed authority issued the
certificate, or it is not valid for signing); ``expired`` (the certificate expired and no trusted
time-stamp shows the signature was made in time); ``revoked``. The library reports both kinds among
its failure codes, and even calls a store with an expired signer ``Invalid``; here they are told
apart, so that a trust problem lowers a finding's strength and never reads as tampering.
"""

from __future__ import annotations

from typing import Any

TRUST_STATES: tuple[str, ...] = ("trusted", "untrusted", "expired", "revoked")
_TRUST_CODES = {
    "signingCredential.revoked": "revoked",
    "signingCredential.ocsp.revoked": "revoked",
    "signingCredential.expired": "expired",
    "claimSignature.outsideValidity": "expired",
}
"""Validation codes about the signer's standing, not the file's integrity, and the trust state each means;
any other ``signingCredential.*`` or ``timeStamp.*`` code (untrusted, invalid for signing, OCSP or
time-stamp trouble) means ``untrusted``."""
_TRUST_PREFIXES = ("signingCredential.", "timeStamp.")
_NOT_TRUST = frozenset({"timeStamp.mismatch", "timeStamp.malformed"})
"""Time-stamp codes that say the time-stamp does not belong to this signature: integrity."""


def is_trust_code(code: str) -> bool:
    """Whether a validation failure code is about the signer's trust rather than the file's integrity."""
    return code in _TRUST_CODES or (code.startswith(_TRUST_PREFIXES) and code not in _NOT_TRUST)


def trust_state(trusted: bool, codes: list[str] | tuple[str, ...]) -> str:
    """``trusted``, or the worst trust problem among the failure ``codes`` (revoked, expired, untrusted)."""
    if trusted:
        return "trusted"
    found = {_TRUST_CODES.get(code, "untrusted") for code in codes if is_trust_code(code)}
    return next((state for state in ("revoked", "expired") if state in found), "untrusted")


def codes(results: Any) -> tuple[list[str], list[str]]:
    """(failure codes, success codes) of one ``validation_results`` entry (``activeManifest``)."""
    lists = []
    for key in ("failure", "success"):
        items = results.get(key) if isinstance(results, dict) else None
        lists.append([item["code"] for item in items or [] if isinstance(item, dict) and isinstance(item.get("code"), str)])
    return lists[0], lists[1]


def manifest_trust(store: dict[str, Any], label: str) -> str:
    """The trust state of any manifest of a store (``Reader.json()``): the active one or an ingredient's.

    The active manifest's comes from the store's validation results; an ingredient manifest's from
    the results recorded with the ingredient that carries it (``signingCredential.trusted`` among its
    successes means trusted).
    """
    results = store.get("validation_results") if isinstance(store.get("validation_results"), dict) else {}
    if label == store.get("active_manifest"):
        failed, _ = codes(results.get("activeManifest"))
        return trust_state(store.get("validation_state") == "Trusted", failed)
    manifests = store.get("manifests") if isinstance(store.get("manifests"), dict) else {}
    for manifest in manifests.values():
        ingredients = manifest.get("ingredients") if isinstance(manifest, dict) else None
        for ingredient in ingredients if isinstance(ingredients, list) else []:
            if isinstance(ingredient, dict) and ingredient.get("active_manifest") == label:
                failed, passed = codes((ingredient.get("validation_results") or {}).get("activeManifest"))
                return trust_state("signingCredential.trusted" in passed and not failed, failed)
    return "untrusted"
