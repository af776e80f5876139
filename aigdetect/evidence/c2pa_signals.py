"""The C2PA asset signals, per manifest and over the provenance chain, from a crJSON manifest store.

The signals are those of the C2PA Conformance Task Force's asset-signals rubric (``RUBRIC``): each
manifest is judged on its own. Inception signals say how the asset began: a ``c2pa.created`` or
``c2pa.opened`` action whose digital source type is exactly one URI (``_INCEPTIONS``), or an
ingredient of unknown provenance. Transformation signals sort the other actions: perceptible
(neither inception nor non-editorial) with a GenAI, a possibly-GenAI or another stated source type,
non-editorial, or ambiguous (no complete, standard list of actions).

Like the rubric, the signals read only the ``c2pa.actions.v2`` assertion. C2PA 1.x manifests (their
``c2pa.actions`` assertion) get none, except ``ambiguousActions``; fusion reads them too
(``chain_origin``), with the same definitions, since most Content Credentials in the wild predate 2.0.

The chain: crJSON lists the active manifest first, then the others. An ingredient points at its own
manifest (``activeManifest`` in ``c2pa.ingredient.v3``, ``c2pa_manifest`` before), which becomes a
link; an ingredient without one that states a digital source type becomes a *pseudo manifest* (the
rubric's device) holding only a ``c2pa.created`` with that type, signed by the manifest that cites it.
The rubric's evaluator links only ``urn:c2pa:`` labels through ``activeManifest``; it treats 1.x
ingredients as having no manifest. Here every link is followed (see tests/assets/c2pa_signals/README.md).

For fusion (``chain_origin``) the *line of parents* matters: the active manifest and, link by link,
its ``parentOf`` ingredients' manifests, the assets it was derived from. ``fullyGenAIMedia`` there
means the asset is a generated image, however edited since (``ai``). Generative parts anywhere
(``AI_EDIT_SIGNALS`` on the line, or any GenAI signal in a component, ``componentOf`` or
``inputTo``, such as a generated element placed in a photograph) mean ``ai-edited``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import validation
from .findings import clean_text
from .sourcetypes import C2PA_PREFIX, GENAI_SOURCE_TYPES, IPTC_PREFIX

RUBRIC = "C2PA Asset Signals Rubric (Local) 1.0, 2026-08-06"
INCEPTION_SIGNALS: tuple[str, ...] = (
    "fullyGenAIMedia",
    "partlyGenAICreation",
    "compositionMayContainGenAI",
    "capturedMedia",
    "capturedMediaStitched",
    "screenCaptureMayContainGenAI",
    "nonGenAIDigitalCreation",
    "blankCanvas",
    "mediaUnknownProvenance",
)
TRANSFORMATION_SIGNALS: tuple[str, ...] = (
    "perceptibleGenAI",
    "perceptiblePossiblyGenAI",
    "perceptibleNonGenAI",
    "nonEditorial",
    "ambiguousActions",
)
AI_SIGNALS = frozenset({"fullyGenAIMedia"})
"""In the chain: the asset is, or is made from, media a generative model made whole."""
AI_EDIT_SIGNALS = frozenset({"partlyGenAICreation", "compositionMayContainGenAI", "perceptibleGenAI"})
"""In the chain, without ``AI_SIGNALS``: generative parts in a capture or non-AI creation."""

_INCEPTIONS: dict[str, tuple[str, ...]] = {
    "fullyGenAIMedia": (IPTC_PREFIX + "trainedAlgorithmicMedia",),
    "partlyGenAICreation": (IPTC_PREFIX + "compositeWithTrainedAlgorithmicMedia",),
    "compositionMayContainGenAI": (IPTC_PREFIX + "composite",),
    "capturedMedia": (IPTC_PREFIX + "digitalCapture", IPTC_PREFIX + "computationalCapture"),
    "capturedMediaStitched": (IPTC_PREFIX + "compositeCapture",),
    "screenCaptureMayContainGenAI": (IPTC_PREFIX + "screenCapture",),
    "nonGenAIDigitalCreation": (IPTC_PREFIX + "digitalCreation",),
    "blankCanvas": (C2PA_PREFIX + "empty",),
}
_INCEPTION_ACTIONS = frozenset({"c2pa.created", "c2pa.opened"})
_NON_EDITORIAL = frozenset(
    {
        "c2pa.converted", "c2pa.published", "c2pa.repackaged", "c2pa.transcoded", "c2pa.resized.proportional",
        "c2pa.enhanced", "c2pa.edited.metadata", "c2pa.watermarked", "c2pa.watermarked.bound",
        "c2pa.watermarked.unbound", "c2pa.redacted",
    }
)  # fmt: skip
_POSSIBLY_GENAI = frozenset({IPTC_PREFIX + "digitalArt", IPTC_PREFIX + "composite"})
_RUBRIC_ACTIONS = ("c2pa.actions.v2",)
_ALL_ACTIONS = ("c2pa.actions", "c2pa.actions.v2")
_MAX_MANIFESTS = 64
_MAX_ACTIONS = 1000


@dataclass(frozen=True)
class ChainManifest:
    """One manifest of a store (or a pseudo manifest for a flat ingredient), with its signals."""

    label: str
    active: bool
    pseudo: bool
    signer: str | None
    trust: str
    signals: tuple[str, ...]
    ingredients: tuple[tuple[str, str | None], ...]
    """``(label, relationship)`` of each ingredient that has a manifest here (or a pseudo one)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "active": self.active,
            "pseudo": self.pseudo,
            "signer": self.signer,
            "trust": self.trust,
            "signals": list(self.signals),
            "ingredients": [{"label": label, "relationship": relation} for label, relation in self.ingredients],
        }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _actions(manifest: dict[str, Any], labels: Iterable[str]) -> list[dict[str, Any]] | None:
    """The actions of the named assertions (None: none of them is there, or none holds a list)."""
    found: list[dict[str, Any]] | None = None
    assertions = _dict(manifest.get("assertions"))
    for label in labels:
        listed = _dict(assertions.get(label)).get("actions")
        if isinstance(listed, list):
            found = (found or []) + [a for a in listed[:_MAX_ACTIONS] if isinstance(a, dict)]
    return found


