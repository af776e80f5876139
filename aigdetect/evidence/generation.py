"""Generation settings that AI front ends write into text metadata, recognised by their structure.

Each parser confirms the format before it says anything, so a key that merely shares a name (a
plain ``Comment`` or ``prompt``) gives nothing: AUTOMATIC1111 ``parameters`` need a ``Steps: ...,
Sampler: ...`` line, a ComfyUI ``prompt`` nodes with a ``class_type``, and so on. JSON goes through
``boundedjson`` (size and depth checked first). Model names come out as written; the ``model`` rows
of the signature table turn them into a generator family where they can.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import signatures
from .boundedjson import loads
from .findings import clean_text

_MODEL_FILE = re.compile(r"\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$", re.IGNORECASE)
_A1111_STEPS = re.compile(r"^Steps: \d+, Sampler: ", re.MULTILINE)
_A1111_MODEL = re.compile(r"(?:^|, )Model: ([^,\n]{1,200})")
_A1111_HASH = re.compile(r"(?:^|, )Model hash: ([0-9A-Fa-f]{6,64})")
_NOVELAI_KEYS = {"uc", "v4_prompt", "noise_schedule", "request_type", "n_samples", "sm"}
_MAX_MODELS = 4


@dataclass(frozen=True)
class Generation:
    """What a parser recognised: the format, and the model names it found."""

    what: str
    models: tuple[str, ...] = ()
    model_hash: str | None = None

    def describe(self) -> str:
        text = self.what
        if self.models:
            text += f", model {', '.join(self.models)}"
        if self.model_hash:
            text += f" (hash {self.model_hash})"
        return text

    def generator(self, default: str) -> str:
        """The family of the first model the signature table knows, else ``default``."""
        for model in self.models:
            if row := signatures.match("model", model):
                return row.generator
        return default


def _models(names: list[Any]) -> tuple[str, ...]:
    cleaned = [clean_text(n, 120) for n in names if isinstance(n, str) and n.strip()]
    return tuple(dict.fromkeys(cleaned))[:_MAX_MODELS]


def _json(text: str, what: str, max_chars: int, max_depth: int) -> Any:
    """The JSON in ``text``, or None when it does not even start like JSON (then it is not this format)."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    return loads(text, what=what, max_chars=max_chars, max_depth=max_depth)


def a1111(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """AUTOMATIC1111 (and Forge, SD.Next) ``parameters``: prompt lines, then ``Steps: N, Sampler: ..., Model: ...``."""
    steps = _A1111_STEPS.search(text)
    if not steps:
        data = _json(text, "parameters", max_chars, max_depth)
        if isinstance(data, dict) and any(k in data for k in ("base_model", "Base Model", "steps", "Steps")):
            return Generation("generation parameters (JSON)", _models([data.get("base_model"), data.get("Base Model")]))
        return None
    steps_line = text[steps.start() :].split("\n", 1)[0]
    model, digest = _A1111_MODEL.search(steps_line), _A1111_HASH.search(steps_line)
    return Generation(
        "AUTOMATIC1111 parameters", _models([model.group(1) if model else None]), digest.group(1) if digest else None
    )


def comfyui_prompt(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """A ComfyUI ``prompt``: node id -> {"class_type", "inputs"}; checkpoints in ``ckpt_name``/``unet_name``."""
    data = _json(text, "ComfyUI prompt", max_chars, max_depth)
    if not isinstance(data, dict):
        return None
    nodes = [n for n in data.values() if isinstance(n, dict) and isinstance(n.get("class_type"), str)]
    if not nodes:
        return None
    inputs = [n.get("inputs") for n in nodes if isinstance(n.get("inputs"), dict)]
    return Generation("ComfyUI prompt graph", _models([i.get(k) for i in inputs for k in ("ckpt_name", "unet_name")]))


def comfyui_workflow(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """A ComfyUI ``workflow``: {"nodes": [{"type", "widgets_values"}]}; model files among the widget values."""
    data = _json(text, "ComfyUI workflow", max_chars, max_depth)
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not any(isinstance(n, dict) and isinstance(n.get("type"), str) for n in nodes):
        return None
    values = [v for n in nodes if isinstance(n, dict) and isinstance(n.get("widgets_values"), list) for v in n["widgets_values"]]
    return Generation("ComfyUI workflow", _models([v for v in values if isinstance(v, str) and _MODEL_FILE.search(v)]))


def novelai(text: str, max_chars: int, max_depth: int) -> Generation | None:
    """NovelAI's ``Comment``: JSON generation settings (steps, sampler, and NovelAI's own keys)."""
    data = _json(text, "NovelAI Comment", max_chars, max_depth)
    if isinstance(data, dict) and {"steps", "sampler"} <= set(data) and _NOVELAI_KEYS & set(data):
        return Generation("NovelAI generation settings")
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
    return Generation("InvokeAI metadata", _models(names))


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
