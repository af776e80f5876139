"""Strict state-dict matching with a message that names what is wrong, shared by backbones and adapters."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def _preview(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def key_problems(own: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and mis-shaped keys of ``given`` against ``own``; empty when they fit."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in given and given[k].shape != own[k].shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if keys:
            problems.append(f"{label}: {_preview(keys)}")
    return problems