def _is(value: Any, names: frozenset[str]) -> bool:
    """Membership for untrusted JSON values (a list or an object is in no table)."""
    return isinstance(value, str) and value in names


def _is_text(item: dict[str, Any], key: str) -> bool:
    """A non-empty string (what the rubric's evaluator takes for a stated value)."""
    return isinstance(item.get(key), str) and bool(item[key])


def _ambiguous(manifest: dict[str, Any], actions: list[dict[str, Any]] | None, labels: Iterable[str]) -> bool:
    assertions = _dict(manifest.get("assertions"))
    present = [_dict(assertions.get(label)) for label in labels if label in assertions]
    if not actions or not present or any(p.get("allActionsIncluded") is not True for p in present):
        return True
    names = [a.get("action") for a in actions if a.get("action") is not None]
    if any(not isinstance(n, str) or not n.startswith("c2pa.") or n == "c2pa.unknown" for n in names):
        return True
    gathered = _dict(manifest.get("claim.v2")).get("gathered_assertions")
    return any(
        isinstance(item, dict) and isinstance(item.get("url"), str) and "c2pa.actions" in item["url"]
        for item in (gathered if isinstance(gathered, list) else [])
    )


def manifest_signals(manifest: dict[str, Any], legacy_actions: bool = False) -> tuple[str, ...]:
    """The rubric's signals for one crJSON manifest, inception signals first, each in the rubric's order.

    Args:
        manifest: one entry of a crJSON store's ``manifests``.
        legacy_actions: read the 1.x ``c2pa.actions`` assertion as well as ``c2pa.actions.v2``
            (fusion does; the rubric does not).
    """
    labels = _ALL_ACTIONS if legacy_actions else _RUBRIC_ACTIONS
    actions = _actions(manifest, labels)
    listed = actions or []
    starts = {
        a["digitalSourceType"] for a in listed if _is(a.get("action"), _INCEPTION_ACTIONS) and _is_text(a, "digitalSourceType")
    }
    found = [name for name, types in _INCEPTIONS.items() if any(t in starts for t in types)]
    ingredient = _dict(manifest.get("assertions")).get("c2pa.ingredient.v3")
    if ingredient is not None and _dict(ingredient).get("activeManifest") is None:
        found.append("mediaUnknownProvenance")
    perceptible = [
        a for a in listed if a.get("action") is not None and not _is(a.get("action"), _INCEPTION_ACTIONS | _NON_EDITORIAL)
    ]
    types = [a.get("digitalSourceType") for a in perceptible]
    if any(_is(t, GENAI_SOURCE_TYPES) for t in types):
        found.append("perceptibleGenAI")
    if any(_is(t, _POSSIBLY_GENAI) for t in types):
        found.append("perceptiblePossiblyGenAI")
    if any(t is not None and not _is(t, GENAI_SOURCE_TYPES) for t in types):
        found.append("perceptibleNonGenAI")
    if any(_is(a.get("action"), _NON_EDITORIAL) for a in listed):
        found.append("nonEditorial")
    if _ambiguous(manifest, actions, labels):
        found.append("ambiguousActions")
    return tuple(found)


