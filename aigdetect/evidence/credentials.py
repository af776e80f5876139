"""C2PA Content Credentials: read the manifest store with c2pa-python, offline, and say what it claims.

Reading is strictly local. The library is given settings that turn off every fetch it can make
(remote manifests, OCSP) and an empty list of allowed network hosts on top, so a manifest that
points at a URL is reported, never followed (``EvidenceConfig.c2pa_remote`` fetches it here, under
caps, see ``remote``). Signatures and hashes are always verified, and the signing certificate is
checked against the trust anchors of ``trustlists`` (the bundled C2PA Trust List by default).

Integrity and trust are told apart (see ``validation``): only an integrity failure is tampering;
an untrusted, expired or revoked signer is the report's ``trust`` and only lowers the strength.

What a manifest store becomes (one finding per store, embedded, sidecar or remote):

==================================================  =========  =================================
validation, content                                 claim      strength
==================================================  =========  =================================
an integrity failure (hash, signature, assertion)   tampered   strong (a cryptographic fact)
fullyGenAIMedia on the line of parents (asset       ai         strong if trusted, else moderate
  signals, ``c2pa_signals``), or else an AI
  source type, an AI ingredient or a known AI tool
generative parts or edits in the chain              ai-edited  strong if trusted, else moderate
  (partlyGenAICreation, compositionMayContainGenAI,
  perceptibleGenAI, or a GenAI component)
a capture source type, or created by a known camera camera     strong if trusted, else weak
editing actions, no AI                              edited     strong if trusted, else weak
none of these                                       none       weak
==================================================  =========  =================================

Each store's finding is followed by weak ``none`` findings that decide nothing: one per ingredient
manifest of its chain (relationship, signer, trust, signals) and one per CAWG identity (``cawg``).

The asymmetry is deliberate: anyone can sign with a home-made certificate, so an untrusted
signature proves nothing about the signer; but a manifest that declares AI states something against
its maker's interest, while one that declares a camera capture is exactly what a forger would write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from ..errors import InputFileError
from ..fileio import open_input, read_capped
from . import c2pa_signals, cawg, signatures
from .boundedjson import loads
from .config import EvidenceConfig
from .containers import C2PA_MIME, Layout
from .findings import Finding, MetadataError, clean_text
from .sourcetypes import origin, type_name
from .validation import codes, is_trust_code, manifest_trust

SIDECAR_SUFFIX = ".c2pa"
_NOT_EDITS = frozenset(
    {"c2pa.created", "c2pa.opened", "c2pa.placed", "c2pa.published", "c2pa.converted", "c2pa.transcoded", "c2pa.repackaged"}
)
"""Actions that make or carry an asset without changing what it shows."""
_MAX_MANIFESTS = 64
_STATES = {"Trusted": "trusted", "Valid": "valid", "Invalid": "invalid"}
_TRUST_WORDS = {
    "trusted": "trusted",
    "untrusted": "untrusted",
    "expired": "certificate expired",
    "revoked": "certificate revoked",
}
_LABELS = {"embedded": "C2PA manifest", "sidecar": "C2PA sidecar manifest", "remote": "remote C2PA manifest"}
_INPUT_REASONS = {"symlink": "refused", "unsupported": "unsupported", "too-large": "too-large"}


def c2pa_settings(config: EvidenceConfig, *, extra_anchors: bool = True) -> dict[str, Any]:
    """The c2pa-python settings for reading: verify everything against the anchors, fetch nothing."""
    trust = config.anchors.settings()
    if not extra_anchors:
        trust.pop("user_anchors", None)
    settings: dict[str, Any] = {
        "version": 1,
        "verify": {
            "verify_after_reading": True,
            "verify_trust": True,
            "remote_manifest_fetch": False,
            "ocsp_fetch": False,
        },
        "core": {"allowed_network_hosts": [], "decode_identity_assertions": False},
        "trust": trust,
    }
    return settings


@dataclass(frozen=True)
class Action:
    action: str
    source_type: str | None
    agent: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "digitalSourceType": self.source_type, "softwareAgent": self.agent}


@dataclass(frozen=True)
class ManifestReport:
    """The active manifest of one store, as far as the origin of the image goes (all text cleaned)."""

    where: str  # "embedded", "sidecar" or "remote"
    state: str  # "trusted", "valid" or "invalid" (an integrity failure)
    failures: tuple[str, ...]
    signer: str | None
    issuer: str | None
    claim_generator: str | None
    generator_name: str | None
    title: str | None
    actions: tuple[Action, ...]
    ingredients: int
    ingredient_ai: tuple[str, ...] = field(default=())
    chain: tuple[c2pa_signals.ChainManifest, ...] = field(default=())
    genai: tuple[str | None, tuple[str, ...]] = field(default=(None, ()))
    read_for_fusion: tuple[c2pa_signals.ChainManifest, ...] = field(default=())
    identities: tuple[cawg.Identity, ...] = field(default=())
    trust: str = "untrusted"  # one of TRUST_STATES
    vouched_by: str | None = None  # the trust list that vouched for a trusted signer

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary for ``inspect --json``."""
        return {
            "where": self.where,
            "validation": self.state,
            "trusted": self.state == "trusted",
            "trust": self.trust,
            "vouched_by": self.vouched_by,
            "failures": list(self.failures),
            "signer": {"common_name": self.signer, "issuer": self.issuer},
            "claim_generator": self.claim_generator,
            "title": self.title,
            "actions": [a.to_dict() for a in self.actions],
            "ingredients": self.ingredients,
            "ingredient_ai_source_types": list(self.ingredient_ai),
            "manifests": [m.to_dict() for m in self.chain],
            "identities": [i.to_dict() for i in self.identities],
        }


