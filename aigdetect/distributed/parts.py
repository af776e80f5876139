"""The folder a Ray scan writes: part files, the settings they were made with, and the summary, last.

The folder is a local path or a URL in a store. A part is written whole in one go (atomically
renamed on a local disk; one PUT in a store), so a part that exists is complete, and a task that
Ray retries writes the same part again rather than a second one. ``_settings.json`` is written
before the first part, so a rerun with other settings is refused rather than mixed in;
``_summary.json`` is written after the last, so its presence means the scan finished.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from ..data.objects import filesystem, is_url
from ..errors import ConfigError
from ..fileio import atomic_write
from ..results.parquet import FOLDER_SUMMARY, PARQUET_SUFFIX, PART_PREFIX, pyarrow_modules
from ..scan.rows import Tally
from ..scan.sidecar import RowSettings

SETTINGS_NAME = "_settings.json"
MAX_SETTINGS_BYTES = 1 << 20


class PartStore:
    """A scan's folder of parts, local or in a store; picklable, so Ray tasks write through it."""

    def __init__(self, out: str, storage_options: dict[str, Any] | None = None) -> None:
        self.out = out.rstrip("/")
        self.storage_options = storage_options or {}
        self.remote = is_url(out)

    def _fs(self) -> tuple[Any, str]:
        return filesystem(self.out, self.storage_options)

    def _path(self, name: str) -> str:
        return f"{self._fs()[1]}/{name}" if self.remote else os.path.join(self.out, name)

    def names(self) -> set[str]:
        """Every name in the folder (empty when it does not exist yet)."""
        if not self.remote:
            return set(os.listdir(self.out)) if os.path.isdir(self.out) else set()
        fs, root = self._fs()
        try:
            return {path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(root, detail=False, refresh=True)}
        except FileNotFoundError:
            return set()

    def parts(self) -> set[str]:
        return {n for n in self.names() if n.startswith(PART_PREFIX) and n.endswith(PARQUET_SUFFIX)}

    def write(self, name: str, data: bytes) -> None:
        if self.remote:
            fs, _ = self._fs()
            fs.pipe_file(self._path(name), data)
            return
        os.makedirs(self.out, exist_ok=True)
        atomic_write(os.path.join(self.out, name), lambda tmp: _write_bytes(tmp, data))

    def read(self, name: str, limit: int) -> bytes:
        if self.remote:
            fs, _ = self._fs()
            return fs.cat_file(self._path(name), start=0, end=limit + 1)[: limit + 1]
        with open(os.path.join(self.out, name), "rb") as handle:
            return handle.read(limit + 1)

    def remove(self, name: str) -> None:
        if self.remote:
            fs, _ = self._fs()
            fs.rm_file(self._path(name))
        else:
            os.unlink(os.path.join(self.out, name))

    def tally(self, name: str) -> Tally:
        """The counts of a part written earlier (read from its verdict columns only)."""
        _, pq = pyarrow_modules()
        columns = ["status", "verdict", "model_verdict", "error_reason"]
        if self.remote:
            fs, _ = self._fs()
            with fs.open(self._path(name), "rb") as handle:
                table = pq.read_table(handle, columns=columns)
        else:
            table = pq.read_table(os.path.join(self.out, name), columns=columns)
        tally = Tally()
        tally.add(table.to_pylist())
        return tally

    def claim(self, settings: RowSettings, overwrite: bool) -> None:
        """Make the folder this scan's: new, or written with the same settings (then its parts are
        kept), or, with ``overwrite``, an earlier scan's folder emptied of its parts.

        Raises:
            ConfigError: a file, a folder that is not a scan's, or one made with other settings.
        """
        if not self.remote and os.path.exists(self.out) and not os.path.isdir(self.out):
            raise ConfigError(f"`out` {self.out} is a file; a Ray scan writes a folder of parts")
        names = self.names()
        if names and SETTINGS_NAME not in names:
            raise ConfigError(f"`out` {self.out} exists and is not a Ray scan's folder; refusing to write into it")
        if SETTINGS_NAME in names:
            recorded = self._settings()
            changed = settings.differences(recorded)
            if changed and not overwrite:
                raise ConfigError(
                    f"{self.out} was made with other settings ({'; '.join(changed)}); rerun with the same settings, "
                    "or `overwrite` it"
                )
            if overwrite:
                for name in names & (self.parts() | {FOLDER_SUMMARY}):
                    self.remove(name)
        document = {"settings": settings.as_dict()}
        self.write(SETTINGS_NAME, (json.dumps(document, indent=1) + "\n").encode("utf-8"))

    def _settings(self) -> dict[str, Any]:
        raw = self.read(SETTINGS_NAME, MAX_SETTINGS_BYTES)
        try:
            document = json.loads(raw[:MAX_SETTINGS_BYTES].decode("utf-8"))
            settings = document["settings"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            raise ConfigError(f"{self.out}/{SETTINGS_NAME} is damaged; `overwrite` the folder") from None
        if not isinstance(settings, dict):
            raise ConfigError(f"{self.out}/{SETTINGS_NAME} is damaged; `overwrite` the folder")
        return settings

    def finish(self, summary: dict[str, Any]) -> None:
        self.write(FOLDER_SUMMARY, (json.dumps(summary, ensure_ascii=False, indent=1, allow_nan=False) + "\n").encode("utf-8"))


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def tally_of(counts: dict[str, dict[str, int]]) -> Tally:
    """A ``Tally`` from the plain counts a Ray task returns."""
    return Tally(Counter(counts["verdicts"]), Counter(counts["model"]), Counter(counts["reasons"]))


def counts_of(tally: Tally) -> dict[str, dict[str, int]]:
    return {"verdicts": dict(tally.verdicts), "model": dict(tally.model), "reasons": dict(tally.reasons)}
