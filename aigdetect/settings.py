"""What every config dataclass shares: help text on its fields, checks, and their defaults for the CLI.

A config's fields carry their help in ``field(metadata={"help": ...})``, as peft's configs do, so the
CLI builds its options from them and never restates a default or a description.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, fields
from typing import Any

from .errors import ConfigError


def _field(cls: type, name: str) -> Field[Any]:
    for item in fields(cls):
        if item.name == name:
            return item
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def field_default(cls: type, name: str) -> Any:
    """The default of one field of a config dataclass (calling its factory when it has one)."""
    item = _field(cls, name)
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def field_help(cls: type, name: str) -> str:
    """The help text of one field, as written in its metadata."""
    return str(_field(cls, name).metadata.get("help", ""))


def check_known_keys(cls: type, data: dict[str, Any], label: str) -> None:
    """Refuse keys a config dataclass does not have, e.g. from a checkpoint of a newer version."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {label} keys: {', '.join(sorted(unknown))}")


def require_finite(name: str, value: float) -> None:
    """NaN and infinities pass every ``<`` and ``>`` check, so they are refused by name first."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"`{name}` must be a finite number, got {value!r}")