def _text(value: Any, limit: int = 120) -> str | None:
    return clean_text(value, limit) or None if isinstance(value, str) else None


def _claim_generator(manifest: dict[str, Any]) -> tuple[str | None, str | None]:
    """(name and version, name) of the tool that wrote the claim."""
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        name, version = _text(info[0].get("name")), _text(info[0].get("version"), 40)
        if name:
            return (f"{name} {version}" if version else name), name
    legacy = _text(manifest.get("claim_generator"))
    return legacy, legacy.split("/", 1)[0] if legacy else None


def _agent(value: Any) -> str | None:
    return _text(value.get("name")) if isinstance(value, dict) else _text(value)


def _actions(manifest: dict[str, Any]) -> list[Action]:
    found = []
    assertions = manifest.get("assertions")
    for assertion in assertions if isinstance(assertions, list) else []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data")
        listed = data.get("actions") if isinstance(data, dict) else None
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, dict) and isinstance(item.get("action"), str):
                source = item.get("digitalSourceType")
                name = type_name(source) if isinstance(source, str) else None
                found.append(Action(clean_text(item["action"], 60), name, _agent(item.get("softwareAgent"))))
    return found


def _ingredient_ai(store: dict[str, Any], manifest: dict[str, Any]) -> tuple[list[str], int]:
    """AI source types declared in the ingredients' own manifests (the provenance chain), and the ingredient count."""
    manifests = store.get("manifests") if isinstance(store.get("manifests"), dict) else {}
    found: list[str] = []
    seen: set[str] = set()
    queue = [manifest]
    count = None
    while queue and len(seen) < _MAX_MANIFESTS:
        current = queue.pop()
        ingredients = current.get("ingredients") if isinstance(current.get("ingredients"), list) else []
        count = len(ingredients) if count is None else count
        for ingredient in ingredients:
            label = ingredient.get("active_manifest") if isinstance(ingredient, dict) else None
            if isinstance(label, str) and label not in seen and isinstance(manifests.get(label), dict):
                seen.add(label)
                parent = manifests[label]
                found += [a.source_type for a in _actions(parent) if a.source_type and origin(a.source_type) == "ai"]
                queue.append(parent)
    return sorted(set(found)), count or 0


