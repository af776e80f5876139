"""One exception hierarchy, so the CLI can map every failure the user can fix to exit code 2.

Messages name a setting in backticks (`batch_size`): the CLI shows it as the flag the user types
(``--batch-size``), a Python caller reads the keyword argument. ``ConfigError`` is deliberately not a
``ValueError``, so that parsing code catching ``ValueError`` can never swallow a real config message.
"""

from __future__ import annotations


class AigdetectError(Exception):
    """Base class for errors a user can act on; the message is meant to be shown as-is."""

    exit_code: int = 2


class ConfigError(AigdetectError):
    """A configuration value is out of range or inconsistent with another."""


class InputError(AigdetectError):
    """A path, file or option given by the user cannot be used."""


class LayoutError(InputError):
    """A dataset root does not match any supported folder layout."""


DECODE_REASONS: tuple[str, ...] = ("missing", "unreadable", "unsupported", "too-large", "truncated", "corrupt", "symlink")
"""Why one input file could not be used; scan rows, training skips and bench reports share them."""


class InputFileError(InputError):
    """One input file cannot be used; ``reason`` is one of ``DECODE_REASONS``, ``detail`` says why."""

    def __init__(self, path: str, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {reason}: {detail}")
        self.path = path
        self.reason = reason
        self.detail = detail


class ImageDecodeError(InputFileError):
    """One image could not be decoded."""


class WeightsError(AigdetectError):
    """Backbone or head weights are missing, unreachable or do not fit the model."""


class CheckpointError(AigdetectError):
    """A detector checkpoint is corrupt, truncated or does not match its model."""
