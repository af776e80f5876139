"""One exception hierarchy, so the CLI can map every failure the user can fix to exit code 2."""

from __future__ import annotations


class AigdetectError(Exception):
    """Base class for errors a user can act on; the message is meant to be shown as-is."""

    exit_code: int = 2


class ConfigError(AigdetectError, ValueError):
    """A configuration value is out of range or inconsistent with another."""


class InputError(AigdetectError):
    """A path, file or option given by the user cannot be used."""


class LayoutError(InputError):
    """A dataset root does not match any supported folder layout."""


class ImageDecodeError(InputError):
    """One image could not be decoded; ``reason`` is a short machine-friendly kind."""

    def __init__(self, path: str, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {reason}: {detail}")
        self.path = path
        self.reason = reason
        self.detail = detail


class WeightsError(AigdetectError):
    """Backbone or head weights are missing, unreachable or do not fit the model."""


class CheckpointError(AigdetectError):
    """A detector checkpoint is corrupt, truncated or does not match its model."""