def interpret(store: Any, where: str, crjson: Any, identities: tuple[cawg.Identity, ...] = ()) -> ManifestReport:
    """The report for a manifest store as c2pa-python's ``Reader.json()`` gives it, with its asset
    signals from the same store as ``Reader.crjson()`` gives it, and its decoded identities.

    Raises:
        MetadataError: ``malformed`` when the store has no usable active manifest or validation state.
    """
    if not isinstance(store, dict) or not isinstance(store.get("manifests"), dict):
        raise MetadataError("malformed", "C2PA manifest store without manifests")
    manifest = store["manifests"].get(store.get("active_manifest"))
    if not isinstance(manifest, dict):
        raise MetadataError("malformed", "C2PA manifest store without an active manifest")
    state = _STATES.get(store.get("validation_state"))
    if state is None:
        raise MetadataError("malformed", f"C2PA validation state {store.get('validation_state')!r} is not known")
    results = store.get("validation_results")
    failed, _ = codes(results.get("activeManifest") if isinstance(results, dict) else None)
    failures = tuple(clean_text(code, 80) for code in failed)
    if state == "invalid" and failures and all(is_trust_code(code) for code in failures):
        state = "valid"  # the library calls an expired or revoked signer invalid: a trust state, not tampering
    signature = manifest.get("signature_info") if isinstance(manifest.get("signature_info"), dict) else {}
    ingredient_ai, ingredients = _ingredient_ai(store, manifest)
    claim_generator, generator_name = _claim_generator(manifest)
    read_for_fusion = c2pa_signals.chain(crjson, legacy_actions=True)
    return ManifestReport(
        where=where,
        state=state,
        failures=failures,
        signer=_text(signature.get("common_name")),
        issuer=_text(signature.get("issuer")),
        claim_generator=claim_generator,
        generator_name=generator_name,
        title=_text(manifest.get("title")),
        actions=tuple(_actions(manifest)),
        ingredients=ingredients,
        ingredient_ai=tuple(ingredient_ai),
        chain=c2pa_signals.chain(crjson),
        genai=c2pa_signals.chain_origin(read_for_fusion),
        read_for_fusion=read_for_fusion,
        identities=identities,
        trust=manifest_trust(store, store["active_manifest"]),
    )


def read_store(
    handle: BinaryIO, mime: str, manifest_data: bytes | None, config: EvidenceConfig, where: str
) -> ManifestReport | None:
    """Read and verify the manifest store bound to the asset in ``handle`` (None: there is none).

    ``manifest_data`` is a sidecar's (or a fetched remote manifest's) bytes; without it the store
    embedded in the asset is read. The asset is read from its start; the caller restores its file
    position. A store that points at a remote manifest is fetched only with ``config.c2pa_remote``.

    Raises:
        MetadataError: ``refused`` for a remote manifest not fetched, ``malformed`` for one the
            library cannot parse, ``too-deep``/``too-large`` for its JSON, or what ``fetch_manifest`` raises.
    """
    import c2pa

    try:
        text, crtext = _read_texts(handle, mime, manifest_data, c2pa_settings(config))
    except c2pa.C2paError.ManifestNotFound:
        return None
    except c2pa.C2paError as exc:
        message = clean_text(str(exc), 200)
        if message.startswith(("Remote", "RemoteManifest")):
            url = message.rsplit(" ", 1)[-1]
            if config.c2pa_remote and manifest_data is None:
                return read_remote(handle, mime, url, config)
            raise MetadataError("refused", f"the C2PA manifest is stored remotely ({url}) and is never fetched") from None
        raise MetadataError("malformed", f"C2PA: {message}") from None
    limit = 4 * config.max_c2pa_bytes + (1 << 20)
    store = loads(text, what="C2PA manifest store", max_chars=limit, max_depth=config.max_json_depth)
    crjson = loads(crtext, what="C2PA manifest store (crJSON)", max_chars=limit, max_depth=config.max_json_depth)
    report = interpret(store, where, crjson, _identities(handle, mime, manifest_data, config, crjson))
    if report.trust == "trusted":
        report = replace(report, vouched_by=_vouched_by(handle, mime, manifest_data, config))
    return report