def linked_label(url: Any) -> str | None:
    """The manifest label a JUMBF URI such as ``self#jumbf=/c2pa/<label>/c2pa.claim`` points into."""
    if not isinstance(url, str) or "/c2pa/" not in url:
        return None
    label = url.split("/c2pa/", 1)[1].split("/", 1)[0]
    return label or None


def _ingredients(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    assertions = _dict(manifest.get("assertions"))
    return [value for key, value in assertions.items() if key.startswith("c2pa.ingredient") and isinstance(value, dict)]


def _flat_source_type(manifest: dict[str, Any], ingredient: dict[str, Any]) -> str | None:
    """The source type the rubric gives an ingredient without a manifest: its own, else the first
    ``c2pa.opened`` action's in the citing manifest."""
    if isinstance(ingredient.get("digitalSourceType"), str) and ingredient["digitalSourceType"]:
        return ingredient["digitalSourceType"]
    for action in _actions(manifest, [k for k in _dict(manifest.get("assertions")) if k.startswith("c2pa.actions")]) or []:
        if action.get("action") == "c2pa.opened" and _is_text(action, "digitalSourceType"):
            return action["digitalSourceType"]
    return None


def _signer(manifest: dict[str, Any]) -> str | None:
    subject = _dict(_dict(_dict(manifest.get("signature")).get("certificateInfo")).get("subject"))
    name = subject.get("CN") or subject.get("O")
    return clean_text(name, 120) or None if isinstance(name, str) else None


def trust_state(*results: Any) -> str:
    """One of ``validation.TRUST_STATES`` from a manifest's status codes in crJSON: its own
    ``validationResults`` and, for an ingredient's, those its citing ingredient assertion holds."""

    def codes(kind: str) -> list[str]:
        listed = [i for r in results for i in (_dict(r).get(kind) if isinstance(_dict(r).get(kind), list) else [])]
        return [i["code"] for i in listed if isinstance(i, dict) and isinstance(i.get("code"), str)]

    failed = codes("failure")
    trusted = "signingCredential.trusted" in codes("success") and not any(validation.is_trust_code(code) for code in failed)
    return validation.trust_state(trusted, failed)


def _entry(
    manifest: dict[str, Any], active: bool, legacy: bool, links: list[tuple[str, str | None]], cited: dict[str, Any]
) -> ChainManifest:
    return ChainManifest(
        label=clean_text(str(manifest.get("label")), 200),
        active=active,
        pseudo=False,
        signer=_signer(manifest),
        trust=trust_state(manifest.get("validationResults"), cited.get(manifest.get("label"))),
        signals=manifest_signals(manifest, legacy),
        ingredients=tuple(links),
    )


def chain(store: Any, legacy_actions: bool = False) -> tuple[ChainManifest, ...]:
    """Every manifest of a crJSON store (the active one first), then a pseudo manifest per flat ingredient.

    Args:
        store: c2pa-python's ``Reader.crjson()``, parsed.
        legacy_actions: read 1.x ``c2pa.actions`` too (see ``manifest_signals``).
    """
    manifests = [m for m in (_dict(store).get("manifests") or [])[:_MAX_MANIFESTS] if isinstance(m, dict)]
    labels = {m.get("label") for m in manifests if isinstance(m.get("label"), str)}
    entries: list[ChainManifest] = []
    pseudo: list[ChainManifest] = []
    cited: dict[str, Any] = {}
    for manifest in manifests:
        for ingredient in _ingredients(manifest):
            label = linked_label(_dict(ingredient.get("activeManifest") or ingredient.get("c2pa_manifest")).get("url"))
            cited.setdefault(label or "", _dict(ingredient.get("validationResults")).get("activeManifest"))
    for index, manifest in enumerate(manifests):
        links: list[tuple[str, str | None]] = []
        for ingredient in _ingredients(manifest):
            link = _dict(ingredient.get("activeManifest")) or _dict(ingredient.get("c2pa_manifest"))
            label = linked_label(link.get("url"))
            relation = ingredient.get("relationship")
            relation = clean_text(relation, 40) if isinstance(relation, str) else None
            if label in labels:
                links.append((clean_text(label, 200), relation))
            elif not link and (source_type := _flat_source_type(manifest, ingredient)):
                title = ingredient.get("dc:title") if isinstance(ingredient.get("dc:title"), str) else "ingredient"
                name = clean_text(f"{manifest.get('label')}: {title}", 200)
                created = {"assertions": {"c2pa.actions.v2": {"allActionsIncluded": True, "actions": [
                    {"action": "c2pa.created", "digitalSourceType": source_type}]}}}  # fmt: skip
                links.append((name, relation))
                trust = trust_state(manifest.get("validationResults"))
                signals = manifest_signals(created)
                pseudo.append(ChainManifest(name, False, True, _signer(manifest), trust, signals, ()))
        entries.append(_entry(manifest, index == 0, legacy_actions, links, cited))
    return tuple(entries + pseudo[:_MAX_MANIFESTS])


def provenance(entries: tuple[ChainManifest, ...], parents_only: bool = False) -> tuple[ChainManifest, ...]:
    """The active manifest and those its ingredients lead to (only ``parentOf`` ones if asked), in
    order of discovery."""
    by_label = {e.label: e for e in entries}
    found: list[ChainManifest] = []
    queue = [e for e in entries if e.active]
    while queue:
        current = queue.pop(0)
        if current in found:
            continue
        found.append(current)
        queue += [
            by_label[label] for label, relation in current.ingredients
            if label in by_label and (relation == "parentOf" or not parents_only)
        ]  # fmt: skip
    return tuple(found)


def chain_origin(entries: tuple[ChainManifest, ...]) -> tuple[str | None, tuple[str, ...]]:
    """What the chain says for fusion (see the module docstring): ``("ai", signals)``,
    ``("ai-edited", signals)`` or ``(None, ())``. Fusion passes ``chain(store, legacy_actions=True)``."""
    line = provenance(entries, parents_only=True)
    on_line = {s for entry in line for s in entry.signals}
    in_parts = {s for entry in provenance(entries) if entry not in line for s in entry.signals}
    if ai := sorted(on_line & AI_SIGNALS):
        return "ai", tuple(ai)
    if edits := sorted((on_line & AI_EDIT_SIGNALS) | (in_parts & (AI_SIGNALS | AI_EDIT_SIGNALS))):
        return "ai-edited", tuple(edits)
    return None, ()


def signals_text(entry: ChainManifest) -> str:
    """``signals: a, b`` (``ambiguousActions`` left out: most manifests in the wild have it)."""
    shown = [s for s in entry.signals if s != "ambiguousActions"]
    return f"signals: {', '.join(shown) or 'none'}"


def ingredient_lines(entries: tuple[ChainManifest, ...]) -> list[str]:
    """One sentence per ingredient manifest of the chain, for the findings that show it."""
    relations = {label: relation for e in entries for label, relation in e.ingredients}
    return [
        f"C2PA {'pseudo ' if e.pseudo else ''}ingredient manifest ({relations.get(e.label) or 'no relationship'}, "
        f"signed by {e.signer or 'an unnamed signer'}, {e.trust}), {signals_text(e)}; {e.label}"
        for e in provenance(entries)
        if not e.active
    ]
