"""Generation settings that AI front ends write into text metadata, recognised by their structure.

Each parser confirms the format before it says anything, so a key that merely shares a name (a
plain ``Comment`` or ``prompt``) gives nothing: AUTOMATIC1111 ``parameters`` need a ``Steps: ...,
Sampler: ...`` line, a ComfyUI ``prompt`` nodes with a ``class_type``, and so on. JSON goes through
``boundedjson`` (size and depth checked first).

Several front ends share the ``parameters`` key: AUTOMATIC1111 (and Forge, SD.Next) write text,
Fooocus writes the same text with ``Version: Fooocus ...`` or its own JSON (``full_prompt``,
``version``), SwarmUI JSON under ``sui_image_params``, others JSON that names them in ``software``
(RuinedFooocus); each is named as itself. The finding's generator is the model when the file names
one (its family when the ``model`` rows of the signature table know it, else the name as written),
and the front end otherwise; the detail names both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import signatures
from .boundedjson import loads
from .findings import Finding, clean_text

_MODEL_FILE = re.compile(r"\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$", re.IGNORECASE)
_A1111_STEPS = re.compile(r"^Steps: \d+, Sampler: ", re.MULTILINE)
_A1111_MODEL = re.compile(r"(?:^|, )Model: ([^,\n]{1,200})")
_A1111_HASH = re.compile(r"(?:^|, )Model hash: ([0-9A-Fa-f]{6,64})")
_A1111_VERSION = re.compile(r"(?:^|, )Version: ([^,\n]{1,80})")
_NOVELAI_KEYS = {"uc", "v4_prompt", "noise_schedule", "request_type", "n_samples", "sm"}
_MAX_MODELS = 4


@dataclass(frozen=True)
class Generation:
    """What a parser recognised: the format, the model names it found, and the front end when the format names it."""

    what: str
    models: tuple[str, ...] = ()
    model_hash: str | None = None
    tool: str | None = None

    def describe(self) -> str:
        text = self.what
        if self.models:
            text += f", model {', '.join(self.models)}"
        if self.model_hash:
            text += f" (hash {self.model_hash})"
        return text

    def generator(self, default: str) -> str:
        """The model that made the image: its family when the table knows one, else its name as written;
        without a model, the front end (``tool``, else ``default``, the signature row's generator)."""
        for model in self.models:
            if row := signatures.match("model", model):
                return row.generator
        if self.models:
            return model_name(self.models[0])
        return self.tool or default


def distinct(found: list[tuple[Finding, str | None]]) -> list[Finding]:
    """The findings, in order, without a second ``ai`` finding for a generator or front end already named.

    Each finding comes with the front end it names (or None), so that two fields written by one tool
    (Fooocus's ``parameters`` and ``fooocus_scheme``, ComfyUI's ``prompt`` and ``workflow``) give one.
    """
    kept: list[Finding] = []
    named: set[str] = set()
    for finding, tool in found:
        if finding.claim == "ai":
            if finding.generator in named or tool in named:
                continue
            named.update(n for n in (finding.generator, tool) if n)
        kept.append(finding)
    return kept


def model_name(written: str) -> str:
    """A model as a generator name: the file name without its folders and model-file extension."""
    base = re.split(r"[\\/]", written)[-1]
    return _MODEL_FILE.sub("", base) or written


def _models(names: list[Any]) -> tuple[str, ...]:
    cleaned = [clean_text(n, 120) for n in names if isinstance(n, str) and n.strip()]
    return tuple(dict.fromkeys(cleaned))[:_MAX_MODELS]


def _json(text: str, what: str, max_chars: int, max_depth: int) -> Any:
    """The JSON in ``text``, or None when it does not even start like JSON (then it is not this format)."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    return loads(text, what=what, max_chars=max_chars, max_depth=max_depth)


def a1111(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """The ``parameters`` that AUTOMATIC1111, Fooocus and SwarmUI write (see the module docstring)."""
    steps = _A1111_STEPS.search(text)
    if steps:
        line = text[steps.start() :].split("\n", 1)[0]
        model, digest, version = _A1111_MODEL.search(line), _A1111_HASH.search(line), _A1111_VERSION.search(line)
        fooocus = version is not None and version.group(1).lower().startswith("fooocus")
        return Generation(
            "Fooocus parameters (AUTOMATIC1111 style)" if fooocus else "AUTOMATIC1111 parameters",
            _models([model.group(1) if model else None]),
            digest.group(1) if digest else None,
            "Fooocus" if fooocus else None,
        )
    if not text.lstrip().startswith("{"):
        return None
    data = loads(text, what="parameters", max_chars=max_chars, max_depth=max_depth)
    if not isinstance(data, dict):
        return None
    swarm = data.get("sui_image_params")
    if isinstance(swarm, dict):
        return Generation("SwarmUI parameters", _models([swarm.get("model")]), tool="SwarmUI")
    version = data.get("version")
    if "full_prompt" in data or (isinstance(version, str) and version.lower().startswith("fooocus")):
        digest = data.get("base_model_hash")
        return Generation(
            "Fooocus parameters",
            _models([data.get("base_model")]),
            clean_text(digest, 64) if isinstance(digest, str) and digest else None,
            "Fooocus",
        )
    software = data.get("software")
    row = signatures.match("tool", software) if isinstance(software, str) else None
    if row or any(k in data for k in ("base_model", "Base Model", "steps", "Steps")):
        models = _models([data.get(k) for k in ("base_model", "Base Model", "base_model_name")])
        what = f"{row.generator} parameters" if row else "generation parameters (JSON)"
        return Generation(what, models, tool=row.generator if row else None)
    return None


def comfyui_prompt(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """A ComfyUI ``prompt``: node id -> {"class_type", "inputs"}; checkpoints in ``ckpt_name``/``unet_name``."""
    data = _json(text, "ComfyUI prompt", max_chars, max_depth)
    if not isinstance(data, dict):
        return None
    nodes = [n for n in data.values() if isinstance(n, dict) and isinstance(n.get("class_type"), str)]
    if not nodes:
        return None
    inputs = [n.get("inputs") for n in nodes if isinstance(n.get("inputs"), dict)]
    models = _models([i.get(k) for i in inputs for k in ("ckpt_name", "unet_name")])
    return Generation("ComfyUI prompt graph", models, tool="ComfyUI")


def comfyui_workflow(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """A ComfyUI ``workflow``: {"nodes": [{"type", "widgets_values"}]}; model files among the widget values."""
    data = _json(text, "ComfyUI workflow", max_chars, max_depth)
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not any(isinstance(n, dict) and isinstance(n.get("type"), str) for n in nodes):
        return None
    values = [v for n in nodes if isinstance(n, dict) and isinstance(n.get("widgets_values"), list) for v in n["widgets_values"]]
    models = _models([v for v in values if isinstance(v, str) and _MODEL_FILE.search(v)])
    return Generation("ComfyUI workflow", models, tool="ComfyUI")


def novelai(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """NovelAI's ``Comment``: JSON generation settings (steps, sampler, and NovelAI's own keys)."""
    data = _json(text, "NovelAI Comment", max_chars, max_depth)
    if isinstance(data, dict) and {"steps", "sampler"} <= set(data) and _NOVELAI_KEYS & set(data):
        return Generation("NovelAI generation settings", tool="NovelAI")
    return None


def invokeai(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """InvokeAI's ``invokeai_metadata`` (model as an object) or older ``sd-metadata`` (``model_weights``)."""
    data = _json(text, "InvokeAI metadata", max_chars, max_depth)
    if not isinstance(data, dict):
        return None
    model = data.get("model")
    names = [model.get("name"), model.get("model_name")] if isinstance(model, dict) else [model]
    names.append(data.get("model_weights"))
    if not any(isinstance(n, str) for n in names) and not {"app_version", "generation_mode"} & set(data):
        return None
    return Generation("InvokeAI metadata", _models(names), tool="InvokeAI")


def presence(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """Keys only one front end writes: present and not empty is enough."""
    return Generation("its own text chunk") if text.strip() else None


PARSERS: dict[str, Callable[[str, int, int], Generation | None]] = {
    "a1111": a1111,
    "comfyui-prompt": comfyui_prompt,
    "comfyui-workflow": comfyui_workflow,
    "novelai": novelai,
    "invokeai": invokeai,
    "text": presence,
}
"""One parser per name in ``signatures.PARSERS``: a ``png-key`` row names the one that reads its value."""