def _read_texts(handle: BinaryIO, mime: str, manifest_data: bytes | None, settings: dict[str, Any]) -> tuple[str, str]:
    """The store as c2pa-python's JSON and as crJSON, read from the asset's start."""
    import c2pa

    handle.seek(0)
    with c2pa.Context.from_dict(settings) as context:
        with c2pa.Reader(mime, handle, manifest_data, context=context) as reader:
            return reader.json(), reader.crjson()


def _identities(
    handle: BinaryIO, mime: str, manifest_data: bytes | None, config: EvidenceConfig, crjson: Any
) -> tuple[cawg.Identity, ...]:
    """The CAWG identities, from a second read that decodes them (only when the store holds one)."""
    import c2pa

    if not cawg.has_identity(crjson):
        return ()
    settings = c2pa_settings(config)
    settings["core"]["decode_identity_assertions"] = True
    try:
        text, _ = _read_texts(handle, mime, manifest_data, settings)
    except c2pa.C2paError:
        return ()
    limit = 4 * config.max_c2pa_bytes + (1 << 20)
    return cawg.identities(loads(text, what="C2PA manifest store", max_chars=limit, max_depth=config.max_json_depth))


def read_remote(handle: BinaryIO, mime: str, url: str, config: EvidenceConfig) -> ManifestReport | None:
    """The report of the manifest at ``url`` (fetched within the caps), verified against the asset in ``handle``."""
    from .remote import fetch_manifest

    return read_store(handle, mime, fetch_manifest(url, config), config, "remote")


def _vouched_by(handle: BinaryIO, mime: str, manifest_data: bytes | None, config: EvidenceConfig) -> str:
    """Which anchors made a trusted signer trusted: the trust list, unless only the extra anchors do
    (then the store is read once more without them to tell)."""
    anchors = config.anchors
    if anchors.extra is None:
        return anchors.signers.label
    text, _ = _read_texts(handle, mime, manifest_data, c2pa_settings(config, extra_anchors=False))
    store = loads(text, what="C2PA manifest store", max_chars=len(text), max_depth=config.max_json_depth)
    return (
        anchors.signers.label if isinstance(store, dict) and store.get("validation_state") == "Trusted" else anchors.extra.label
    )


def _signed_by(report: ManifestReport) -> str:
    if report.signer and report.issuer and report.issuer != report.signer:
        return f"{report.signer} / {report.issuer}"
    return report.signer or report.issuer or "an unnamed signer"


def _tool(report: ManifestReport, kind: str, agents: list[str]) -> signatures.Signature | None:
    for text in [*agents, report.claim_generator or ""]:
        if text and (row := signatures.match(kind, text)):
            return row
    return None


