"""Checks on a detector checkpoint's metadata, torch-free, so that reading a detector's id and
threshold from the file header alone applies the very rules that loading it does."""

from __future__ import annotations

import math
from typing import Any

from ..errors import CheckpointError

MAX_NAME_CHARS = 200
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "backbone": (dict,),
    "mole": (dict,),
    "preprocess": (dict,),
    "name": (str, type(None)),
    "provenance": (dict, type(None)),
    "backbone_embedded": (bool,),
    "aigdetect_version": (str,),
}


def check_detector_metadata(meta: dict[str, Any], origin: str) -> None:
    """Refuse detector metadata of the wrong types or ranges before anything is built from it.

    A NaN threshold would turn every verdict into "real" (``score > nan`` is never true) and break
    strict JSON output; a list where the name belongs would break every writer.

    Raises:
        CheckpointError: a missing or mistyped field, a threshold outside [0, 1], or a name that is
            too long or holds control characters.
    """
    for key, types in _FIELD_TYPES.items():
        if key in ("backbone", "mole") and key not in meta:
            raise CheckpointError(f"{origin}: checkpoint metadata has no {key!r} entry")
        if key in meta and not isinstance(meta[key], types):
            raise CheckpointError(f"{origin}: checkpoint metadata {key!r} has the wrong type ({type(meta[key]).__name__})")
    threshold = meta.get("threshold", 0.5)
    number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if not number or not math.isfinite(threshold) or not 0 <= threshold <= 1:
        raise CheckpointError(f"{origin}: checkpoint threshold must be a number in [0, 1], got {str(threshold)[:40]}")
    name = meta.get("name")
    if name is not None and (len(name) > MAX_NAME_CHARS or not name.isprintable()):
        raise CheckpointError(f"{origin}: checkpoint name must be printable and at most {MAX_NAME_CHARS} characters")
