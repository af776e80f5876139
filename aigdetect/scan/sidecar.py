"""``OUT.summary.json``: what a scan output was made with, and, once it is complete, its summary.

It is written when the scan starts (``complete: false``) and again at the end. ``resume`` and
``merge`` compare the settings that shape rows (detector, threshold, bands, crops, evidence, hashing)
before they keep or join a single row, so an output never mixes rows made two ways; ``report``
reads the detector, bands, command and date from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InputError
from ..fileio import atomic_write, json_safe, open_input, read_capped
from ..outputs import OutputKind, head

SIDECAR_SUFFIX = ".summary.json"
MAX_SIDECAR_BYTES = 1 << 20


def sidecar_path(out: str) -> str:
    return out + SIDECAR_SUFFIX


@dataclass(frozen=True)
class RowSettings:
    """Everything that changes what a row says about a file: rows made with other settings are never mixed."""

    detector: str
    engine: str
    threshold: float
    bands: tuple[float, float]
    columns: tuple[str, ...]
    evidence: bool
    watermarks: bool
    trust: str | None
    sha256: bool

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bands"] = list(self.bands)
        data["columns"] = list(self.columns)
        return data

    def differences(self, recorded: dict[str, Any]) -> list[str]:
        """``name: recorded -> this scan`` for every setting the recorded output was made otherwise."""
        mine = self.as_dict()
        return [f"{name}: {recorded.get(name)!r} -> {value!r}" for name, value in mine.items() if recorded.get(name) != value]


def write_sidecar(out: str, settings: RowSettings, *, complete: bool, summary: dict[str, Any] | None = None,
                  shard: tuple[int, int] | None = None) -> None:
    document = {
        "format": "aigdetect.scan",
        "complete": complete,
        "shard": list(shard) if shard else None,
        "settings": settings.as_dict(),
        "summary": summary,
    }
    text = json.dumps(json_safe(document), ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    atomic_write(sidecar_path(out), lambda tmp: _write(tmp, text))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def read_sidecar(out: str) -> dict[str, Any] | None:
    """The sidecar of ``out``, or None when there is none; a damaged one is refused.

    Raises:
        InputError: the sidecar is not a readable scan summary.
    """
    path = sidecar_path(out)
    if not os.path.lexists(path):
        return None
    try:
        handle, _ = open_input(path)
        with handle:
            document = json.loads(read_capped(handle, MAX_SIDECAR_BYTES, path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a scan summary ({exc}); delete it to start the output over") from None
    except InputError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != "aigdetect.scan" or not isinstance(
        document.get("settings"), dict
    ):
        raise InputError(f"{path} is not a scan summary written by 'aigdetect scan'")
    return document


def _looks_like_scan_output(out: str) -> bool:
    """Whether an existing file is an earlier output of ``scan`` (so replacing it destroys nothing else):
    it has a sidecar (a JSONL output may still be empty), or starts like one."""
    return os.path.exists(sidecar_path(out)) or head(out).startswith((b"path,status,", b'{"path": ', b'{"columns": ', b"PAR1"))


SCAN_RESULTS = OutputKind("scan output", _looks_like_scan_output)