def to_finding(report: ManifestReport) -> Finding:
    """The one finding a manifest store gives (see the table in the module docstring)."""
    label = _LABELS.get(report.where, "C2PA manifest")
    trusted = report.trust == "trusted"
    head = f"{label} ({'valid' if report.state != 'invalid' else 'invalid'}, signed by {_signed_by(report)}, "
    head += f"{_TRUST_WORDS[report.trust]}{f' by the {report.vouched_by}' if trusted and report.vouched_by else ''})"
    ai_actions = [a for a in report.actions if a.source_type and origin(a.source_type) == "ai"]
    ai_types = sorted({a.source_type for a in ai_actions if a.source_type})
    made_by = f"; claim generator {report.claim_generator}" if report.claim_generator else ""
    if report.state == "invalid":
        codes = [c for c in report.failures if not is_trust_code(c)][:3] or ["unknown failure"]
        declared = f"; it declared {', '.join(ai_types)}" if ai_types else ""
        return Finding.make(
            "c2pa",
            "tampered",
            "strong",
            f"{label} fails validation ({', '.join(codes)}): the image or its credentials changed after signing"
            f"{declared}; signed by {_signed_by(report)}",
        )
    ai_tool = _tool(report, "tool", [a.agent for a in ai_actions if a.agent] or [a.agent for a in report.actions if a.agent])
    genai, decisive = report.genai
    active = next((e for e in report.read_for_fusion if e.active), None)
    chain = f"; {c2pa_signals.signals_text(active)}" if active else ""
    if genai == "ai" or (genai is None and (ai_types or report.ingredient_ai or ai_tool)):
        if ai_types:
            agents = ", ".join(sorted({f"{a.action} by {a.agent}" if a.agent else a.action for a in ai_actions}))
            what = f"declares {', '.join(ai_types)} ({agents})"
        elif report.ingredient_ai:
            what = f"has an ingredient declaring {', '.join(report.ingredient_ai)}"
        elif genai == "ai":
            what = f"has {', '.join(decisive)} in its provenance chain"
        else:
            what = "names a known AI generator"
        generator = ai_tool.generator if ai_tool else next((a.agent for a in ai_actions if a.agent), report.generator_name)
        return Finding.make("c2pa", "ai", "strong" if trusted else "moderate", f"{head} {what}{made_by}{chain}", generator)
    if genai == "ai-edited":
        agents = [a.agent for a in report.actions if a.agent and a.source_type and origin(a.source_type).startswith("ai")]
        what = f"records generative parts or edits in its chain ({', '.join(decisive)})"
        generator = ai_tool.generator if ai_tool else next(iter(agents), report.generator_name)
        return Finding.make("c2pa", "ai-edited", "strong" if trusted else "moderate", f"{head} {what}{made_by}{chain}", generator)
    created = [a for a in report.actions if a.action == "c2pa.created"]
    captured = sorted({a.source_type for a in report.actions if a.source_type and origin(a.source_type) == "camera"})
    camera = _tool(report, "camera", [a.agent for a in created if a.agent]) if created else None
    edits = sorted({a.action for a in report.actions if a.action not in _NOT_EDITS})
    edited = f", then {', '.join(edits[:4])}" if edits else ""
    if captured or camera:
        what = f"declares {', '.join(captured)}" if captured else "records c2pa.created by a camera"
        generator = camera.generator if camera else None
        return Finding.make(
            "c2pa", "camera", "strong" if trusted else "weak", f"{head} {what}{edited}{made_by}{chain}", generator
        )
    if edits:
        return Finding.make(
            "c2pa", "edited", "strong" if trusted else "weak", f"{head} records {', '.join(edits[:4])}, no AI{made_by}{chain}"
        )
    return Finding.make("c2pa", "none", "weak", f"{head} declares no digital source type{made_by}{chain}")


def pointer_findings(handle: BinaryIO, image_format: str | None, pointer: str, config: EvidenceConfig) -> list[Finding]:
    """What an XMP ``dcterms:provenance`` pointer means when no manifest store was found in the file or beside it.

    A ``self#jumbf=`` pointer names a manifest embedded in this very file: its absence means the
    credentials were stripped (weak: metadata is stripped all the time, by upload pipelines too).
    Any other pointer is a remote manifest, fetched only with ``config.c2pa_remote``.

    Raises:
        MetadataError: a remote manifest not fetched, refused, unreadable or over the cap.
    """
    where = clean_text(pointer, 160)
    if pointer.startswith("self#jumbf="):
        return [
            Finding.make(
                "c2pa",
                "none",
                "weak",
                f"C2PA credentials were stripped: the XMP points at an embedded manifest ({where}) that is no longer in the file",
            )
        ]
    if not config.c2pa_remote:
        raise MetadataError("refused", f"the C2PA manifest is stored remotely ({where}) and is never fetched")
    mime = C2PA_MIME.get(image_format or "")
    if mime is None:
        raise MetadataError("unsupported", f"a remote C2PA manifest cannot bind to {image_format or 'this'} files")
    report = read_remote(handle, mime, pointer, config)
    return [to_finding(report)] if report is not None else []


def sidecar_path(path: str | bytes) -> str | bytes:
    """``<same stem>.c2pa`` beside the file."""
    stem = os.path.splitext(path)[0]
    return stem + (SIDECAR_SUFFIX.encode() if isinstance(stem, bytes) else SIDECAR_SUFFIX)


