"""CAWG identity assertions (``cawg.identity``): who vouches for a manifest, with which credential, and
whether it validated. Reported, never decisive: fusion does not read them.

An identity assertion binds a named actor to some of the manifest's assertions. Its
``signer_payload.sig_type`` says which credential signs it: an X.509 certificate
(``cawg.x509.cose``: the actor is the certificate's subject) or an identity claims aggregation
credential (``cawg.identity_claims_aggregation``: a W3C verifiable credential whose
``verifiedIdentities`` list names, user names and the providers that verified them). c2pa-python
decodes them when ``core.decode_identity_assertions`` is on and reports ``cawg.*`` status codes
against each assertion's URI: a ``failure`` code there makes it invalid, except an untrusted signer
or issuer, which leaves it valid and untrusted (as for the claim's own signer). A second, decoding read is
made only when a store holds one, so that a bad identity never changes the claim's own validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .findings import clean_text

_KINDS = {
    "cawg.x509.cose": "X.509 certificate",
    "cawg.identity_claims_aggregation": "identity claims aggregation",
}
_UNTRUSTED = frozenset({"cawg.x509.credential.untrusted", "cawg.ica.untrusted_issuer"})
_MAX_IDENTITIES = 16
_MAX_NAMES = 8


@dataclass(frozen=True)
class Identity:
    """One identity assertion of one manifest (all text cleaned)."""

    manifest: str
    label: str
    credential: str
    who: tuple[str, ...]
    valid: bool | None
    trusted: bool | None
    codes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "label": self.label,
            "credential": self.credential,
            "who": list(self.who),
            "valid": self.valid,
            "trusted": self.trusted,
            "codes": list(self.codes),
        }

    def sentence(self) -> str:
        state = "valid" if self.valid else "invalid" if self.valid is False else "not validated"
        state += ", untrusted" if self.trusted is False else ""
        return f"CAWG identity ({self.credential}, {state}): {', '.join(self.who) or 'no name given'}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int = 80) -> str | None:
    return clean_text(value, limit) or None if isinstance(value, str) else None


def _named(identity: dict[str, Any]) -> str | None:
    """``name (cawg.social_media, via Provider)`` for one verified identity; an affiliation is named by
    the organisation that vouches for it."""
    kind = _text(identity.get("type"), 40)
    provider = _text(_dict(identity.get("provider")).get("name"))
    name = _text(identity.get("name")) or _text(identity.get("username"))
    if not name and kind == "cawg.affiliation" and provider:
        name, provider = provider, None
    if not name:
        return None
    how = ", ".join(p for p in (kind, f"via {provider}" if provider else None) if p)
    return f"{name} ({how})" if how else name


def _who(data: dict[str, Any], credential: str) -> list[str]:
    if credential == "cawg.identity_claims_aggregation":
        listed = data.get("verifiedIdentities")
        found = [_named(i) for i in (listed if isinstance(listed, list) else [])[:_MAX_NAMES] if isinstance(i, dict)]
        return [f for f in found if f]
    info = _dict(data.get("signature_info"))
    name, issuer = _text(info.get("common_name")), _text(info.get("issuer"))
    return [f"{name} / {issuer}" if name and issuer and issuer != name else name or issuer] if name or issuer else []


def _status(store: dict[str, Any]) -> list[dict[str, Any]]:
    """Every status entry of the store, active manifest and ingredients', each with ``kind`` added."""
    results = _dict(store.get("validation_results"))
    blocks = [_dict(results.get("activeManifest"))]
    deltas = results.get("ingredientDeltas")
    blocks += [_dict(_dict(d).get("validationDeltas")) for d in (deltas if isinstance(deltas, list) else [])]
    return [
        {**item, "kind": kind}
        for block in blocks
        for kind in ("success", "informational", "failure")
        for item in (block.get(kind) if isinstance(block.get(kind), list) else [])
        if isinstance(item, dict) and isinstance(item.get("code"), str) and isinstance(item.get("url"), str)
    ]


def identities(store: Any) -> tuple[Identity, ...]:
    """The identity assertions of a store read with ``decode_identity_assertions`` on (``Reader.json()``)."""
    manifests = _dict(_dict(store).get("manifests"))
    status = _status(_dict(store))
    found: list[Identity] = []
    for label, manifest in list(manifests.items())[:_MAX_IDENTITIES]:
        assertions = _dict(manifest).get("assertions")
        for assertion in assertions if isinstance(assertions, list) else []:
            name = _dict(assertion).get("label")
            if not isinstance(name, str) or not name.startswith("cawg.identity"):
                continue
            data = _dict(assertion.get("data"))
            sig_type = _dict(data.get("signer_payload")).get("sig_type") or _dict(data.get("c2paAsset")).get("sig_type")
            credential = _KINDS.get(sig_type, _text(sig_type, 60) or "unknown credential")
            uri = f"/{label}/c2pa.assertions/{name}"
            mine = [s for s in status if s["url"].endswith(uri) and s["code"].startswith("cawg.")]
            failed = [s for s in mine if s["kind"] == "failure" and s["code"] not in _UNTRUSTED]
            untrusted = any(s["code"] in _UNTRUSTED for s in mine)
            codes = tuple(dict.fromkeys(clean_text(s["code"], 60) for s in mine))
            found.append(
                Identity(
                    manifest=clean_text(str(label), 200),
                    label=clean_text(name, 60),
                    credential=credential,
                    who=tuple(_who(data, sig_type)),
                    valid=False if failed else True if mine else None,
                    trusted=False if untrusted else None,
                    codes=codes[:_MAX_NAMES],
                )
            )
    return tuple(found[:_MAX_IDENTITIES])


def has_identity(crjson: Any) -> bool:
    """Whether any manifest of a crJSON store holds an identity assertion (worth a decoding read)."""
    manifests = _dict(crjson).get("manifests")
    return any(
        isinstance(m, dict) and any(str(k).startswith("cawg.identity") for k in _dict(m.get("assertions")))
        for m in (manifests if isinstance(manifests, list) else [])
    )
