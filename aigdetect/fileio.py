"""File helpers every layer shares: atomic replacement of outputs and strict-JSON values."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
    """Run ``write(tmp_path)`` then fsync and rename, so readers never see a half-written file.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask), not
    mkstemp's private 0600, so checkpoints and reports can be shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def finite(value: Any) -> float | None:
    """The value as a float, or None where it is missing, NaN or infinite."""
    return float(value) if value is not None and math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """NaN and infinities become null (recursively), so what we write is strict JSON."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