def _sidecar_bytes(path: str | bytes, config: EvidenceConfig) -> bytes | None:
    """The sidecar's bytes, None when there is none.

    Raises:
        MetadataError: a sidecar that is a link, not a regular file, unreadable or too large.
    """
    sidecar = sidecar_path(path)
    if sidecar == path:
        return None
    try:
        handle, _ = open_input(sidecar)
        with handle:
            return read_capped(handle, config.max_sidecar_bytes, os.fsdecode(sidecar))
    except InputFileError as exc:
        if exc.reason == "missing":
            return None
        reason = _INPUT_REASONS.get(exc.reason, "unreadable")
        raise MetadataError(reason, f"C2PA sidecar {os.path.basename(os.fsdecode(sidecar))}: {exc.detail}") from None


def read_reports(
    handle: BinaryIO, layout: Layout, image_format: str | None, path: str | bytes | None, config: EvidenceConfig
) -> list[ManifestReport | MetadataError]:
    """The embedded store (when the walk found one) and the sidecar (when there is one), each a report or its error."""
    mime = C2PA_MIME.get(image_format or "")
    results: list[ManifestReport | MetadataError | None] = []
    if layout.c2pa_bytes and mime:
        if layout.c2pa_bytes > config.max_c2pa_bytes:
            results.append(
                MetadataError("too-large", f"C2PA manifest store of {layout.c2pa_bytes} bytes exceeds {config.max_c2pa_bytes}")
            )
        else:
            results.append(_attempt(lambda: read_store(handle, mime, None, config, "embedded")))
    return [r for r in results + _sidecar_reports(handle, mime, image_format, path, config) if r is not None]


def read_media_reports(
    handle: BinaryIO, mime: str, path: str | bytes | None, config: EvidenceConfig
) -> list[ManifestReport | MetadataError]:
    """The stores of a file that is not an image (``mime`` from its first bytes): embedded, then the sidecar.

    No walk measures an embedded store in these containers first: the file's own size cap bounds it.
    """
    results = [_attempt(lambda: read_store(handle, mime, None, config, "embedded"))]
    return [r for r in results + _sidecar_reports(handle, mime, mime, path, config) if r is not None]


def _sidecar_reports(
    handle: BinaryIO, mime: str | None, kind: str | None, path: str | bytes | None, config: EvidenceConfig
) -> list[ManifestReport | MetadataError | None]:
    if path is None:
        return []
    try:
        data = _sidecar_bytes(path, config)
    except MetadataError as exc:
        return [exc]
    if data is None:
        return []
    if mime is None:
        return [MetadataError("unsupported", f"a C2PA sidecar cannot bind to {kind or 'this'} files")]
    return [_attempt(lambda: read_store(handle, mime, data, config, "sidecar"))]


def _attempt(read: Any) -> ManifestReport | MetadataError | None:
    try:
        return read()
    except MetadataError as exc:
        return exc


def findings_of(reports: list[ManifestReport | MetadataError]) -> list[Finding]:
    """One finding per store (what it says, or the error that kept it from being read), each
    followed by weak ``none`` findings that show its chain and its identities."""
    findings = []
    for r in reports:
        if isinstance(r, MetadataError):
            findings.append(Finding.error("c2pa", r.reason, r.text))
        else:
            said = c2pa_signals.ingredient_lines(r.read_for_fusion) + [i.sentence() for i in r.identities]
            findings += [to_finding(r)] + [Finding.make("c2pa", "none", "weak", line) for line in said]
    return findings


def read_c2pa(
    handle: BinaryIO, layout: Layout, image_format: str | None, path: str | bytes | None, config: EvidenceConfig
) -> list[Finding]:
    """C2PA findings for one file: one per manifest store (or one error per store that could not be
    read), each followed by weak ``none`` findings that show its chain and its identities."""
    return findings_of(read_reports(handle, layout, image_format, path, config))


def summarize(reports: list[ManifestReport | MetadataError]) -> list[dict[str, Any]]:
    """JSON-safe summaries of the stores, errors as ``{"error": "reason: text"}``."""
    return [{"error": f"{r.reason}: {r.text}"} if isinstance(r, MetadataError) else r.to_dict() for r in reports]
